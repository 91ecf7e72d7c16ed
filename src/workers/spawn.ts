/**
 * Starting one worker process, either way: a child process that runs this
 * program again ({@link spawnWorker}, for SO_REUSEPORT) or a `node:cluster`
 * worker ({@link forkClusterWorker}). Both give a {@link SpawnedWorker}, so
 * the supervisor does not care which.
 *
 * @module
 */
import process from "node:process";
import { spawn } from "node:child_process";
import type { CommandLine } from "./mechanism.ts";

/** One worker process as the supervisor handles it. */
export interface SpawnedWorker {
  /** Its process id; `undefined` if it could not be started. */
  readonly pid: number | undefined;
  /** Calls `listener` for every message it sends over the IPC channel. */
  onMessage(listener: (message: unknown) => void): void;
  /** Calls `listener` once, when it has exited or could not be started (`error`). */
  onExit(listener: (code: number | null, signal: string | null, error?: Error) => void): void;
}

/**
 * Spawns `command` with `env` and an IPC channel (fd 3). Its stdout and
 * stderr are ours, so its log lines go where ours go; stdin is closed, a
 * worker does not read the terminal. It stays in our process group: Ctrl-C
 * reaches it too, which is fine, since a worker takes SIGINT as SIGTERM.
 */
export function spawnWorker(command: CommandLine, env: Record<string, string>): SpawnedWorker {
  const child = spawn(command.command, [...command.args], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    env,
  });
  return {
    pid: child.pid,
    onMessage: (listener) => void child.on("message", listener),
    onExit(listener) {
      let done = false;
      const once = (code: number | null, signal: string | null, error?: Error) => {
        if (done) return;
        done = true;
        listener(code, signal, error);
      };
      child.once("exit", (code, signal) => once(code, signal));
      // ENOENT and the like: there will be no exit event.
      child.once("error", (err) => {
        if (child.pid === undefined) once(null, null, err);
      });
    },
  };
}

/** What the cluster module was set up with, so that it is set up once. */
let clusterExecArgv: readonly string[] | undefined;

/**
 * Forks a `node:cluster` worker with `env` on top of ours. It runs this
 * program again with our `execArgv` (or `execArgv`); its `listen()` calls go
 * through us, and we hand it connections in turn on one shared socket.
 */
export async function forkClusterWorker(
  env: Record<string, string>,
  execArgv?: readonly string[],
): Promise<SpawnedWorker> {
  const { default: cluster } = await import("node:cluster");
  if (execArgv !== undefined && execArgv !== clusterExecArgv) {
    cluster.setupPrimary({ execArgv: [...execArgv] });
    clusterExecArgv = execArgv;
  }
  const worker = cluster.fork(env);
  return {
    pid: worker.process.pid,
    onMessage: (listener) => void worker.on("message", listener),
    onExit(listener) {
      let done = false;
      worker.once("exit", (code: number | null, signal: string | null) => {
        if (done) return;
        done = true;
        listener(code, signal);
      });
      worker.once("error", (err: Error) => {
        if (done || worker.process.pid !== undefined) return;
        done = true;
        listener(null, null, err);
      });
    },
  };
}

/** Sends `signal` to `pid`; a process already gone is not an error. */
export function signalProcess(pid: number, signal: "SIGTERM" | "SIGKILL"): void {
  try {
    // Not child.kill(): Deno's node:child_process then reports the signal as
    // the cause of exit even when the child exits 0 by itself.
    process.kill(pid, signal);
  } catch {
    // ESRCH: it has exited already, its exit event is on its way
  }
}
