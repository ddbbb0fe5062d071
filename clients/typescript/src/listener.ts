// One LISTEN connection, kept open: reconnects (with backoff) after the connection is
// lost or Postgres restarts, and tells its owner when it has (notifications sent while
// it was away are lost, so the owner looks again).

import pg from "pg";

export interface ListenerOptions {
  connection: pg.ClientConfig | string;
  channels: string[];
  onNotification: (channel: string, payload: string) => void;
  /** Called after every (re)connection, once LISTEN is in place. */
  onConnected?: () => void;
  onError?: (error: unknown) => void;
}

export class Listener {
  readonly #options: ListenerOptions;
  #client: pg.Client | undefined;
  #stopped = false;
  #retryMs = 100;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #ready: Promise<void>;

  constructor(options: ListenerOptions) {
    this.#options = options;
    this.#ready = this.#connect();
  }

  /** Resolves once the first LISTEN is in place. */
  ready(): Promise<void> {
    return this.#ready;
  }

  async #connect(): Promise<void> {
    while (!this.#stopped) {
      const config = typeof this.#options.connection === "string" ? { connectionString: this.#options.connection } : this.#options.connection;
      const client = new pg.Client(config);
      client.on("error", (error) => this.#lost(client, error));
      client.on("end", () => this.#lost(client, new Error("connection ended")));
      client.on("notification", (n) => this.#options.onNotification(n.channel, n.payload ?? ""));
      try {
        await client.connect();
        for (const channel of this.#options.channels) {
          await client.query(`LISTEN "${channel.replace(/"/g, '""')}"`);
        }
        if (this.#stopped) {
          await client.end().catch(() => {});
          return;
        }
        this.#client = client;
        this.#retryMs = 100;
        this.#options.onConnected?.();
        return;
      } catch (error) {
        this.#options.onError?.(error);
        client.removeAllListeners("end");
        await client.end().catch(() => {});
        await new Promise((resolve) => {
          this.#timer = setTimeout(resolve, this.#retryMs);
        });
        this.#retryMs = Math.min(this.#retryMs * 2, 5000);
      }
    }
  }

  #lost(client: pg.Client, error: unknown): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    client.removeAllListeners("end");
    client.end().catch(() => {});
    if (this.#stopped) return;
    this.#options.onError?.(error);
    this.#ready = this.#connect();
  }

  async close(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    const client = this.#client;
    this.#client = undefined;
    if (client) {
      client.removeAllListeners("end");
      await client.end().catch(() => {});
    }
  }
}
