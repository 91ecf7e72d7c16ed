/**
 * What a dev server counts while it runs, for the line it prints when it
 * stops: `midi-smtp-server stopped after 12m03s: 42 messages stored, 57
 * connections, 0 refused, 3 error replies`.
 *
 * @module
 */
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { SMTP_CHANNELS } from "../events.ts";

/** The counts of one dev server (one process; with `--workers`, one worker). */
export class DevServerStats {
  /** When it began to listen (ms since the epoch). */
  startedAt: number = Date.now();
  /** Messages stored in the Maildir (and acknowledged with 250). */
  messages = 0;
  /** Sessions served: `onConnectEvent` calls. */
  connections = 0;
  /** Clients refused before a session (limits, busy, stopping, PROXY): see {@link countRefusals}. */
  refused = 0;
  /** 4xx and 5xx replies sent in sessions (refused commands and messages, failed AUTH, timeouts). */
  errorReplies = 0;

  /**
   * Counts the refusals published on the refusal channel until the returned
   * function is called. The channel is the process's, not one server's: only
   * a process that runs one dev server (the program, a worker) may count this
   * way, which is why {@link refused} is not counted otherwise.
   */
  countRefusals(): () => void {
    const onRefusal = () => void this.refused++;
    subscribe(SMTP_CHANNELS.refusal, onRefusal);
    return () => void unsubscribe(SMTP_CHANNELS.refusal, onRefusal);
  }

  /**
   * The final line, without the program name and newline: how long it ran
   * and its counts.
   *
   * @example
   * ```ts
   * const stats = new DevServerStats();
   * stats.startedAt = 0;
   * [stats.messages, stats.connections, stats.errorReplies] = [42, 57, 1];
   * stats.summary(723_400); // => "stopped after 12m03s: 42 messages stored, 57 connections, 0 refused, 1 error reply"
   * ```
   */
  summary(now: number = Date.now()): string {
    const counts = [
      `${count(this.messages, "message")} stored`,
      count(this.connections, "connection"),
      `${this.refused} refused`,
      count(this.errorReplies, "error reply", "error replies"),
    ];
    return `stopped after ${formatUptime(now - this.startedAt)}: ${counts.join(", ")}`;
  }
}

/** "1 message", "2 messages". */
function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * A run time in whole seconds, short and sortable by eye: `4s`, `12m03s`,
 * `26h00m05s`.
 *
 * @example
 * ```ts
 * formatUptime(4_999); // => "4s"
 * formatUptime(723_000); // => "12m03s"
 * formatUptime(93_605_000); // => "26h00m05s"
 * ```
 */
export function formatUptime(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const [h, m, s] = [Math.floor(total / 3600), Math.floor(total / 60) % 60, total % 60];
  const two = (n: number) => String(n).padStart(2, "0");
  if (h > 0) return `${h}h${two(m)}m${two(s)}s`;
  if (m > 0) return `${m}m${two(s)}s`;
  return `${s}s`;
}
