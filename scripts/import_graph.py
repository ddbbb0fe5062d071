#!/usr/bin/env python3
"""Prints the import graph among the files of src/engine/ and exits 1 if it has a cycle.

Reads `use super::...` and `super::name::` references: what one engine file uses of
another. Used by scripts/lint.sh (make test): the engine's layers are row layer ->
transitions -> entry points, with no way back up."""
import re, sys, pathlib

root = pathlib.Path(__file__).resolve().parent.parent / "src" / "engine"
modules = {p.stem for p in root.glob("*.rs") if p.stem != "mod"}
edges = {m: set() for m in modules}
for m in modules:
    text = (root / f"{m}.rs").read_text()
    for used in re.findall(r"super::\{([^}]*)\}", text):
        for name in re.split(r"[,\s]+", used):
            name = name.split("::")[0]
            if name in modules and name != m:
                edges[m].add(name)
    for name in re.findall(r"super::(\w+)", text):
        if name in modules and name != m:
            edges[m].add(name)
    for name in re.findall(r"crate::engine::(\w+)", text):
        if name in modules and name != m:
            edges[m].add(name)

def find_cycle():
    state = {}
    stack = []
    def visit(n):
        state[n] = 1; stack.append(n)
        for d in sorted(edges[n]):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                c = visit(d)
                if c: return c
        state[n] = 2; stack.pop()
        return None
    for n in sorted(modules):
        if n not in state:
            c = visit(n)
            if c: return c
    return None

if "-v" in sys.argv:
    for m in sorted(modules):
        print(f"{m:14} -> {', '.join(sorted(edges[m])) or '-'}")
cycle = find_cycle()
if cycle:
    print("import cycle in src/engine: " + " -> ".join(cycle), file=sys.stderr)
    sys.exit(1)
print(f"src/engine: {len(modules)} files, {sum(map(len, edges.values()))} imports, no cycle")
