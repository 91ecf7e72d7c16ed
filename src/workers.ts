/**
 * Worker processes on one host (the Ruby library's `pre_fork`):
 * {@link runWorkers} runs N processes that serve the same ports, restarts one
 * that dies, and stops them all gracefully on SIGINT/SIGTERM.
 *
 * How the ports are shared depends on the runtime: SO_REUSEPORT on Deno
 * (`Deno.listen({ reusePort })`, with `--unstable-net`, which the workers
 * get), Bun (`Bun.listen({ reusePort })`) and Node >= 22.12 / 23.1 on Linux
 * (`node:net`): each worker binds the ports itself and the kernel spreads new
 * connections over them. On Node 20 `node:cluster`: the primary (the
 * supervisor) holds the socket and hands connections to the workers in turn.
 *
 * Every limit lives in one process: `maxConnections`, `maxProcessings`, the
 * per-address limits, the rate limits and the AUTH lockouts hold per worker,
 * so a host with N workers allows N times each (see the README, "Worker
 * processes").
 *
 * @module
 */
import { workerMechanism } from "./workers/mechanism.ts";
import { resolveWorkersOptions } from "./workers/options.ts";
import { workerIdFromEnvironment } from "./workers/protocol.ts";
import { Supervisor } from "./workers/supervisor.ts";
import type { RunWorkersOptions, WorkerProcess, WorkerSupervisor } from "./workers/types.ts";
import { runWorker } from "./workers/worker.ts";

export type {
  RunWorkersOptions,
  WorkerEvent,
  WorkerExit,
  WorkerInfo,
  WorkerMechanism,
  WorkerProcess,
  WorkerState,
  WorkerStatus,
  WorkerSupervisor,
} from "./workers/types.ts";

/**
 * Runs `options.workers` worker processes that serve the same ports. The
 * program calls it once, and it runs as two roles:
 *
 * - In the process you start (the supervisor) it starts the workers by
 *   running the same program again (with an environment variable that makes
 *   it a worker; on Node 20 through `node:cluster`), and resolves with a
 *   {@link WorkerSupervisor} once every one listens. It rejects if one exits
 *   before it listens, or takes longer than `startTimeout`: the others are
 *   stopped first. A worker that dies later is started again after a delay
 *   that doubles while it keeps dying (`restartDelay` to `maxRestartDelay`).
 *   SIGINT or SIGTERM sends SIGTERM to every worker and exits once all have
 *   (0 if all exited 0); a worker still alive `killTimeout` seconds after
 *   its SIGTERM is killed with SIGKILL, and the log says so.
 * - In a worker it calls `start`, starts the server it returns if needed,
 *   and resolves with a {@link WorkerProcess}. On SIGTERM or SIGINT (or when
 *   the supervisor is gone) it runs `stop` (default: a graceful
 *   `server.stop()`: sessions finish their message) and exits.
 *
 * Everything the workers need goes into `start`: the supervisor runs the top
 * of the program too, but never `start`. Give every worker the same TLS
 * certificate (a file): a self-signed one made by each worker differs from
 * worker to worker. Unix sockets (`socketPaths`) cannot be shared.
 *
 * @example
 * ```ts
 * // not run: spawns worker processes that listen on port 2525
 * import { MidiSmtpServer, runWorkers } from "@midi/smtp-server";
 *
 * const pool = await runWorkers({
 *   workers: 4,
 *   start: (worker) =>
 *     new MidiSmtpServer({
 *       ports: 2525,
 *       reusePort: true, // every worker binds port 2525
 *       onMessageDataEvent(ctx) {
 *         console.log(`worker ${worker.id}: ${ctx.message.bytesize} bytes from ${ctx.envelope.from}`);
 *       },
 *     }),
 *   onEvent(event) {
 *     if (event.type === "exited") console.log(`worker ${event.worker.id} exited:`, event.exit);
 *   },
 * });
 * if (pool.role === "supervisor") {
 *   console.log(pool.status().map((w) => `${w.id}: pid ${w.pid}, ${w.state}, ${w.restarts} restarts`));
 * }
 * ```
 */
export async function runWorkers(options: RunWorkersOptions): Promise<WorkerSupervisor | WorkerProcess> {
  const resolved = resolveWorkersOptions(options);
  const mechanism = workerMechanism();
  const id = workerIdFromEnvironment();
  if (id !== undefined) return await runWorker(resolved, { id, mechanism, stopTimeout: resolved.stopTimeout });
  return await new Supervisor(resolved, mechanism).run();
}
