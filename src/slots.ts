/**
 * Processing slots (`maxProcessings`): a session runs only while it holds
 * one; further connections wait in line, each for `queueTimeout` at most.
 *
 * @module
 */

interface Waiter {
  admit: (ok: boolean) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * A counting semaphore with a bounded wait.
 *
 * @example
 * ```ts
 * const slots = new Slots(1);
 * await slots.acquire(30_000); // => true
 * const next = slots.acquire(30_000); // waits: the only slot is taken
 * slots.waiting; // => 1
 * slots.release(); // passes the slot straight on
 * await next; // => true
 * await slots.acquire(0); // => false
 * slots.release();
 * ```
 */
export class Slots {
  #max: number;
  #busy = 0;
  #waiting: Waiter[] = [];

  /** @param max slots in all */
  constructor(max: number) {
    this.#max = max;
  }

  /** Slots held now. */
  get busy(): number {
    return this.#busy;
  }

  /** Connections waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Whether a slot is free now. */
  get free(): boolean {
    return this.#busy < this.#max;
  }

  /**
   * Takes a slot, waiting up to `timeoutMs` (`null`: without limit) for one
   * to be released; `false` on timeout or {@link refuseAll}.
   */
  acquire(timeoutMs: number | null): Promise<boolean> {
    if (this.#busy < this.#max) {
      this.#busy++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const waiter: Waiter = { admit: resolve, timer: undefined };
      if (timeoutMs !== null) {
        waiter.timer = setTimeout(() => {
          const i = this.#waiting.indexOf(waiter);
          if (i >= 0) this.#waiting.splice(i, 1);
          resolve(false);
        }, timeoutMs);
      }
      this.#waiting.push(waiter);
    });
  }

  /** Gives a slot back; the first waiter, if any, gets it straight away. */
  release(): void {
    const next = this.#waiting.shift();
    if (next) {
      clearTimeout(next.timer);
      next.admit(true); // the slot passes straight on
      return;
    }
    if (this.#busy > 0) this.#busy--;
  }

  /** Every waiter gets `false` (the server stops). */
  refuseAll(): void {
    for (const waiter of this.#waiting.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.admit(false);
    }
  }
}
