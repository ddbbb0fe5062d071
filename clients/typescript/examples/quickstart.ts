import { Client, Worker } from "pg-workflow";

const connection = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:28815/postgres";
const client = new Client({ connection });

// Declare the workflow once (an identical definition keeps its version).
await client.define("summarize", {
  steps: [
    { name: "fetch", activity: "http.fetch", retry: { max_attempts: 5, initial_interval: "1s" } },
    { name: "summarize", activity: "llm.summarize", depends_on: ["fetch"] },
  ],
});

// Handlers per activity type; each gets the workflow input and its dependencies' outputs.
const worker = new Worker({
  connection,
  concurrency: 8,
  handlers: {
    "http.fetch": async ({ input }) => ({ text: `the text of ${input.url}` }),
    "llm.summarize": async ({ fetch }, { signal }) => {
      signal.throwIfAborted(); // fired when the execution is cancelled
      return { summary: fetch.text.toUpperCase() };
    },
  },
});
await worker.start();

const id = await client.start("summarize", { url: "https://example.com/a" }, { idempotencyKey: "doc-a" });
console.log(await client.result(id)); // { summarize: { summary: 'THE TEXT OF HTTPS://EXAMPLE.COM/A' } }

await worker.stop();
await client.close();
