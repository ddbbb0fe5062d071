// Child processes for the tests that kill or stop them: started with this runtime (Node
// runs the compiled .js, Bun the .ts), ready once they print "ready", killed when the test
// that started them ends, whatever happened.

import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

const children: ChildProcess[] = [];

/** Starts test/<name>.(js|ts) beside this file, with `env` added; resolves once it is ready. */
export async function startProcess(name: string, env: Record<string, string>): Promise<ChildProcess & { output: string[] }> {
  const here = fileURLToPath(import.meta.url);
  const script = here.replace(/processes\.(ts|js)$/, `${name}.$1`);
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  }) as ChildProcess & { output: string[] };
  children.push(child);
  child.output = [];
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => {
      const lines = d.toString().split("\n").filter((l) => l.length > 0);
      child.output.push(...lines);
      if (lines.includes("ready")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`${name} exited (${code}) before it was ready`)));
  });
  return child;
}

export function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) =>
    child.exitCode !== null || child.signalCode !== null ? resolve(child.exitCode) : child.once("exit", (code) => resolve(code)),
  );
}

/** Runs `fn`, then kills every process it started that is still running. */
export async function withChildren(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } finally {
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited(child);
      }
    }
  }
}
