/**
 * What one session publishes on the `node:diagnostics_channel` channels of
 * src/events.ts: its connection opening and closing, each command's verb,
 * each reply, each message's end and each TLS handshake. Every method checks
 * for subscribers first, so that a server nobody observes pays one property
 * read per event and builds nothing.
 */
import type { SmtpdContext } from "../context.ts";
import { channels } from "../events.ts";
import type { TlsInfo } from "../transport/types.ts";
import { splitCommand } from "./arguments.ts";

/** A session's event publisher; one per session, created when it starts. */
export class SessionEvents {
  readonly #ctx: SmtpdContext;
  /** When the session started (for the close event's duration). */
  #opened = 0;

  /** The publisher of the session of `ctx`. */
  constructor(ctx: SmtpdContext) {
    this.#ctx = ctx;
  }

  /** The session started (now). */
  opened(): void {
    this.#opened = Date.now();
    if (!channels.connection.hasSubscribers) return;
    const server = this.#ctx.server;
    channels.connection.publish({
      sessionId: this.#ctx.sessionId,
      time: this.#opened,
      phase: "open",
      remoteIp: server.remoteIp,
      remotePort: server.remotePort,
      localIp: server.localIp,
      localPort: server.localPort,
    });
  }

  /** The session ended, with `messages` accepted in it. */
  closed(messages: number): void {
    if (!channels.connection.hasSubscribers) return;
    const server = this.#ctx.server;
    const now = Date.now();
    channels.connection.publish({
      sessionId: this.#ctx.sessionId,
      time: now,
      phase: "close",
      remoteIp: server.remoteIp,
      remotePort: server.remotePort,
      localIp: server.localIp,
      localPort: server.localPort,
      durationMs: now - this.#opened,
      messages,
      errors: server.exceptions,
    });
  }

  /**
   * A command line was taken. Only its verb is published, and only when
   * `isCommand` knows it: arguments and stray lines may hold addresses or a
   * password.
   */
  command(line: string, isCommand: (verb: string) => boolean): void {
    if (!channels.command.hasSubscribers) return;
    const verb = splitCommand(line).verb;
    channels.command.publish({ sessionId: this.#ctx.sessionId, time: Date.now(), verb: isCommand(verb) ? verb : "" });
  }

  /** One event per reply in `text` (a multi-line reply ends at its line with a space after the code). */
  replies(text: string): void {
    if (!channels.reply.hasSubscribers) return;
    const time = Date.now();
    let start = 0;
    for (let end = text.indexOf("\r\n"); end >= 0; end = text.indexOf("\r\n", end + 2)) {
      if (text[start + 3] === "-" && text.startsWith(text.slice(start, start + 3), end + 2)) continue;
      channels.reply.publish({
        sessionId: this.#ctx.sessionId,
        time,
        code: Number(text.slice(start, start + 3)),
        text: text.slice(start, end + 2),
      });
      start = end + 2;
    }
  }

  /** A message ended with reply `code` (see `SmtpMessageEvent`); it began at `started` (ms), by `via`. */
  message(accepted: boolean, code: number, started: number, via: "DATA" | "BDAT"): void {
    if (!channels.message.hasSubscribers) return;
    const now = Date.now();
    channels.message.publish({
      sessionId: this.#ctx.sessionId,
      time: now,
      accepted,
      code,
      size: Math.max(this.#ctx.message.bytesize, 0),
      recipients: this.#ctx.envelope.to.length,
      durationMs: now - started,
      via,
    });
  }

  /** A TLS handshake ended: `tls` is the connection's once it succeeded; `error` says why it failed. */
  tls(mode: "STARTTLS" | "implicit", tls: TlsInfo | undefined, error?: string): void {
    if (!channels.tls.hasSubscribers) return;
    const ok = error === undefined;
    channels.tls.publish({
      sessionId: this.#ctx.sessionId,
      time: Date.now(),
      ok,
      mode,
      protocol: ok ? tls?.protocol ?? "" : "",
      cipher: ok ? tls?.cipher ?? "" : "",
      ...(ok ? {} : { error }),
    });
  }
}
