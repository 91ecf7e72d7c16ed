/**
 * One coarse clock for every session's idle deadline. Arming and clearing a
 * deadline is a Map write, not a timer: sessions do it on every command, and a
 * `setTimeout`/`clearTimeout` pair per command showed up in profiles. One
 * interval sweeps the deadlines while any exist; a deadline fires at most one
 * resolution step late.
 *
 * @module
 */

interface Entry {
  at: number;
  fire: () => void;
}

/** Deadlines keyed by their owner (one per owner). */
export class Deadlines {
  #entries = new Map<object, Entry>();
  #timer: ReturnType<typeof setInterval> | undefined;
  readonly #resolutionMs: number;

  /** @param resolutionMs how often deadlines are checked */
  constructor(resolutionMs: number) {
    this.#resolutionMs = resolutionMs;
  }

  /** Calls `fire` once, `ms` from now, unless cleared or set again before. */
  set(owner: object, ms: number, fire: () => void): void {
    this.#entries.set(owner, { at: Date.now() + ms, fire });
    if (this.#timer === undefined) this.#timer = setInterval(() => this.#sweep(), this.#resolutionMs);
  }

  /** Drops the owner's deadline, if any. */
  clear(owner: object): void {
    if (!this.#entries.delete(owner) || this.#entries.size > 0) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #sweep(): void {
    const now = Date.now();
    for (const [owner, entry] of this.#entries) {
      if (entry.at > now) continue;
      this.clear(owner);
      entry.fire();
    }
  }
}

/** The sweep step for the given timeouts (seconds): a tenth of the shortest, between 10 ms and 1 s. */
export function resolutionFor(timeoutsSeconds: ReadonlyArray<number | null>): number {
  const shortest = Math.min(...timeoutsSeconds.map((t) => t ?? Infinity));
  return Math.min(1000, Math.max(10, Number.isFinite(shortest) ? (shortest * 1000) / 10 : 1000));
}
