/**
 * Time limits for steps that may never finish (a Maildir on a dead network
 * mount, a certificate path that is a FIFO): the start deadline
 * ({@link Deadline}) and the bounded wait of a stop ({@link settlesWithin}).
 *
 * @module
 */

/** A step did not finish in time: its work may still be running (or stuck). */
export class DeadlineError extends Error {
  override name = "DeadlineError";
}

/**
 * A deadline for several steps in a row; a step past it rejects with a
 * {@link DeadlineError} that says what was still going on.
 *
 * @example
 * ```ts
 * // not run: creates ./mail and listens on port 2525
 * import { MidiSmtpServer } from "@midi/smtp-server";
 * import { mkdir } from "node:fs/promises";
 *
 * const server = new MidiSmtpServer({ hosts: "127.0.0.1", ports: 2525 });
 * const startup = new Deadline(30, "start-up");
 * await startup.race("creating the Maildir ./mail", mkdir("./mail/new", { recursive: true }));
 * await startup.race("starting to listen", server.start(), () => void server.stop());
 * // past 30 s in all: DeadlineError "start-up did not finish within 30 s: still starting to listen"
 * ```
 */
export class Deadline {
  readonly #until: number;
  readonly #seconds: number;
  readonly #what: string;

  /** Starts the clock: `seconds` from now for everything `what` (e.g. "start-up") does. */
  constructor(seconds: number, what: string) {
    this.#seconds = seconds;
    this.#until = Date.now() + seconds * 1000;
    this.#what = what;
  }

  /**
   * `promise`, or a rejection naming `step` if the deadline passes first;
   * then `late` runs should the promise still resolve (e.g. to undo what
   * nobody waits for any more).
   */
  async race<T>(step: string, promise: Promise<T>, late?: (value: T) => void): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let timedOut = false;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        reject(new DeadlineError(`${this.#what} did not finish within ${this.#seconds} s: still ${step}`));
      }, Math.max(0, this.#until - Date.now()));
    });
    promise.then((value) => timedOut && late?.(value), () => {});
    try {
      return await Promise.race([promise, expired]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Whether `promise` settles (resolves or rejects) within `ms`; the timer is
 * cleared either way, so it never keeps the process alive.
 *
 * @example
 * ```ts
 * const done = Promise.resolve("new/1764324000.4242_9f86d081884c7d65.myhost");
 * const stuck = new Promise<string>(() => {}); // e.g. a write to a dead network mount
 * await settlesWithin(Promise.allSettled([done]), 100); // => true
 * await settlesWithin(Promise.allSettled([done, stuck]), 100); // => false
 * ```
 */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), ms));
  try {
    return await Promise.race([promise.then(() => true, () => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}
