/**
 * Worker processes: WORKERS processes (default 2) serve SMTP_PORT (default
 * 2525) together, under one supervisor that restarts a worker that dies and,
 * on SIGINT or SIGTERM, lets every worker finish its messages before all
 * exit. Each message is logged with the worker that took it.
 *
 * Run: `deno run -A examples/workers.ts`, `bun examples/workers.ts` or
 * `npx tsx examples/workers.ts`; then send mail to 127.0.0.1:2525. The
 * README's "Worker processes" shows this file; the tests run it.
 */
import process from "node:process";
import { MidiSmtpServer, runWorkers } from "../mod.ts";

const port = Number(process.env.SMTP_PORT ?? 2525);
const workers = Number(process.env.WORKERS ?? 2);

const pool = await runWorkers({
  workers,
  // Runs in every worker, never in the supervisor: everything a worker needs is made here.
  start: (worker) =>
    new MidiSmtpServer({
      hosts: "127.0.0.1",
      ports: port,
      reusePort: true, // every worker binds the same port
      // Limits count per worker: the host's own, divided by the number of workers.
      maxConnections: Math.floor(4000 / workers),
      maxProcessings: Math.floor(2000 / workers),
      onMessageDataEvent(ctx) {
        console.log(
          `worker ${worker.id} (pid ${process.pid}): ${ctx.message.bytesize} bytes from ${ctx.envelope.from}`,
        );
      },
    }),
  onEvent(event) {
    if (event.type === "exited") console.log(`worker ${event.worker.id} exited`, event.exit);
  },
});
if (pool.role === "supervisor") {
  const pids = pool.status().map((w) => w.pid).join(", ");
  console.log(`Ready for connections on 127.0.0.1:${port} (${pool.mechanism}; worker pids ${pids})`);
}
