/**
 * The supervisor process of `runWorkers`: starts the workers, restarts one
 * that dies (with a backoff), stops them all on SIGINT/SIGTERM (SIGKILL for
 * one that does not exit in time), and reports each one's status.
 *
 * @module
 */
import process from "node:process";
import { RestartBackoff } from "./backoff.ts";
import { type CommandLine, workerCommand } from "./mechanism.ts";
import type { ResolvedWorkersOptions } from "./options.ts";
import { isListeningMessage, type ListeningMessage, WORKER_ENV } from "./protocol.ts";
import { forkClusterWorker, signalProcess, type SpawnedWorker, spawnWorker } from "./spawn.ts";
import type { WorkerEvent, WorkerExit, WorkerMechanism, WorkerState, WorkerStatus, WorkerSupervisor } from "./types.ts";

/** Exits kept per worker in its status. */
const EXITS_KEPT = 10;
/** The signals the supervisor passes on. */
const SIGNALS = ["SIGINT", "SIGTERM"] as const;
/** Exit status by the shell's convention for death by a signal (128 + its number). */
const SIGNAL_STATUS: Record<typeof SIGNALS[number], number> = { SIGINT: 130, SIGTERM: 143 };
/** After SIGKILL, how long to wait for the exit events before exiting anyway. */
const KILLED_EXIT_WAIT_MS = 2000;

/** One worker: its current process, and what happened to the ones before. */
class Slot {
  readonly id: number;
  readonly backoff: RestartBackoff;
  process: SpawnedWorker | undefined;
  pid: number | undefined;
  state: WorkerState = "starting";
  startedAt: Date | undefined;
  listeningAt: Date | undefined;
  listening: ListeningMessage | undefined;
  /** Whether any of its processes ever listened (a first start that fails is a configuration error). */
  everListened = false;
  restarts = 0;
  exits: WorkerExit[] = [];
  restartTimer: ReturnType<typeof setTimeout> | undefined;
  killTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(id: number, backoff: RestartBackoff) {
    this.id = id;
    this.backoff = backoff;
  }

  /** `worker 2 (pid 1234)`, for log lines. */
  get name(): string {
    return this.pid === undefined ? `worker ${this.id}` : `worker ${this.id} (pid ${this.pid})`;
  }

  status(): WorkerStatus {
    return {
      id: this.id,
      pid: this.pid,
      state: this.state,
      startedAt: this.startedAt,
      listeningAt: this.listeningAt,
      addresses: [...this.listening?.addresses ?? []],
      tlsAddresses: [...this.listening?.tlsAddresses ?? []],
      tlsFingerprint: this.listening?.tlsFingerprint,
      restarts: this.restarts,
      exits: [...this.exits],
    };
  }
}

/** "exited with code 1", "exited with signal SIGKILL", "could not be started: ...". */
function exitText(code: number | null, signal: string | null, error?: Error): string {
  if (error) return `could not be started: ${error.message}`;
  return signal !== null ? `exited with signal ${signal}` : `exited with code ${code}`;
}

/** A promise with its settle functions (Promise.withResolvers needs Node 22), its rejection handled. */
function resolvers(): { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void } {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/** Supervises the workers; made and run by `runWorkers` in the supervisor process. */
export class Supervisor implements WorkerSupervisor {
  /** This process supervises. */
  readonly role = "supervisor" as const;
  /** How the workers share the ports. */
  readonly mechanism: WorkerMechanism;
  /** See {@link WorkerSupervisor.stopped}. */
  readonly stopped: Promise<boolean>;
  #options: ResolvedWorkersOptions;
  #slots: Slot[];
  #command: CommandLine | undefined;
  #phase: "starting" | "running" | "stopping" | "stopped" = "starting";
  /** Whether every worker exited 0 by itself in the stop. */
  #clean = true;
  #resolveStopped!: (clean: boolean) => void;
  /** Settles once every worker listened (or the start failed); always handled, run() may not be awaiting yet. */
  #started = resolvers();
  #startTimer: ReturnType<typeof setTimeout> | undefined;
  /** A signal stopped us while starting: the signal handler ends the process, start() must not report a failure. */
  #stoppedBySignal = false;
  #signalHandlers: Array<[string, () => void]> = [];
  /** Workers being forked (node:cluster is loaded first): a stop waits for them too. */
  #spawning = 0;

  /** A supervisor for `options.workers` workers; nothing runs until {@link run}. */
  constructor(options: ResolvedWorkersOptions, mechanism: WorkerMechanism) {
    this.#options = options;
    this.mechanism = mechanism;
    this.#slots = Array.from(
      { length: options.workers },
      (_, i) => new Slot(i + 1, new RestartBackoff(options.restartDelay, options.maxRestartDelay)),
    );
    this.stopped = new Promise((resolve) => this.#resolveStopped = resolve);
  }

  /**
   * Starts every worker; resolves once each one listens. If one exits before
   * it listens, or they take longer than `startTimeout`, the others are
   * stopped and it rejects, saying why.
   */
  async run(): Promise<this> {
    // Built once: the command line does not change, and reading it may touch /proc.
    if (this.mechanism === "reuseport") this.#command = workerCommand(this.#options.execArgv);
    if (this.#options.handleSignals) this.#installSignalHandlers();
    const how = this.mechanism === "reuseport"
      ? "sharing the ports with SO_REUSEPORT"
      : "sharing the ports through node:cluster";
    this.#log(`starting ${this.#slots.length} worker process${this.#slots.length === 1 ? "" : "es"}, ${how}`);
    this.#startTimer = setTimeout(
      () => this.#failStart(`not every worker listened within ${this.#options.startTimeout} s`),
      this.#options.startTimeout * 1000,
    );
    for (const slot of this.#slots) await this.#spawn(slot);
    try {
      await this.#started.promise;
    } catch (err) {
      await this.stopped;
      throw err;
    }
    return this;
  }

  /** See {@link WorkerSupervisor.status}. */
  status(): WorkerStatus[] {
    return this.#slots.map((slot) => slot.status());
  }

  /** See {@link WorkerSupervisor.stop}. */
  stop(): Promise<boolean> {
    if (this.#phase === "stopping" || this.#phase === "stopped") return this.stopped;
    const wasStarting = this.#phase === "starting";
    this.#phase = "stopping";
    clearTimeout(this.#startTimer);
    for (const slot of this.#slots) {
      clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
      if (slot.process === undefined || slot.pid === undefined) {
        slot.state = "exited";
        continue;
      }
      this.#terminate(slot, slot.pid);
    }
    if (wasStarting && !this.#stoppedBySignal) this.#started.reject(new Error("stopped before every worker listened"));
    this.#checkAllExited();
    return this.stopped;
  }

  /** SIGTERM to a worker, and SIGKILL if it is still alive after `killTimeout`. */
  #terminate(slot: Slot, pid: number): void {
    slot.state = "stopping";
    signalProcess(pid, "SIGTERM");
    slot.killTimer = setTimeout(() => this.#kill(slot), this.#options.killTimeout * 1000);
  }

  /** Whether stop() was called (a method, not a comparison: TypeScript would narrow #phase across an await). */
  #stopRequested(): boolean {
    return this.#phase === "stopping" || this.#phase === "stopped";
  }

  async #spawn(slot: Slot): Promise<void> {
    if (this.#stopRequested()) return;
    const env = { ...process.env as Record<string, string>, ...this.#options.env, [WORKER_ENV]: String(slot.id) };
    let spawned: SpawnedWorker | undefined;
    let failure: Error | undefined;
    // Counted while node:cluster loads: a stop meanwhile must wait for this worker too, not finish without it.
    this.#spawning++;
    try {
      spawned = this.#command ? spawnWorker(this.#command, env) : await forkClusterWorker(env, this.#options.execArgv);
    } catch (err) {
      // spawn() itself threw (bad arguments, no permission in Deno): as a process that could not start.
      failure = err instanceof Error ? err : new Error(String(err));
    } finally {
      this.#spawning--;
    }
    if (spawned === undefined) return this.#exited(slot, undefined, null, null, failure);
    const worker = spawned;
    slot.process = worker;
    slot.pid = worker.pid;
    slot.state = "starting";
    slot.startedAt = new Date();
    slot.listeningAt = undefined;
    slot.listening = undefined;
    worker.onMessage((message) => {
      if (slot.process === worker && isListeningMessage(message)) this.#listening(slot, message);
    });
    worker.onExit((code, signal, error) => this.#exited(slot, worker, code, signal, error));
    if (worker.pid === undefined) return; // its exit event, with the error, follows
    this.#event({ type: "started", worker: slot.status(), message: `started ${slot.name}` });
    // stop() came while node:cluster was loading: this one stops too.
    if (this.#stopRequested()) this.#terminate(slot, worker.pid);
  }

  #listening(slot: Slot, message: ListeningMessage): void {
    slot.listening = message;
    slot.listeningAt = new Date();
    slot.everListened = true;
    if (slot.state === "starting") slot.state = "listening";
    this.#event({
      type: "listening",
      worker: slot.status(),
      message: `${slot.name} listening on ${message.addresses.join(", ")}`,
    });
    this.#checkSameAddresses(slot);
    if (this.#phase === "starting" && this.#slots.every((s) => s.everListened)) {
      this.#phase = "running";
      clearTimeout(this.#startTimer);
      this.#started.resolve();
    }
  }

  /** Port 0 gives every SO_REUSEPORT worker a port of its own: that is no shared service, say so. */
  #checkSameAddresses(slot: Slot): void {
    const first = this.#slots.find((s) => s !== slot && s.listening !== undefined);
    if (!first?.listening || !slot.listening) return;
    const a = [...first.listening.addresses].sort().join(", ");
    const b = [...slot.listening.addresses].sort().join(", ");
    if (a !== b) {
      this.#log(
        `warning: ${slot.name} listens on ${b}, but ${first.name} on ${a}: ` +
          "with port 0 every worker gets a port of its own; give fixed ports",
      );
    }
  }

  #exited(
    slot: Slot,
    spawned: SpawnedWorker | undefined,
    code: number | null,
    signal: string | null,
    error?: Error,
  ): void {
    if (spawned !== undefined && slot.process !== spawned) return;
    const name = slot.name;
    const exit: WorkerExit = { pid: spawned?.pid ?? 0, code, signal, at: new Date() };
    const uptime = slot.startedAt ? (exit.at.getTime() - slot.startedAt.getTime()) / 1000 : 0;
    clearTimeout(slot.killTimer);
    slot.killTimer = undefined;
    slot.process = undefined;
    slot.pid = undefined;
    slot.listening = undefined;
    slot.listeningAt = undefined;
    slot.exits = [...slot.exits, exit].slice(-EXITS_KEPT);
    if (this.#phase === "stopping" || this.#phase === "stopped") {
      if (code !== 0) this.#clean = false;
      slot.state = "exited";
    } else if (this.#phase === "starting" && !slot.everListened) {
      slot.state = "exited";
    } else {
      slot.state = "restarting";
    }
    this.#event({ type: "exited", worker: slot.status(), exit, message: `${name} ${exitText(code, signal, error)}` });
    if (slot.state === "restarting") {
      const delay = slot.backoff.next(uptime);
      this.#event({
        type: "restarting",
        worker: slot.status(),
        delay,
        message: `restarting worker ${slot.id} in ${delay} s (restart ${slot.restarts + 1})`,
      });
      slot.restartTimer = setTimeout(() => {
        slot.restartTimer = undefined;
        slot.restarts++;
        void this.#spawn(slot);
      }, delay * 1000);
    } else if (this.#phase === "starting") {
      this.#failStart(`${name} ${exitText(code, signal, error)} before it listened`);
    }
    this.#checkAllExited();
  }

  /** A first start failed: stop whatever runs, and make run() reject. */
  #failStart(reason: string): void {
    if (this.#phase !== "starting") return;
    this.#log(`giving up: ${reason}`);
    this.#started.reject(new Error(reason));
    void this.stop();
  }

  #kill(slot: Slot): void {
    slot.killTimer = undefined;
    if (slot.pid === undefined) return;
    this.#clean = false;
    this.#event({
      type: "killed",
      worker: slot.status(),
      message: `${slot.name} did not exit within ${this.#options.killTimeout} s of SIGTERM: killing it (SIGKILL)`,
    });
    signalProcess(slot.pid, "SIGKILL");
  }

  #checkAllExited(): void {
    if (this.#phase !== "stopping" || this.#spawning > 0 || this.#slots.some((s) => s.process !== undefined)) return;
    this.#phase = "stopped";
    this.#removeSignalHandlers();
    this.#log(`all workers stopped${this.#clean ? "" : " (not all of them cleanly)"}`);
    this.#resolveStopped(this.#clean);
  }

  /** First signal: a graceful stop, then exit. A second: SIGKILL to every worker, and exit 1. */
  #installSignalHandlers(): void {
    for (const signal of SIGNALS) {
      const handler = () => {
        if (this.#phase === "stopping" || this.#phase === "stopped") {
          this.#log(`${signal} received again: killing the workers`);
          for (const slot of this.#slots) if (slot.pid !== undefined) signalProcess(slot.pid, "SIGKILL");
          const exitAnyway = setTimeout(() => process.exit(1), KILLED_EXIT_WAIT_MS);
          void this.stopped.then(() => {
            clearTimeout(exitAnyway);
            process.exit(1);
          });
          return;
        }
        const starting = this.#phase === "starting";
        this.#stoppedBySignal = starting;
        const busy = this.#slots.filter((s) => s.process !== undefined).length;
        this.#log(`${signal} received: stopping ${busy} worker${busy === 1 ? "" : "s"}`);
        void this.stop().then((clean) => process.exit(starting ? SIGNAL_STATUS[signal] : clean ? 0 : 1));
      };
      try {
        process.on(signal, handler);
        this.#signalHandlers.push([signal, handler]);
      } catch {
        // Deno on Windows cannot listen for SIGTERM; SIGINT still works.
      }
    }
  }

  #removeSignalHandlers(): void {
    for (const [signal, handler] of this.#signalHandlers.splice(0)) process.off(signal, handler);
  }

  #event(event: WorkerEvent): void {
    this.#log(event.message);
    try {
      this.#options.onEvent?.(event);
    } catch (err) {
      this.#log(`onEvent threw: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  #log(line: string): void {
    try {
      this.#options.log(line);
    } catch {
      // a broken log sink must not break supervision
    }
  }
}
