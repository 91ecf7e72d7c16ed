/**
 * Holds idle SMTP connections open, for measuring a server's memory per
 * connection: opens `--count` connections (at most `--parallel` handshakes
 * at a time, so the listen backlog never overflows), waits for each `220`,
 * prints `IDLE ok=<n> failed=<m>` and then sends nothing until killed or
 * until stdin closes.
 *
 *   node --import tsx scripts/bench/idle.ts --port 2525 --count 5000
 *
 * Needs a file-descriptor limit above `--count` (`ulimit -n`).
 *
 * @module
 */
import * as net from "node:net";
import process from "node:process";
import { parseArgs } from "node:util";
import type { Buffer } from "node:buffer";
import { intOption } from "./lib/args.ts";

/** Opens one connection and resolves with it once the greeting's first line has arrived, or `null`. */
function openIdle(host: string, port: number, timeoutMs: number): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => done(false), timeoutMs);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.removeAllListeners("data");
      if (!ok) socket.destroy();
      resolve(ok ? socket : null);
    };
    let seen = "";
    socket.on("data", (chunk: Buffer) => {
      seen += chunk.toString("latin1");
      if (seen.includes("\n")) done(seen.startsWith("220"));
    });
    socket.on("error", () => done(false));
    socket.on("close", () => done(false));
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      host: { type: "string" },
      port: { type: "string" },
      count: { type: "string" },
      parallel: { type: "string" },
    },
    strict: true,
  });
  const host = values.host ?? "127.0.0.1";
  const port = intOption("port", values.port, 0, 1);
  const count = intOption("count", values.count, 5000, 1);
  const parallel = intOption("parallel", values.parallel, 100, 1);
  const held: net.Socket[] = [];
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      const socket = await openIdle(host, port, 30_000);
      if (socket) held.push(socket);
      else failed++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker));
  // A server closing an idle connection now would make the measurement wrong: say so on stderr.
  for (const socket of held) socket.on("close", () => console.error("idle: a held connection was closed"));
  process.stdout.write(`IDLE ok=${held.length} failed=${failed}\n`);
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
}

main().catch((err) => {
  console.error(`idle: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(2);
});
