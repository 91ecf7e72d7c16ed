/**
 * Benchmark target: MidiSmtpServer as a discarding sink on 127.0.0.1.
 *
 *   deno run -A scripts/bench/targets/ours.ts --port 0 [--lib PATH] [--stream] [--proxy]
 *   bun run scripts/bench/targets/ours.ts --port 0 [--lib PATH]
 *   node --import tsx scripts/bench/targets/ours.ts --port 0 --lib npm-build/esm/mod.js
 *   deno run -A scripts/bench/targets/ours.ts --port 2525 --workers 2
 *
 * `--lib` is the library entry to import: the source `mod.ts` (Deno, Bun;
 * default: this repository's) or the npm build's `esm/mod.js` (Node, so Node
 * runs what npm users get, not tsx-compiled sources). `--stream` takes the
 * body with `onMessageDataStreamEvent` and drains it; `--proxy` turns on
 * `proxyExtension` (every connection must start with a PROXY header; the
 * load comes from loopback, trusted by default). Prints `READY <port>` once
 * listening; runs until killed.
 *
 * `--workers N` runs the same sink in N worker processes under `runWorkers`
 * (this process is their supervisor): each worker binds the port with
 * `reusePort` (SO_REUSEPORT on Deno, Bun and Node >= 22.12; on Node 20 they
 * are `node:cluster` workers and the supervisor hands them the connections).
 * The port must then be a fixed one (with 0 every SO_REUSEPORT worker would
 * get a port of its own): the benchmark picks a free one first. `READY
 * <port>` comes from the supervisor once every worker listens; SIGTERM stops
 * them all.
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { fileURLToPath } from "node:url";

type Library = typeof import("../../../mod.ts");

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    port: { type: "string" },
    lib: { type: "string" },
    stream: { type: "boolean" },
    proxy: { type: "boolean" },
    workers: { type: "string" },
  },
  strict: true,
});
const port = Number(values.port ?? "0");
const workers = values.workers === undefined ? undefined : Number(values.workers);
if (workers !== undefined && !(Number.isInteger(workers) && workers >= 1)) {
  console.error(`ours.ts: --workers must be a whole number >= 1, got ${values.workers}`);
  process.exit(2);
}
if (workers !== undefined && port === 0) {
  console.error("ours.ts: --workers needs a fixed --port (port 0 cannot be shared between processes)");
  process.exit(2);
}
const lib = values.lib ?? fileURLToPath(new URL("../../../mod.ts", import.meta.url));
const { MidiSmtpServer, runWorkers } = (await import(pathToFileURL(lib).href)) as Library;

/** The sink; `reusePort` for the workers, which all bind the same port. */
function sink(reusePort: boolean) {
  return new MidiSmtpServer({
    ports: port,
    hosts: "127.0.0.1",
    reusePort,
    pipeliningExtension: true,
    internationalizationExtensions: true,
    // CHUNKING for the BDAT workloads (w2-bdat...); DATA clients only see one more EHLO line, so every workload runs
    // on the same configuration and BDAT compares with DATA on equal terms.
    chunkingExtension: true,
    // Every connection is served at once (no queueing at 500 or 5000 clients), none is refused.
    maxProcessings: 10000,
    maxConnections: null,
    // The load comes from one address: the per-client limits (50 connections, 600 a minute...) would refuse it.
    maxConnectionsPerIp: null,
    maxConnectionRatePerIp: null,
    maxMessageRatePerIp: null,
    // --proxy: a PROXY header (v1 or v2) first on every connection, as behind HAProxy; loopback is a trusted source.
    // The per-client limits above stay off: they would count the header's made-up clients instead of the loopback one.
    proxyExtension: values.proxy ?? false,
    // As large as smtp-server's limit in its target: both check it, neither refuses a benchmark message.
    maxMessageSize: 100 * 1024 * 1024,
    onMessageDataEvent() {},
    // --stream: take the body as a stream and drain it, as smtp-server's onData does.
    ...(values.stream
      ? {
        async onMessageDataStreamEvent(_ctx: unknown, stream: ReadableStream<Uint8Array>) {
          for await (const _chunk of stream) { /* discard */ }
        },
      }
      : {}),
  });
}

if (workers === undefined) {
  const server = sink(false);
  // Exit cleanly on SIGTERM (how run.ts stops targets), so `--cpu-prof` and similar write their files.
  process.on("SIGTERM", () => process.exit(0));
  await server.start();
  const listening = server.addresses[0].split(":").pop();
  process.stdout.write(`READY ${listening}\n`);
} else {
  const pool = await runWorkers({
    workers,
    start: () => sink(true),
    // run.ts gives a target 3 s after SIGTERM before SIGKILL: a worker whose supervisor is gone stops by itself,
    // and after a run no session is left to wait for anyway.
    stopTimeout: 2,
    killTimeout: 2.5,
  });
  if (pool.role === "supervisor") {
    const pids = pool.status().map((w) => w.pid).join(", ");
    process.stderr.write(`ours.ts: ${workers} workers (${pool.mechanism}), pids ${pids}\n`);
    process.stdout.write(`READY ${port}\n`);
  }
}
