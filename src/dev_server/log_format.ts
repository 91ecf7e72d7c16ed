/**
 * The dev server's log and message lines in either `--log-format`: `text`,
 * the library's own line style (`src/log_line.ts`), or `json`, one object per
 * line for log collectors and `jq`. Only these lines change with the format:
 * the start-up report, the Ctrl-C hint, the final line and the program's own
 * `midi-smtp-server: ...` lines stay text.
 *
 * @module
 */
import { formatLogLine, logTimestamp } from "../log_line.ts";
import type { LogSeverity } from "../options.ts";

/** How the dev server prints log lines and the lines per message (`--log-format`). */
export type LogFormat = "text" | "json";
/** The values of `--log-format`. */
export const LOG_FORMATS: readonly LogFormat[] = ["text", "json"];

/** What a log line may tell of its session. */
export interface LogLineSession {
  /** The session id (`ctx.sessionId`). */
  readonly sessionId: string;
  /** The client's address (`ctx.server.remoteIp`; `""` on a Unix socket, then left out of JSON). */
  readonly remoteIp: string;
}

/**
 * A log line with its newline: `text` as the library's default logger prints
 * it; `json` as `{"time","level","sessionId"?,"msg","remoteIp"?}`, the session
 * fields only on lines of a session.
 *
 * @example
 * ```ts
 * const at = new Date(Date.UTC(2026, 11, 2, 4, 0, 0));
 * const session = { sessionId: "6K2M9QF1ZP4T", remoteIp: "192.0.2.7" };
 * logLine("text", "warn", "AUTH PLAIN failed", session, at);
 * // => "2026-12-02T04:00:00Z [WARN] [6K2M9QF1ZP4T] AUTH PLAIN failed\n"
 * logLine("json", "warn", "AUTH PLAIN failed", session, at);
 * // => '{"time":"2026-12-02T04:00:00Z","level":"warn","sessionId":"6K2M9QF1ZP4T","msg":"AUTH PLAIN failed","remoteIp":"192.0.2.7"}\n'
 * ```
 */
export function logLine(
  format: LogFormat,
  severity: LogSeverity,
  msg: string,
  session?: LogLineSession | null,
  date: Date = new Date(),
): string {
  if (format === "text") return `${formatLogLine(severity, msg, session?.sessionId, date)}\n`;
  return jsonLine({
    time: logTimestamp(date),
    level: severity,
    ...(session ? { sessionId: session.sessionId } : {}),
    msg,
    ...(session?.remoteIp ? { remoteIp: session.remoteIp } : {}),
  });
}

/** A stored message, for {@link messageLine}. */
export interface StoredMessage {
  /** The session id. */
  readonly sessionId: string;
  /** The reverse-path as the session has it: `"<a@example.com>"`, `"<>"`. */
  readonly from: string;
  /** The forward-paths, likewise. */
  readonly to: readonly string[];
  /** Message bytes (without the trace headers). */
  readonly size: number;
  /** The Maildir file it was stored as. */
  readonly file: string;
}

/**
 * The line printed per stored message, with its newline. `text` keeps the
 * format scripts already parse (`TIME FROM -> TO,TO SIZE bytes FILE`, every
 * address sanitised so it cannot drive the terminal); `json` is
 * `{"time","level":"info","event":"message","sessionId","from","to":[...],"size","file"}`,
 * the addresses as sent but without angle brackets, as in the envelope files.
 *
 * @example
 * ```ts
 * const at = new Date(Date.UTC(2026, 11, 2, 4, 0, 0));
 * const message = { sessionId: "6K2M9QF1ZP4T", from: "<a@x>", to: ["<b@y>"], size: 22, file: "mail/new/1.x" };
 * messageLine("text", message, (address) => address, at);
 * // => "2026-12-02T04:00:00Z <a@x> -> <b@y> 22 bytes mail/new/1.x\n"
 * const json = JSON.parse(messageLine("json", message, (address) => address, at));
 * [json.event, json.sessionId, json.to, json.size]; // => ["message", "6K2M9QF1ZP4T", ["b@y"], 22]
 * ```
 */
export function messageLine(
  format: LogFormat,
  message: StoredMessage,
  sanitize: (address: string) => string,
  date: Date = new Date(),
): string {
  if (format === "text") {
    const to = message.to.map(sanitize).join(",");
    return `${logTimestamp(date)} ${sanitize(message.from)} -> ${to} ${message.size} bytes ${message.file}\n`;
  }
  return jsonLine({
    time: logTimestamp(date),
    level: "info",
    event: "message",
    sessionId: message.sessionId,
    from: bare(message.from),
    to: message.to.map(bare),
    size: message.size,
    file: message.file,
  });
}

/** `"<a@example.com>"` → `"a@example.com"`; `"<>"` → `""`. */
function bare(path: string): string {
  return path.replace(/^<(.*)>$/s, "$1");
}

/**
 * `value` as one line of JSON with its newline. DEL, the C1 controls and the
 * Unicode line and paragraph separators are escaped too (JSON allows them
 * raw): client-given text can then neither drive a terminal nor split the
 * line for a reader that splits at every line break; the value is unchanged.
 *
 * @example
 * ```ts
 * jsonLine({ msg: "a\u009bb" }); // => '{"msg":"a\\u009bb"}\n'
 * ```
 */
export function jsonLine(value: unknown): string {
  const escaped = JSON.stringify(value).replace(
    /[\u007f-\u009f\u2028\u2029]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return `${escaped}\n`;
}
