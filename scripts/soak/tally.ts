/**
 * What the soak's load generator counts, and {@link Dialog}: one client's
 * side of a conversation, where every reply is checked against the codes
 * that step allows. Anything else is counted as unexpected (with the first
 * examples kept), a wait past its deadline as a hang, and a socket error by
 * its code.
 *
 * @module
 */
import type { ReadResult, Reply, SmtpConn } from "./conn.ts";

/** Counts of one load-generator run (what it prints as JSON). */
export interface Tally {
  /** Connections opened, by population. */
  connections: Record<string, number>;
  /** Connections that could not be opened, by `population code`. */
  connectErrors: Record<string, number>;
  /** Every reply code >= 400 the server sent, by `code enhanced text` (digits in the text replaced). */
  refusals: Record<string, number>;
  /** Every reply, by `population step code`. */
  replies: Record<string, number>;
  /** Replies no step allowed, malformed replies, closes without the reply a step needs, by `population step: what`. */
  unexpected: Record<string, number>;
  /** The first unexpected events, in full. */
  unexpectedExamples: string[];
  /** Waits past their deadline (the server neither answered nor closed), by `population step`. */
  hangs: Record<string, number>;
  /** Socket errors seen by clients, by `population code` (resets while a client still writes, for one). */
  socketErrors: Record<string, number>;
  /** Messages the clients got a 250 for, by population. */
  delivered: Record<string, number>;
  /** Messages given up after their retries, by population. */
  givenUp: Record<string, number>;
  /** Messages acknowledged per 10 s of the run (well-behaved populations). */
  deliveredPerWindow: number[];
  /** Connections still open at the hard stop (then destroyed). */
  openAtHardStop: number;
  /** Probe results (probe phase): one line per failure. */
  probeFailures: string[];
  /** Probe connections made. */
  probes: number;
  /**
   * Milliseconds from starting to connect to the greeting, well-behaved clients of the load phase
   * (greetingDelay is 200 of them; a SYN the kernel dropped adds 1 s or more).
   */
  greetingMs: { count: number; p50: number; p90: number; p99: number; max: number };
  /** Seconds from the first connection to the last client's end. */
  elapsedSec: number;
}

/** A fresh tally. */
export function newTally(): Tally {
  return {
    connections: {},
    connectErrors: {},
    refusals: {},
    replies: {},
    unexpected: {},
    unexpectedExamples: [],
    hangs: {},
    socketErrors: {},
    delivered: {},
    givenUp: {},
    deliveredPerWindow: [],
    openAtHardStop: 0,
    probeFailures: [],
    probes: 0,
    greetingMs: { count: 0, p50: NaN, p90: NaN, p99: NaN, max: NaN },
    elapsedSec: 0,
  };
}

/** Adds one to `map[key]`. */
export function bump(map: Record<string, number>, key: string, by = 1): void {
  map[key] = (map[key] ?? 0) + by;
}

/** Reply codes the server sends with a close after it: 221, 421, 554. */
const CLOSING = new Set([221, 421, 554]);
/** Pseudo-code for "the server closed the connection" in an allowed-codes list. */
export const CLOSED = 0;
/** How long a client waits for the server to close after a closing reply. */
const CLOSE_AFTER_REPLY_MS = 5000;

/** One client conversation; reads replies and checks each against what the step allows. */
export class Dialog {
  /** The codes of every reply received so far, in order. */
  readonly codes: number[] = [];
  #closingSeen = false;

  constructor(readonly tally: Tally, readonly pop: string, readonly conn: SmtpConn) {
    bump(tally.connections, pop);
  }

  /** Counts an unexpected event, keeping the first examples. */
  unexpected(step: string, what: string): void {
    bump(this.tally.unexpected, `${this.pop} ${step}: ${what.replace(/\d{4,}/g, "N")}`);
    if (this.tally.unexpectedExamples.length < 25) {
      this.tally.unexpectedExamples.push(`${this.pop} ${step}: ${what}`);
    }
  }

  /** Counts a hang: nothing came within the deadline. */
  hang(step: string): void {
    bump(this.tally.hangs, `${this.pop} ${step}`);
  }

  /**
   * Reads one reply; returns it if its code is in `allowed`. Returns
   * `null` when the connection closed (fine if `allowed` has
   * {@link CLOSED}), on a timeout (a hang), or for a reply not allowed
   * (unexpected). After a closing reply (221, 421, 554) the server must
   * close the connection; that is checked too.
   */
  async expect(step: string, allowed: readonly number[], timeoutMs = 15000): Promise<Reply | null> {
    return await this.#check(step, await this.conn.read(timeoutMs), allowed);
  }

  async #check(step: string, r: ReadResult, allowed: readonly number[]): Promise<Reply | null> {
    if (r.kind === "timeout") {
      this.hang(step);
      return null;
    }
    if (r.kind === "closed") {
      if (!allowed.includes(CLOSED)) {
        this.unexpected(step, `connection closed without a reply${r.error ? ` (${r.error})` : ""}`);
      }
      return null;
    }
    this.codes.push(r.code);
    bump(this.tally.replies, `${this.pop} ${step} ${r.code}`);
    if (r.code >= 400) {
      const text = r.text.replace(/\d+/g, "N").slice(0, 70);
      bump(this.tally.refusals, `${r.code} ${r.enhanced ? r.enhanced + " " : ""}${text}`);
    }
    if (r.code < 0) {
      this.unexpected(step, "malformed reply");
      return null;
    }
    if (CLOSING.has(r.code)) await this.#closedAfter(step, r);
    if (!allowed.includes(r.code)) {
      this.unexpected(step, `got ${r.code} ${r.enhanced} ${r.text}`.replace(/\s+/g, " "));
      return null;
    }
    return r;
  }

  async #closedAfter(step: string, r: Reply): Promise<void> {
    if (this.#closingSeen) return;
    this.#closingSeen = true;
    // Nothing else may come after a closing reply; then the close.
    const next = await this.conn.read(CLOSE_AFTER_REPLY_MS);
    if (next.kind === "reply") this.unexpected(step, `reply ${next.code} after closing reply ${r.code}`);
    else if (next.kind === "timeout") this.unexpected(step, `connection left open after ${r.code}`);
  }

  /** Waits for the server to close without sending anything; false (and counted) otherwise. */
  async expectSilentClose(step: string, timeoutMs: number): Promise<boolean> {
    const r = await this.conn.read(timeoutMs);
    if (r.kind === "timeout") {
      this.hang(step);
      return false;
    }
    if (r.kind === "reply" || this.conn.received > 0) {
      this.unexpected(step, `expected a close with nothing sent, got ${r.kind === "reply" ? r.code : "bytes"}`);
      return false;
    }
    return true;
  }

  /** Reads replies until the server closes, each checked against `allowed`; false on a hang or an unexpected reply. */
  async untilClosed(step: string, allowed: readonly number[], timeoutMs: number): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.conn.read(Math.max(0, until - Date.now()));
      if (r.kind === "closed") return true;
      if ((await this.#check(step, r, allowed)) === null) return false;
    }
  }

  /** Ends the conversation: counts the socket error if any, and closes our side. */
  close(): void {
    if (this.conn.error) bump(this.tally.socketErrors, `${this.pop} ${this.conn.error}`);
    this.conn.destroy();
  }
}

/** Percentiles of `values` (milliseconds) for {@link Tally.greetingMs}. */
export function percentiles(values: number[]): Tally["greetingMs"] {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]) : NaN;
  return { count: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) };
}
