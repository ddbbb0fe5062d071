#!/usr/bin/env node
// pg-workflow-dashboard: the read-only dashboard on localhost.
//   pg-workflow-dashboard --connection postgres://user@host/db [--port 8089] [--allow-actions] [--schema workflow]
// DATABASE_URL is used when --connection is not given. The page never shows it.

import { startDashboard } from "./server.js";

const args = process.argv.slice(2);
const value = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const connection = value("--connection") ?? process.env.DATABASE_URL;
if (!connection) {
  console.error("pass --connection postgres://user@host/db (or set DATABASE_URL)");
  process.exit(2);
}
const schema = value("--schema");
const dashboard = await startDashboard({
  connection,
  port: Number(value("--port") ?? "8089"),
  allowActions: args.includes("--allow-actions"),
  ...(schema ? { schema } : {}),
});
console.log(`pg_workflow dashboard on ${dashboard.url}${args.includes("--allow-actions") ? " (cancel and retry allowed)" : " (read-only)"}`);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => void dashboard.close().then(() => process.exit(0)));
}
