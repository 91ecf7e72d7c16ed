/**
 * One coarse clock for every session's idle deadline. Arming and clearing a
 * deadline writes two fields of the owner's entry, not a timer: sessions do it
 * on every command, and a `setTimeout`/`clearTimeout` pair per command showed
 * up in profiles. One interval runs while any deadline is armed and sweeps
 * every known owner; a deadline fires at most one resolution step late.
 *
 * @module
 */

interface Entry {
  /** When to fire (ms since the epoch); `Infinity` while cleared. */
  at: number;
  fire: () => void;
}

/**
 * Deadlines keyed by their owner (one per owner). An owner's entry stays in
 * the map from its first `set()` until `remove()`, and `clear()` only marks it:
 * a session arms and clears its deadline for every command, and a Map insert
 * and delete per command (plus a fresh entry) was a steady share of the
 * allocations per message.
 */
export class Deadlines {
  #entries = new Map<object, Entry>();
  /** Entries with a deadline; the sweep runs while there are any. */
  #armed = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  readonly #resolutionMs: number;

  /** @param resolutionMs how often deadlines are checked */
  constructor(resolutionMs: number) {
    this.#resolutionMs = resolutionMs;
  }

  /** Calls `fire` once, `ms` from now, unless cleared or set again before. */
  set(owner: object, ms: number, fire: () => void): void {
    let entry = this.#entries.get(owner);
    if (!entry) {
      entry = { at: Infinity, fire };
      this.#entries.set(owner, entry);
    }
    if (entry.at === Infinity) this.#armed++;
    entry.at = Date.now() + ms;
    entry.fire = fire;
    if (this.#timer === undefined) this.#timer = setInterval(() => this.#sweep(), this.#resolutionMs);
  }

  /** Brings the owner's armed deadline forward to `ms` from now, if it is later than that. */
  shorten(owner: object, ms: number): void {
    const entry = this.#entries.get(owner);
    if (!entry || entry.at === Infinity) return;
    entry.at = Math.min(entry.at, Date.now() + ms);
  }

  /** Drops the owner's deadline, if any (the owner stays known until `remove()`). */
  clear(owner: object): void {
    const entry = this.#entries.get(owner);
    if (!entry || entry.at === Infinity) return;
    entry.at = Infinity;
    if (--this.#armed > 0) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Forgets the owner (its deadline too): call it when the owner ends. */
  remove(owner: object): void {
    this.clear(owner);
    this.#entries.delete(owner);
  }

  /** How many owners are known (for tests). */
  get size(): number {
    return this.#entries.size;
  }

  /** Whether the sweep interval runs (for tests: it must stop when nothing is armed). */
  get ticking(): boolean {
    return this.#timer !== undefined;
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
