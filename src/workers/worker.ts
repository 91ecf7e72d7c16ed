/**
 * A worker process of `runWorkers`: runs the application's `start`, tells
 * the supervisor it listens, and on SIGTERM or SIGINT (or when the
 * supervisor is gone) stops the server gracefully and exits.
 *
 * @module
 */
import process from "node:process";
import type { MidiSmtpServer } from "../server.ts";
import type { ResolvedWorkersOptions } from "./options.ts";
import { listeningMessage } from "./protocol.ts";
import type { WorkerInfo, WorkerProcess } from "./types.ts";

/** The signals that stop a worker. */
const SIGNALS = ["SIGINT", "SIGTERM"] as const;

/**
 * Why a worker could not start, for its log line: the error's message, and
 * for EADDRINUSE what most likely caused it.
 *
 * @example
 * ```ts
 * startError(new Error("boom")); // => "boom"
 * ```
 */
export function startError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: unknown } | null)?.code;
  return code === "EADDRINUSE"
    ? `${message} (is another program on the port, or was the server made without reusePort: true?)`
    : message;
}

/**
 * Runs worker `info` of `options`: resolves once its server listens (and the
 * supervisor has been told). A start that fails ends the process with 1.
 * The first SIGINT, SIGTERM or loss of the supervisor stops the server with
 * `options.stop`, then the process exits 0 (1 if the stop failed); during
 * `start` it exits 0 at once, nothing having been served yet; further
 * signals change nothing, the supervisor's kill deadline covers a stop that
 * hangs. (Ctrl-C in a terminal reaches the workers too, with the
 * supervisor's SIGTERM right behind: both must mean the same graceful stop.)
 */
export async function runWorker(options: ResolvedWorkersOptions, info: WorkerInfo): Promise<WorkerProcess> {
  const log = (line: string) => {
    try {
      options.log(`worker ${info.id} (pid ${process.pid}): ${line}`);
    } catch {
      // a broken log sink must not stop the worker
    }
  };
  // Set once start() has returned it; until then a stop request ends the process at once.
  const running: { server?: MidiSmtpServer } = {};
  let stopping = false;
  const finish = async (server: MidiSmtpServer) => {
    let ok = true;
    try {
      ok = (await options.stop(server, info)) !== false;
    } catch (err) {
      log(`stop failed: ${err instanceof Error ? err.message : String(err)}`);
      ok = false;
    }
    log(ok ? "stopped" : "stopped, not cleanly");
    process.exit(ok ? 0 : 1);
  };
  const requestStop = (why: string) => {
    if (stopping) return;
    stopping = true;
    if (running.server) {
      log(`${why}: stopping`);
      void finish(running.server);
      return;
    }
    // Still starting: nothing has been served (the supervisor has not seen it listen), and a start
    // that hangs must not hold the stop up until the kill deadline.
    log(`${why} while starting: exiting`);
    process.exit(0);
  };
  for (const signal of SIGNALS) {
    try {
      process.on(signal, () => requestStop(`${signal} received`));
    } catch {
      // Deno on Windows cannot listen for SIGTERM; SIGINT still works.
    }
  }
  // The IPC channel closes when the supervisor dies: nobody would restart or stop us any more.
  process.on("disconnect", () => requestStop("the supervisor is gone"));

  let started: MidiSmtpServer;
  try {
    started = await options.start(info);
    if (typeof started?.start !== "function" || typeof started.stop !== "function") {
      throw new TypeError("start must return the MidiSmtpServer (started or not)");
    }
    if (info.mechanism === "reuseport" && !started.options.reusePort) {
      throw new TypeError("the server of a worker needs reusePort: true, or the workers cannot share its ports");
    }
    if (started.isStopped()) await started.start();
  } catch (err) {
    log(`cannot start: ${startError(err)}`);
    process.exit(1);
  }
  running.server = started;
  try {
    process.send?.(listeningMessage(started), undefined, undefined, () => {});
  } catch {
    // The channel closed meanwhile: the disconnect handler stops us.
  }
  return { role: "worker", worker: info, server: started };
}
