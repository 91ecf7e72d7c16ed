/**
 * Per-client limits, counted by client address across connections (IPv6 per
 * /64, see {@link clientKey}): open connections, new connections and MAIL
 * commands per minute, and failed AUTH attempts with a lockout. Postfix's
 * anvil is the anchor: fixed windows per client, state in memory only. No
 * I/O here: the server asks, and says what happened.
 *
 * @module
 */
import { clientKey } from "./cidr.ts";
import type { ResolvedOptions } from "./options.ts";

/** Why a client was refused: the reply it gets and a short reason for the log. */
export interface Refusal {
  /** Reply code: 421 (the connection closes) or 450. */
  readonly code: number;
  /** Enhanced status code. */
  readonly enhancedCode: string;
  /** Reply text. */
  readonly text: string;
  /** What the log says, e.g. `"maxConnectionsPerIp (50) reached"`. */
  readonly reason: string;
}

/** The limits, as in the server options (`null`: off). */
export type ClientLimitOptions = Pick<
  ResolvedOptions,
  | "maxConnectionsPerIp"
  | "maxConnectionRatePerIp"
  | "maxMessageRatePerIp"
  | "maxAuthFailuresPerIp"
  | "authLockoutTime"
  | "perIpLimitsExempt"
>;

/** The rate window of the per-minute limits. */
export const RATE_WINDOW_MS = 60_000;
/** Most clients tracked per counter: past it, expired entries go first, then the oldest. */
const MAX_KEYS = 100_000;

/**
 * Counts events per key in fixed windows: a key's window starts with its
 * first event and its count restarts once the window is over.
 */
export class WindowCounter {
  #entries = new Map<string, { start: number; count: number }>();
  #windowMs: number;
  #lastSweep = 0;

  /** @param windowMs the window length */
  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  /** Counts one event for `key`; returns the count in its current window, this one included. */
  hit(key: string, now: number): number {
    const entry = this.#current(key, now);
    if (entry) return ++entry.count;
    this.#makeRoom(now);
    this.#entries.set(key, { start: now, count: 1 });
    return 1;
  }

  /** The count in `key`'s current window. */
  count(key: string, now: number): number {
    return this.#current(key, now)?.count ?? 0;
  }

  /** Starts `key`'s window again from `now`, keeping its count (a lockout lasts a whole window from here). */
  restart(key: string, now: number): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    entry.start = now;
    // Re-inserted, so that eviction (oldest first) sees it as new.
    this.#entries.delete(key);
    this.#entries.set(key, entry);
  }

  /** Keys tracked (expired ones included until swept). */
  get size(): number {
    return this.#entries.size;
  }

  #current(key: string, now: number): { start: number; count: number } | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (now - entry.start < this.#windowMs) return entry;
    this.#entries.delete(key);
    return undefined;
  }

  /**
   * Drops expired entries at most once a window (a scan of every entry), and
   * when still full the oldest ones (O(1) each): a flood of new keys never
   * costs a scan per key.
   */
  #makeRoom(now: number): void {
    if (now - this.#lastSweep >= this.#windowMs) {
      this.#lastSweep = now;
      for (const [key, entry] of this.#entries) {
        if (now - entry.start >= this.#windowMs) this.#entries.delete(key);
      }
    }
    while (this.#entries.size >= MAX_KEYS) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
  }
}

/**
 * The per-client limits of one server.
 *
 * @example
 * ```ts
 * import { CidrList } from "@midi/smtp-server";
 *
 * const limits = new ClientLimits({
 *   maxConnectionsPerIp: 1,
 *   maxConnectionRatePerIp: null,
 *   maxMessageRatePerIp: null,
 *   maxAuthFailuresPerIp: 3,
 *   authLockoutTime: 300,
 *   perIpLimitsExempt: new CidrList(CidrList.LOOPBACK),
 * });
 * limits.admitConnection("192.0.2.1"); // => undefined
 * limits.admitConnection("192.0.2.1")?.reason; // => "maxConnectionsPerIp (1) reached"
 * limits.admitConnection("127.0.0.1"); // => undefined
 * limits.releaseConnection("192.0.2.1"); // when the admitted connection ends
 * limits.openConnections("192.0.2.1"); // => 0
 * ```
 */
export class ClientLimits {
  #options: ClientLimitOptions;
  #clock: () => number;
  #open = new Map<string, number>();
  #connectionRate = new WindowCounter(RATE_WINDOW_MS);
  #messageRate = new WindowCounter(RATE_WINDOW_MS);
  #authFailures: WindowCounter;

  /** @param options the limits @param clock milliseconds now (tests pass a fake one) */
  constructor(options: ClientLimitOptions, clock: () => number = Date.now) {
    this.#options = options;
    this.#clock = clock;
    this.#authFailures = new WindowCounter(options.authLockoutTime * 1000);
  }

  /**
   * Whether the limits apply to `ip` at all: not to exempt addresses, nor to
   * clients without an address (`""`: a Unix-socket peer, which is local,
   * or an XCLIENT `ADDR=[UNAVAILABLE]`), which would otherwise all share one
   * counter.
   */
  applies(ip: string): boolean {
    return ip !== "" && !this.#options.perIpLimitsExempt.contains(ip);
  }

  /**
   * Admits a new connection from `ip` and counts it as open, or says why not
   * (then nothing is counted as open). Call {@link releaseConnection} when an
   * admitted one ends.
   */
  admitConnection(ip: string): Refusal | undefined {
    if (!this.applies(ip)) return undefined;
    const key = clientKey(ip);
    const o = this.#options;
    const open = this.#open.get(key) ?? 0;
    if (o.maxConnectionsPerIp !== null && open >= o.maxConnectionsPerIp) {
      return refusal(421, "4.7.0", "Too many connections from your address, try again later", {
        reason: `maxConnectionsPerIp (${o.maxConnectionsPerIp}) reached`,
      });
    }
    if (o.maxConnectionRatePerIp !== null) {
      const count = this.#connectionRate.hit(key, this.#clock());
      if (count > o.maxConnectionRatePerIp) {
        return refusal(421, "4.7.0", "Too many connections from your address per minute, try again later", {
          reason: `maxConnectionRatePerIp (${o.maxConnectionRatePerIp} a minute) reached`,
        });
      }
    }
    this.#open.set(key, open + 1);
    return undefined;
  }

  /** An admitted connection from `ip` ended. */
  releaseConnection(ip: string): void {
    if (!this.applies(ip)) return;
    const key = clientKey(ip);
    const open = (this.#open.get(key) ?? 0) - 1;
    if (open > 0) this.#open.set(key, open);
    else this.#open.delete(key);
  }

  /** Open connections counted for `ip`'s key. */
  openConnections(ip: string): number {
    return this.#open.get(clientKey(ip)) ?? 0;
  }

  /** Counts a MAIL command from `ip`; a refusal (450) once the rate is passed. */
  admitMessage(ip: string): Refusal | undefined {
    const max = this.#options.maxMessageRatePerIp;
    if (max === null || !this.applies(ip)) return undefined;
    if (this.#messageRate.hit(clientKey(ip), this.#clock()) <= max) return undefined;
    return refusal(450, "4.7.1", "Too much mail from your address, try again later", {
      reason: `maxMessageRatePerIp (${max} a minute) reached`,
    });
  }

  /** Whether AUTH is locked for `ip` after too many failures; the refusal says so. */
  authLocked(ip: string): Refusal | undefined {
    const max = this.#options.maxAuthFailuresPerIp;
    if (max === null || !this.applies(ip)) return undefined;
    if (this.#authFailures.count(clientKey(ip), this.#clock()) < max) return undefined;
    return refusal(421, "4.7.0", "Too many failed authentications from your address, try again later", {
      reason: `maxAuthFailuresPerIp (${max}) reached: AUTH locked for ${this.#options.authLockoutTime} s`,
    });
  }

  /** Counts a failed AUTH from `ip`; reaching the limit locks AUTH for a whole `authLockoutTime` from now. */
  authFailed(ip: string): void {
    const max = this.#options.maxAuthFailuresPerIp;
    if (max === null || !this.applies(ip)) return;
    const key = clientKey(ip);
    const now = this.#clock();
    if (this.#authFailures.hit(key, now) === max) this.#authFailures.restart(key, now);
  }
}

function refusal(code: number, enhancedCode: string, text: string, extra: { reason: string }): Refusal {
  return { code, enhancedCode, text, reason: extra.reason };
}

/**
 * Logs a refusal once per client and window instead of once per connection:
 * a flood of 1000 refused connections is one line, plus a count of the ones
 * left out in the next line for that client.
 */
export class RefusalLog {
  #seen = new Map<string, { until: number; suppressed: number }>();
  #clock: () => number;

  /** @param clock milliseconds now */
  constructor(clock: () => number = Date.now) {
    this.#clock = clock;
  }

  /**
   * Whether to log this refusal now; then `suppressed` is how many of this
   * kind for this client were left out since the last line.
   */
  shouldLog(ip: string, reason: string): { suppressed: number } | undefined {
    const key = `${clientKey(ip)} ${reason}`;
    const now = this.#clock();
    const entry = this.#seen.get(key);
    if (entry && now < entry.until) {
      entry.suppressed++;
      return undefined;
    }
    this.#makeRoom(now);
    this.#seen.delete(key); // re-inserted: eviction goes oldest first
    this.#seen.set(key, { until: now + RATE_WINDOW_MS, suppressed: 0 });
    return { suppressed: entry?.suppressed ?? 0 };
  }

  #lastSweep = 0;

  /**
   * As {@link WindowCounter}: a scan at most once a window, else the oldest
   * go. An entry is kept one window past its own, so that its count of left
   * out lines still reaches the next line for that client.
   */
  #makeRoom(now: number): void {
    if (now - this.#lastSweep >= RATE_WINDOW_MS) {
      this.#lastSweep = now;
      for (const [key, entry] of this.#seen) if (now >= entry.until + RATE_WINDOW_MS) this.#seen.delete(key);
    }
    while (this.#seen.size >= MAX_KEYS) this.#seen.delete(this.#seen.keys().next().value as string);
  }
}
