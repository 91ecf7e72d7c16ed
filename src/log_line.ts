/**
 * The one log line style of the library's default logger and the dev server:
 * `2026-12-02T04:00:00Z [INFO] [6K2M9QF1ZP4T] msg`. ISO 8601 in UTC with
 * whole seconds sorts as text and means the same in every time zone; the
 * session id (only on lines of a session) pulls one client's story out of
 * interleaved lines.
 *
 * @module
 */

/**
 * `2026-11-28T10:00:00Z`: ISO 8601 in UTC, whole seconds (milliseconds would
 * only widen every line; events carry exact times for those who need them).
 *
 * @example
 * ```ts
 * logTimestamp(new Date(Date.UTC(2026, 10, 28, 10, 0, 0, 999))); // => "2026-11-28T10:00:00Z"
 * ```
 */
export function logTimestamp(date: Date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * One log line, without its newline: timestamp, upper-case severity in
 * brackets, the session id in brackets when the line belongs to a session,
 * then the message.
 *
 * @example
 * ```ts
 * const at = new Date(Date.UTC(2026, 11, 2, 4, 0, 0));
 * formatLogLine("info", "client vanished", "6K2M9QF1ZP4T", at);
 * // => "2026-12-02T04:00:00Z [INFO] [6K2M9QF1ZP4T] client vanished"
 * formatLogLine("warn", "refused 192.0.2.7: busy", undefined, at);
 * // => "2026-12-02T04:00:00Z [WARN] refused 192.0.2.7: busy"
 * ```
 */
export function formatLogLine(severity: string, msg: string, sessionId?: string, date: Date = new Date()): string {
  const session = sessionId ? ` [${sessionId}]` : "";
  return `${logTimestamp(date)} [${severity.toUpperCase()}]${session} ${msg}`;
}
