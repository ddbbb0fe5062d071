// Runs every TypeScript test, one after another (Node: dist/test/run.js; Bun: test/run.ts).
import "./client.test.js";
import "./worker.test.js";
import "./readme.test.js";
import "./effect.test.js";
import "./observability.test.js";
import "./flow.test.js";
import "./dashboard.test.js";
import { runAll } from "./harness.js";

await runAll();
