// The README's TypeScript example is examples/quickstart.ts, word for word, and it runs.

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { assert, assertEqual, freshDatabase, test } from "./harness.js";

const here = fileURLToPath(import.meta.url);
const compiled = here.includes("/dist/");
const pkg = fileURLToPath(new URL(compiled ? "../../" : "../", import.meta.url));

test("the README's TypeScript example is examples/quickstart.ts, and it runs", async () => {
  const readme = readFileSync(`${pkg}/../../README.md`, "utf8");
  const section = readme.split("### A worker and a client")[1];
  assert(section, "the README has a section 'A worker and a client'");
  const block = section.split("```ts\n")[1]?.split("```")[0];
  assertEqual(block, readFileSync(`${pkg}/examples/quickstart.ts`, "utf8"), "the README's block");
  const config = await freshDatabase("pgw_ts_quickstart");
  const url = `postgres://${config.user}@${config.host}:${config.port}/${config.database}`;
  const script = compiled ? `${pkg}/dist/examples/quickstart.js` : `${pkg}/examples/quickstart.ts`;
  const run = spawnSync(process.execPath, [script], { env: { ...process.env, DATABASE_URL: url }, encoding: "utf8", timeout: 60_000 });
  assertEqual(run.status, 0, `quickstart exit code (stderr: ${run.stderr})`);
  assert(run.stdout.includes("THE TEXT OF HTTPS://EXAMPLE.COM/A"), `quickstart output: ${run.stdout}`);
});

test("the README's Effect engine blocks are taken word for word from examples/extraction-pipeline.ts", async () => {
  const readme = readFileSync(`${pkg}/../../README.md`, "utf8");
  const section = readme.split("### The Effect engine")[1]?.split("\n## ")[0];
  assert(section, "the README has a section 'The Effect engine'");
  const example = readFileSync(`${pkg}/examples/extraction-pipeline.ts`, "utf8");
  const blocks = section.split("```ts\n").slice(1).map((b) => b.split("```")[0]!);
  assert(blocks.length >= 3, `three code blocks, found ${blocks.length}`);
  for (const block of blocks) assert(example.includes(block), `a README block is not in the example:\n${block}`);
});
