/**
 * Structured events for observability, published on `node:diagnostics_channel`
 * (available on Deno, Bun and Node alike). Why channels and not an `onEvent`
 * hook: any number of subscribers (metrics, tracing, audit) attach without the
 * application passing them to the server, tools such as OpenTelemetry
 * instrumentations already listen on channels, and an event nobody subscribed
 * to costs one `hasSubscribers` check, no object.
 *
 * Subscribe with `subscribe(SMTP_CHANNELS.message, (event) => ...)` from
 * `node:diagnostics_channel`. Events carry no message content and no
 * credentials: AUTH's arguments and responses never appear.
 *
 * @example
 * ```ts
 * import { subscribe, unsubscribe } from "node:diagnostics_channel";
 * import { SMTP_CHANNELS, type SmtpMessageEvent } from "@midi/smtp-server";
 *
 * const onMessage = (event: unknown) => console.log((event as SmtpMessageEvent).size);
 * subscribe(SMTP_CHANNELS.message, onMessage);
 * unsubscribe(SMTP_CHANNELS.message, onMessage);
 * SMTP_CHANNELS.message; // => "midi-smtp-server:message"
 * ```
 *
 * @module
 */
import { channel } from "node:diagnostics_channel";

/** The kinds of event, each with its channel's name. */
export interface SmtpChannelNames {
  /** A session began (after admission) or ended: {@link SmtpConnectionEvent}. */
  readonly connection: "midi-smtp-server:connection";
  /** A command line was taken: {@link SmtpCommandEvent}. */
  readonly command: "midi-smtp-server:command";
  /** A reply was sent: {@link SmtpReplyEvent}. */
  readonly reply: "midi-smtp-server:reply";
  /** A message was accepted or refused at its end: {@link SmtpMessageEvent}. */
  readonly message: "midi-smtp-server:message";
  /** A TLS handshake finished or failed: {@link SmtpTlsEvent}. */
  readonly tls: "midi-smtp-server:tls";
  /** An AUTH exchange ended: {@link SmtpAuthEvent}. */
  readonly auth: "midi-smtp-server:auth";
  /** A client was refused before or instead of a session (limits, PROXY, busy): {@link SmtpRefusalEvent}. */
  readonly refusal: "midi-smtp-server:refusal";
}

/** The channel names, one per kind of event. */
export const SMTP_CHANNELS: SmtpChannelNames = Object.freeze({
  connection: "midi-smtp-server:connection",
  command: "midi-smtp-server:command",
  reply: "midi-smtp-server:reply",
  message: "midi-smtp-server:message",
  tls: "midi-smtp-server:tls",
  auth: "midi-smtp-server:auth",
  refusal: "midi-smtp-server:refusal",
});

/** What every session event has. */
export interface SmtpSessionEventBase {
  /** The session's id, as `ctx.sessionId` and in its log lines. */
  readonly sessionId: string;
  /** When it happened (ms since the epoch). */
  readonly time: number;
}

/** A session began or ended. */
export interface SmtpConnectionEvent extends SmtpSessionEventBase {
  /** `"open"` when the session starts, `"close"` when it has ended. */
  readonly phase: "open" | "close";
  /** The client (after PROXY). */
  readonly remoteIp: string;
  /** The client's port. */
  readonly remotePort: number;
  /** Our address. */
  readonly localIp: string;
  /** Our port. */
  readonly localPort: number;
  /** At `"close"`: how long the session lasted, in ms. */
  readonly durationMs?: number;
  /** At `"close"`: messages accepted in the session. */
  readonly messages?: number;
  /** At `"close"`: error replies sent in the session. */
  readonly errors?: number;
}

/** A command line was taken (its verb only: arguments may hold addresses or credentials). */
export interface SmtpCommandEvent extends SmtpSessionEventBase {
  /** The upper-case verb, e.g. `"MAIL"`; `""` for a line that is no command (an AUTH response is never one). */
  readonly verb: string;
}

/** A reply was sent. */
export interface SmtpReplyEvent extends SmtpSessionEventBase {
  /** The reply code. */
  readonly code: number;
  /** The whole reply text as sent, CRLFs included (several lines for a multi-line reply). */
  readonly text: string;
}

/** A message was accepted or refused at its end (the final dot, or BDAT LAST). */
export interface SmtpMessageEvent extends SmtpSessionEventBase {
  /** Whether it got a 2xx (in LMTP: for at least one recipient). */
  readonly accepted: boolean;
  /** The reply code (in LMTP: the first recipient's). */
  readonly code: number;
  /** Message bytes. */
  readonly size: number;
  /** Accepted recipients. */
  readonly recipients: number;
  /** From DATA's 354 (or the first BDAT) to the end of the message, in ms. */
  readonly durationMs: number;
  /** `"DATA"` or `"BDAT"`. */
  readonly via: "DATA" | "BDAT";
}

/** A TLS handshake ended. */
export interface SmtpTlsEvent extends SmtpSessionEventBase {
  /** Whether it succeeded. */
  readonly ok: boolean;
  /** `"STARTTLS"` or `"implicit"`. */
  readonly mode: "STARTTLS" | "implicit";
  /** The protocol, e.g. `"TLSv1.3"` (`""` on failure). */
  readonly protocol: string;
  /** The cipher (`""` on failure). */
  readonly cipher: string;
  /** On failure: why. */
  readonly error?: string;
}

/** An AUTH exchange ended. */
export interface SmtpAuthEvent extends SmtpSessionEventBase {
  /** Whether the client is now authenticated. */
  readonly ok: boolean;
  /** The SASL mechanism, e.g. `"PLAIN"`. */
  readonly mechanism: string;
  /** The identity on success (never a password). */
  readonly authenticationId?: string;
  /** The refusal's code on failure. */
  readonly code?: number;
}

/** A client refused before or instead of a session. */
export interface SmtpRefusalEvent {
  /** When (ms since the epoch). */
  readonly time: number;
  /** The client's address (after PROXY where one was read). */
  readonly remoteIp: string;
  /** The reply code sent (0: closed without a reply). */
  readonly code: number;
  /** Why, e.g. `"maxConnectionsPerIp (50) reached"`. */
  readonly reason: string;
}

/** What the session needs of a channel (a local type keeps @types/node's module names out of our .d.ts files). */
export interface EventChannel {
  /** The channel's name. */
  readonly name: string | symbol;
  /** Whether anyone listens: events are built only then. */
  readonly hasSubscribers: boolean;
  /** Hands `message` to every subscriber. */
  publish(message: unknown): void;
}

/** The channels, made once (diagnostics_channel keeps one object per name anyway). */
export const channels: Readonly<Record<keyof SmtpChannelNames, EventChannel>> = {
  connection: channel(SMTP_CHANNELS.connection),
  command: channel(SMTP_CHANNELS.command),
  reply: channel(SMTP_CHANNELS.reply),
  message: channel(SMTP_CHANNELS.message),
  tls: channel(SMTP_CHANNELS.tls),
  auth: channel(SMTP_CHANNELS.auth),
  refusal: channel(SMTP_CHANNELS.refusal),
};
