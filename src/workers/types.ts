/**
 * The types of `runWorkers`: its options, what a worker is told about itself,
 * and the status the supervisor reports per worker.
 *
 * @module
 */
import type { MidiSmtpServer } from "../server.ts";

/**
 * How the workers share the ports: `"reuseport"` (each worker binds the
 * ports itself with SO_REUSEPORT and the kernel spreads new connections over
 * them: Deno, Bun, Node >= 22.12 / 23.1 on Linux) or `"cluster"`
 * (`node:cluster`: the primary holds the socket and hands connections to its
 * workers in turn: Node 20, and Node elsewhere than on Linux).
 */
export type WorkerMechanism = "reuseport" | "cluster";

/** What a worker process is told about itself, in `start` and `stop`. */
export interface WorkerInfo {
  /** 1 to N; a restarted worker keeps the number of the one it replaces. */
  readonly id: number;
  /** How the ports are shared. */
  readonly mechanism: WorkerMechanism;
  /** Seconds the worker has to stop (from {@link RunWorkersOptions.stopTimeout}). */
  readonly stopTimeout: number;
}

/** Where a worker is in its life, as the supervisor sees it. */
export type WorkerState =
  /** Spawned, not listening yet. */
  | "starting"
  /** Its server listens. */
  | "listening"
  /** Asked to stop (SIGTERM), not exited yet. */
  | "stopping"
  /** Exited; a new process starts after the backoff delay. */
  | "restarting"
  /** Exited for good (the supervisor is stopping or gave up). */
  | "exited";

/** How one worker process ended. */
export interface WorkerExit {
  /** Its process id. */
  readonly pid: number;
  /** Its exit status, or `null` when a signal ended it. */
  readonly code: number | null;
  /** The signal that ended it (`"SIGKILL"`), or `null`. */
  readonly signal: string | null;
  /** When the supervisor saw it exit. */
  readonly at: Date;
}

/** One worker's status, a snapshot (see `WorkerSupervisor.status`). */
export interface WorkerStatus {
  /** 1 to N. */
  readonly id: number;
  /** The current process's id; `undefined` while none runs (between a crash and its restart). */
  readonly pid: number | undefined;
  /** Where it is. */
  readonly state: WorkerState;
  /** When the current (or last) process was started. */
  readonly startedAt: Date | undefined;
  /** When the current process reported it listens; `undefined` until then. */
  readonly listeningAt: Date | undefined;
  /** What the current process listens on (`server.addresses`), once it does. */
  readonly addresses: readonly string[];
  /** The implicit-TLS addresses among them (`server.tlsAddresses`). */
  readonly tlsAddresses: readonly string[];
  /** The TLS certificate's SHA-256 fingerprint in that process (`server.tlsFingerprint`). */
  readonly tlsFingerprint: string | undefined;
  /** How many times this worker was started again after it exited. */
  readonly restarts: number;
  /** The last exits of this worker's processes, oldest first (at most 10). */
  readonly exits: readonly WorkerExit[];
}

/** Something that happened to a worker, as passed to {@link RunWorkersOptions.onEvent}. */
export type WorkerEvent =
  | {
    /** A worker process was spawned. */
    readonly type: "started";
    readonly worker: WorkerStatus;
    /** The log line. */
    readonly message: string;
  }
  | {
    /** Its server listens. */
    readonly type: "listening";
    readonly worker: WorkerStatus;
    /** The log line. */
    readonly message: string;
  }
  | {
    /** A worker process exited (by itself, or killed). */
    readonly type: "exited";
    readonly worker: WorkerStatus;
    /** How. */
    readonly exit: WorkerExit;
    /** The log line. */
    readonly message: string;
  }
  | {
    /** A worker will be started again after `delay` seconds. */
    readonly type: "restarting";
    readonly worker: WorkerStatus;
    /** Seconds until the restart (the backoff). */
    readonly delay: number;
    /** The log line. */
    readonly message: string;
  }
  | {
    /** A stopping worker did not exit within `killTimeout`, and was sent SIGKILL. */
    readonly type: "killed";
    readonly worker: WorkerStatus;
    /** The log line. */
    readonly message: string;
  };

/** Options of `runWorkers`. The same program runs as supervisor and as every worker, so both read them. */
export interface RunWorkersOptions {
  /** How many worker processes (at least 1). */
  workers: number;
  /**
   * Runs in each worker process: makes the server (with `reusePort: true`)
   * and returns it, started or not (a server not started yet is started).
   * Put everything a worker needs in here, not at the top of the program:
   * the supervisor runs the top of the program too.
   */
  start: (worker: WorkerInfo) => Promise<MidiSmtpServer> | MidiSmtpServer;
  /**
   * Runs in a worker on SIGTERM or SIGINT (or when its supervisor is gone):
   * stops the server. Default: `server.stop({ gracefully: true,
   * waitSecondsBeforeClose: stopTimeout })`, so sessions finish the message
   * in progress. The worker then exits 0, or 1 if this throws or returns
   * `false`.
   */
  stop?: (server: MidiSmtpServer, worker: WorkerInfo) => Promise<unknown> | unknown;
  /** Seconds a stopping worker lets its sessions finish (default 30). */
  stopTimeout?: number;
  /**
   * Seconds after SIGTERM before a worker that has not exited is killed
   * with SIGKILL (default `stopTimeout` + 10): nothing can hang the stop.
   */
  killTimeout?: number;
  /**
   * Seconds every worker has to listen at first (default 60); if one exits
   * before it listens, or takes longer, `runWorkers` stops the others and
   * rejects: that is a configuration error, which restarting would repeat.
   */
  startTimeout?: number;
  /**
   * Seconds before the first restart of a worker that died (default 0.5).
   * The delay doubles with every restart up to {@link maxRestartDelay}, so a
   * worker that keeps crashing does not spin; a worker that stayed up that
   * long starts over at this delay.
   */
  restartDelay?: number;
  /** The longest delay between restarts, in seconds (default 30). */
  maxRestartDelay?: number;
  /**
   * Whether the supervisor handles SIGINT and SIGTERM (default `true`): the
   * first stops every worker gracefully and exits (0 if all exited 0, else
   * 1) once all have; a second one kills them (SIGKILL) and exits 1.
   */
  handleSignals?: boolean;
  /** Extra environment variables for the workers. */
  env?: Record<string, string>;
  /**
   * The runtime's flags for the worker processes (e.g. `["run", "-A",
   * "--config", "deno.json"]` on Deno, `["--import", "tsx"]` on Node), in
   * place of this process's own. On Bun and Node the default is
   * `process.execArgv`; on Deno the command line this process was started
   * with (read from /proc/self/cmdline, which needs `--allow-all`; without
   * it, the permissions granted in full, so scoped ones such as
   * `--allow-net=:25` must be given here). On Deno `--unstable-net` is added
   * when missing: `Deno.listen` needs it for `reusePort`.
   */
  execArgv?: readonly string[];
  /** Receives every log line of the supervisor and the workers' own (default: stderr, prefixed `workers: `). */
  log?: (line: string) => void;
  /** Called in the supervisor for every {@link WorkerEvent}. */
  onEvent?: (event: WorkerEvent) => void;
}

/** What `runWorkers` resolves with in the supervisor process, once every worker listens. */
export interface WorkerSupervisor {
  /** This process supervises. */
  readonly role: "supervisor";
  /** How the workers share the ports. */
  readonly mechanism: WorkerMechanism;
  /** A snapshot of every worker's status, by id. */
  status(): WorkerStatus[];
  /**
   * Stops every worker: SIGTERM, then SIGKILL for those still alive after
   * `killTimeout`. Resolves once all have exited, with `true` if every one
   * exited 0 by itself. Restarts stop at once.
   */
  stop(): Promise<boolean>;
  /** Resolves once every worker has exited for good after {@link stop} (or a signal), as `stop()` does. */
  readonly stopped: Promise<boolean>;
}

/** What `runWorkers` resolves with in a worker process, once its server listens. */
export interface WorkerProcess {
  /** This process is a worker. */
  readonly role: "worker";
  /** Which worker. */
  readonly worker: WorkerInfo;
  /** Its running server. */
  readonly server: MidiSmtpServer;
}
