/**
 * The delay before a dead worker is started again: short after a worker that
 * ran for a while, doubling for one that keeps dying soon after its start,
 * so that a crash loop costs a restart every {@link RestartBackoff.max}
 * seconds, not a busy supervisor.
 *
 * @module
 */

/**
 * Restart delays for one worker.
 *
 * @example
 * ```ts
 * const backoff = new RestartBackoff(0.5, 30);
 * // It died 0.1 s after its start, then twice more soon after each restart:
 * backoff.next(0.1); // => 0.5
 * backoff.next(0.2); // => 1
 * backoff.next(0.2); // => 2
 * // It had run for 60 s: a fresh failure.
 * backoff.next(60); // => 0.5
 * ```
 */
export class RestartBackoff {
  /** Seconds before the first restart. */
  readonly initial: number;
  /** The longest delay, in seconds; a worker that stayed up that long starts over at {@link initial}. */
  readonly max: number;
  #failures = 0;

  /** A backoff from `initial` seconds, doubling up to `max`. */
  constructor(initial: number, max: number) {
    // A delay of 0 would never grow: a crashing worker would spin.
    if (!(initial > 0) || !(max >= initial) || !Number.isFinite(max)) {
      throw new RangeError(`restart delays must satisfy 0 < restartDelay <= maxRestartDelay (${initial}, ${max})`);
    }
    this.initial = initial;
    this.max = max;
  }

  /** The delay before the next restart of a worker that died `uptime` seconds after its start. */
  next(uptime: number): number {
    if (uptime >= this.max) this.#failures = 0;
    const delay = Math.min(this.max, this.initial * 2 ** this.#failures);
    this.#failures++;
    return delay;
  }
}
