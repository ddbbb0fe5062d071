// The dashboard (README: Observability): a small read-only web page over the SQL
// functions, served on localhost. Executions with filters, an execution with its graph,
// steps, attempts and signals, the queues. Cancel and retry buttons only when started
// with `allowActions` and the connected role may cancel (the admin part); otherwise every
// POST is refused (403). It sees what its role sees: tenants and parts apply.

import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import pg from "pg";
import { PgWorkflowError } from "../errors.js";
import { WorkflowSql } from "../sql.js";
import type { ListFilter } from "../types.js";
import { esc, executionPage, layout, listPage, queuesPage, type ListQuery, type SignalRow } from "./pages.js";

export interface DashboardOptions {
  connection: pg.PoolConfig | string;
  schema?: string;
  /** Port (default 8089); 0 picks a free one. */
  port?: number;
  /** Interface to listen on (default 127.0.0.1: this machine only). */
  host?: string;
  /** Show Cancel and Retry to a role that may use them (default false: read-only). */
  allowActions?: boolean;
}

export interface Dashboard {
  url: string;
  close(): Promise<void>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Mermaid's browser build, if the package is installed; the graph is shown as text otherwise. */
function mermaidPath(): string | undefined {
  try {
    return createRequire(import.meta.url).resolve("mermaid/dist/mermaid.min.js");
  } catch {
    return undefined;
  }
}

export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const config = typeof options.connection === "string" ? { connectionString: options.connection } : options.connection;
  const pool = new pg.Pool({ max: 4, ...config });
  pool.on("error", () => {});
  const sql = new WorkflowSql(pool, options.schema === undefined ? {} : { schema: options.schema });
  const prefix = options.schema ? `"${options.schema.replace(/"/g, '""')}".` : "";
  const mermaid = mermaidPath();
  const mayAct = async () => {
    if (!options.allowActions) return false;
    const { rows } = await pool.query(
      `SELECT has_function_privilege('${prefix}workflow_cancel(uuid, text)', 'EXECUTE') AND
              has_function_privilege('${prefix}workflow_retry(uuid)', 'EXECUTE') AS ok`,
    );
    return rows[0].ok === true;
  };

  const send = (res: ServerResponse, status: number, body: string | Buffer, type = "text/html; charset=utf-8") => {
    res.writeHead(status, {
      "content-type": type,
      "cache-control": "no-store",
      "content-security-policy": "default-src 'self'; style-src 'unsafe-inline'; script-src 'self' 'unsafe-inline'",
    });
    res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname;
    if (req.method === "POST") {
      const match = /^\/executions\/([^/]+)\/(cancel|retry)$/.exec(path);
      if (!match || !UUID.test(match[1]!)) return send(res, 404, layout("Not found", "<p>No such page.</p>"));
      if (!(await mayAct())) return send(res, 403, layout("Read-only", "<p>This dashboard is read-only.</p>"));
      const id = match[1]!;
      await (match[2] === "cancel" ? sql.cancel(id, "cancelled from the dashboard") : sql.retry(id));
      res.writeHead(303, { location: `/executions/${id}` });
      return res.end();
    }
    if (path === "/static/mermaid.min.js" && mermaid) {
      return send(res, 200, await readFile(mermaid), "text/javascript; charset=utf-8");
    }
    if (path === "/") {
      const query: ListQuery = {};
      for (const key of ["workflow_type", "status", "label", "waiting_for"] as const) {
        const v = url.searchParams.get(key)?.trim();
        if (v) query[key] = v;
      }
      const filter: ListFilter = {};
      if (query.workflow_type) filter.workflow_type = query.workflow_type;
      if (query.status) filter.status = query.status as ListFilter["status"] & string;
      if (query.waiting_for) filter.waiting_for = query.waiting_for;
      if (query.label) {
        const [key, ...value] = query.label.split("=");
        filter.labels = { [key!.trim()]: value.join("=").trim() };
      }
      const after = url.searchParams.get("after") ?? undefined;
      const pageSize = 50;
      const rows = await sql.list(filter, after && UUID.test(after) ? { pageSize, after } : { pageSize });
      return send(res, 200, listPage(rows, query, rows.length === pageSize ? rows[rows.length - 1]!.id : undefined));
    }
    const execution = /^\/executions\/([^/]+)$/.exec(path);
    if (execution && UUID.test(execution[1]!)) {
      const id = execution[1]!;
      const [status, graph, signals] = await Promise.all([
        sql.status(id),
        sql.graph(id),
        pool
          .query(
            `SELECT name, payload, created_at, consumed_by FROM ${prefix}workflow_signal WHERE execution_id = $1 ORDER BY created_at`,
            [id],
          )
          .then((r) => r.rows as SignalRow[])
          .catch(() => [] as SignalRow[]), // a role without SELECT on the table sees none
      ]);
      return send(res, 200, executionPage(status, graph, signals, { actions: await mayAct(), mermaid: mermaid !== undefined }));
    }
    if (path === "/queues") return send(res, 200, queuesPage(await sql.queueStats()));
    return send(res, 404, layout("Not found", "<p>No such page.</p>"));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error) => {
      const known = error instanceof PgWorkflowError;
      // The error's message only: never the connection's details.
      send(res, known && error.sqlstate === "P0002" ? 404 : 500, layout("Error", `<p>${esc(known ? error.message : "the request failed")}</p>`));
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 8089, options.host ?? "127.0.0.1", resolve));
  const address = server.address() as { port: number };
  return {
    url: `http://${options.host ?? "127.0.0.1"}:${address.port}`,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pool.end();
    },
  };
}
