/**
 * The event hooks through which the server hands every step to the
 * application. Override them in a subclass of {@link MidiSmtpServer} or pass
 * them as functions in the options; sync or async. Returning means success;
 * throwing an `Smtpd…Exception` answers with its reply; any other error
 * answers `451 4.3.0` and the session goes on.
 *
 * @module
 */
import type { ProxyInfo, SmtpdContext } from "./context.ts";
import type { LogSeverity } from "./options.ts";
import type { SaslCredentials } from "./auth/types.ts";
import type { SmtpdException } from "./exceptions.ts";

/**
 * LMTP (RFC 2033): what `onMessageDataEvent` may return to answer each
 * accepted recipient on its own, in the order of `ctx.envelope.recipients`:
 * `undefined`/`null` delivers (250), an `Smtpd…Exception` answers with its
 * reply (e.g. `Smtpd452Exception` for a full mailbox), another Error gives
 * 451. Ignored in SMTP, where one reply answers the message.
 */
export type RecipientResults = ReadonlyArray<SmtpdException | Error | null | undefined>;

/** A hook's result: a value, or a promise of one. */
export type Awaitable<T> = T | Promise<T>;

/**
 * Whether a hook's result has to be awaited. The session awaits only real
 * promises (or other thenables): `await` on a plain value still allocates a
 * promise and costs a turn of the microtask queue, for every command of every
 * message, while most hooks are synchronous.
 */
export function isPromiseLike<T>(value: Awaitable<T> | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === "function";
}

/** Every hook the server calls. */
export interface SmtpdHooks {
  /** Receives each log line at or above `loggerSeverity`; `ctx` is `null` outside a session. */
  onLoggingEvent(ctx: SmtpdContext | null, severity: LogSeverity, msg: string, err?: unknown): void;
  /**
   * With `proxyExtension`: a trusted proxy's header arrived (`proxy` is also
   * `ctx.server.proxy`; `remoteIp`/`remotePort` are already the real
   * client's). Runs before `onConnectEvent`. Throwing refuses the client: an
   * SmtpdException's reply, else 421, and the connection closes.
   */
  onProxyEvent(ctx: SmtpdContext, proxy: ProxyInfo): Awaitable<void>;
  /** A client connected (before the greeting). Throwing refuses it: an SmtpdException's reply, else 421. */
  onConnectEvent(ctx: SmtpdContext): Awaitable<void>;
  /** The connection ended, however it ended. Called exactly once per connected client. */
  onDisconnectEvent(ctx: SmtpdContext): Awaitable<void>;
  /** HELO or EHLO with its argument. */
  onHeloEvent(ctx: SmtpdContext, heloData: string): Awaitable<void>;
  /**
   * AUTH finished its exchange. Return to accept (a returned string becomes
   * the authorization id), throw `Smtpd535Exception` to refuse; the default
   * refuses everyone. For CRAM-MD5 `authentication` is the client's digest:
   * check it with `credentials.verify(storedSecret)`.
   */
  onAuthEvent(
    ctx: SmtpdContext,
    authorizationId: string,
    authenticationId: string,
    authentication: string,
    credentials: SaslCredentials,
  ): Awaitable<string | void>;
  /** The TLS handshake finished (STARTTLS or implicit TLS); `ctx.server.tlsProtocol` etc. are set. Throwing closes the connection. */
  onTlsEvent(ctx: SmtpdContext): Awaitable<void>;
  /** MAIL FROM with the reverse-path (`"<a@b.example>"`); a returned string is stored instead. */
  onMailFromEvent(ctx: SmtpdContext, mailFromData: string): Awaitable<string | void>;
  /** RCPT TO with the forward-path (`"<a@b.example>"`); a returned string is stored instead. */
  onRcptToEvent(ctx: SmtpdContext, rcptToData: string): Awaitable<string | void>;
  /** DATA was sent; throwing refuses it before the `354`. */
  onMessageDataStartEvent(ctx: SmtpdContext): Awaitable<void>;
  /**
   * Message bytes arrived (called per received chunk, and only if overridden,
   * so it costs nothing otherwise); `ctx.message.bytesize` counts them so far.
   * Throwing rejects the message: the rest is read and dropped, and the error's
   * reply answers the final dot.
   */
  onMessageDataReceivingEvent(ctx: SmtpdContext): Awaitable<void>;
  /** The header section is complete (`ctx.message.headers` is set). Throwing rejects the message like above. */
  onMessageDataHeadersEvent(ctx: SmtpdContext): Awaitable<void>;
  /**
   * The whole message is in `ctx.message`; return to accept it (250), throw
   * to refuse it. In LMTP a throw answers every recipient alike; return
   * {@link RecipientResults} to answer them one by one.
   */
  onMessageDataEvent(ctx: SmtpdContext): Awaitable<void | RecipientResults>;
  /**
   * Streaming mode, used instead of `onMessageDataEvent` when overridden: the
   * body arrives as a stream while the client sends it (with backpressure, so
   * memory stays flat). Returning after reading it to its end accepts the
   * message (250); throwing refuses it. If the message turns out invalid
   * (too large, bad line breaks) or the client vanishes, the stream errors:
   * do not keep what you read then.
   */
  onMessageDataStreamEvent(ctx: SmtpdContext, stream: ReadableStream<Uint8Array>): Awaitable<void>;
  /** A command the server does not know; a returned string is the reply (`""`: none), nothing returned gives 500. */
  onProcessLineUnknownEvent(ctx: SmtpdContext, line: string): Awaitable<string | void>;
}
