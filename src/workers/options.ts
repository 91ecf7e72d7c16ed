/**
 * The options of `runWorkers` checked, with their defaults
 * ({@link resolveWorkersOptions}).
 *
 * @module
 */
import process from "node:process";
import type { MidiSmtpServer } from "../server.ts";
import type { RunWorkersOptions, WorkerEvent, WorkerInfo } from "./types.ts";

/** {@link RunWorkersOptions} with every default applied. */
export interface ResolvedWorkersOptions {
  readonly workers: number;
  readonly start: RunWorkersOptions["start"];
  readonly stop: (server: MidiSmtpServer, worker: WorkerInfo) => Promise<unknown> | unknown;
  readonly stopTimeout: number;
  readonly killTimeout: number;
  readonly startTimeout: number;
  readonly restartDelay: number;
  readonly maxRestartDelay: number;
  readonly handleSignals: boolean;
  readonly env: Readonly<Record<string, string>>;
  readonly execArgv: readonly string[] | undefined;
  readonly log: (line: string) => void;
  readonly onEvent: ((event: WorkerEvent) => void) | undefined;
}

/** Seconds a stopping worker lets its sessions finish, by default (as the dev server's graceful stop). */
export const DEFAULT_STOP_TIMEOUT = 30;
/** Seconds after `stopTimeout` before a worker still alive is killed, by default. */
const KILL_MARGIN = 10;

/** Writes a line to stderr; a closed stderr must not break the supervisor. */
function stderrLine(line: string): void {
  try {
    process.stderr.write(`workers: ${line}\n`);
  } catch {
    // nobody reads it
  }
}

/** Stops gracefully, letting sessions finish for `stopTimeout` seconds. */
function defaultStop(server: MidiSmtpServer, worker: WorkerInfo): Promise<void> {
  return server.stop({ gracefully: true, waitSecondsBeforeClose: worker.stopTimeout });
}

function seconds(name: string, value: unknown, fallback: number, { zero = false } = {}): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || (!zero && value === 0)) {
    throw new TypeError(`${name} must be a number of seconds${zero ? "" : " above 0"}, got ${String(value)}`);
  }
  return value;
}

function optionalFunction<T>(name: string, value: T | undefined): T | undefined {
  if (value !== undefined && typeof value !== "function") throw new TypeError(`${name} must be a function`);
  return value;
}

/**
 * Checks `options` and applies the defaults; throws a `TypeError` naming
 * the bad option.
 *
 * @example
 * ```ts
 * import { MidiSmtpServer } from "@midi/smtp-server";
 *
 * const options = resolveWorkersOptions({ workers: 2, start: () => new MidiSmtpServer({ reusePort: true }) });
 * options.killTimeout; // => 40
 * resolveWorkersOptions({ workers: 0, start: () => new MidiSmtpServer() }); // throws TypeError
 * ```
 */
export function resolveWorkersOptions(options: RunWorkersOptions): ResolvedWorkersOptions {
  const o = options as Partial<RunWorkersOptions> | undefined;
  if (typeof o !== "object" || o === null) throw new TypeError("runWorkers needs options: { workers, start }");
  if (!Number.isInteger(o.workers) || o.workers! < 1) {
    throw new TypeError(`workers must be a whole number of processes, at least 1, got ${String(o.workers)}`);
  }
  if (typeof o.start !== "function") throw new TypeError("start must be a function that returns the server");
  const stopTimeout = seconds("stopTimeout", o.stopTimeout, DEFAULT_STOP_TIMEOUT, { zero: true });
  const restartDelay = seconds("restartDelay", o.restartDelay, 0.5);
  const maxRestartDelay = seconds("maxRestartDelay", o.maxRestartDelay, Math.max(30, restartDelay));
  if (maxRestartDelay < restartDelay) {
    throw new TypeError(`maxRestartDelay (${maxRestartDelay}) must be at least restartDelay (${restartDelay})`);
  }
  const env = o.env ?? {};
  if (typeof env !== "object" || env === null || Object.values(env).some((v) => typeof v !== "string")) {
    throw new TypeError("env must map names to strings");
  }
  const execArgv = o.execArgv;
  if (execArgv !== undefined && (!Array.isArray(execArgv) || execArgv.some((a) => typeof a !== "string"))) {
    throw new TypeError("execArgv must be an array of strings");
  }
  if (o.handleSignals !== undefined && typeof o.handleSignals !== "boolean") {
    throw new TypeError("handleSignals must be true or false");
  }
  return {
    workers: o.workers!,
    start: o.start,
    stop: optionalFunction("stop", o.stop) ?? defaultStop,
    stopTimeout,
    killTimeout: seconds("killTimeout", o.killTimeout, stopTimeout + KILL_MARGIN),
    startTimeout: seconds("startTimeout", o.startTimeout, 60),
    restartDelay,
    maxRestartDelay,
    handleSignals: o.handleSignals ?? true,
    env: { ...env },
    execArgv: execArgv === undefined ? undefined : [...execArgv],
    log: optionalFunction("log", o.log) ?? stderrLine,
    onEvent: optionalFunction("onEvent", o.onEvent),
  };
}
