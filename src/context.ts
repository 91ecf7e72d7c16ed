/**
 * The per-connection context handed to every hook: what the server knows of
 * the connection (`server`), of the current transaction (`envelope`) and of
 * the message being received (`message`). Each connection has its own
 * context; the envelope and message are replaced after every transaction.
 *
 * @module
 */
import type { SmtpdException } from "./exceptions.ts";
import { concatBytes } from "./bytes.ts";
import type { ProxyHeader } from "./proxy_protocol.ts";
import { newSessionId } from "./session_id.ts";

/** A MAIL or RCPT parameter value: the text after `=`, or `true` for a bare keyword. */
export type EsmtpParamValue = string | true;

/** What a PROXY protocol header said, and who sent it. */
export interface ProxyInfo extends ProxyHeader {
  /** The proxy's own address (the socket peer). */
  readonly proxyIp: string;
  /** The proxy's own port. */
  readonly proxyPort: number;
}

/** Facts about the connection that survive transactions. */
export interface ServerContext {
  /** Local host name (the IP unless reverse DNS is on). */
  localHost: string;
  /** Local IP address. */
  localIp: string;
  /** Local port. */
  localPort: number;
  /** Client host name (the IP unless reverse DNS is on and found a name). */
  remoteHost: string;
  /** Client IP address (behind a proxy: the one its PROXY header named). */
  remoteIp: string;
  /** Client port. */
  remotePort: number;
  /** Text after `220 ` in the greeting; a connect hook may change it. */
  localResponse: string;
  /** Text of the first HELO/EHLO reply line; a connect or HELO hook may change it. */
  heloResponse: string;
  /** Argument of the accepted HELO/EHLO, `""` before. */
  helo: string;
  /** Which greeting the client used: `""`, `"HELO"`, `"EHLO"` or (LMTP) `"LHLO"`. */
  heloMode: "" | "HELO" | "EHLO" | "LHLO";
  /** When the connection was accepted. */
  connected: Date;
  /** When AUTH succeeded, or `null`. */
  authenticated: Date | null;
  /** When TLS started, or `null`. */
  encrypted: Date | null;
  /** Negotiated TLS protocol (e.g. `"TLSv1.3"`), `""` without TLS. */
  tlsProtocol: string;
  /** Negotiated TLS cipher, `""` without TLS. */
  tlsCipher: string;
  /** Authorization identity after AUTH, `""` before. */
  authorizationId: string;
  /** Authentication identity after AUTH, `""` before. */
  authenticationId: string;
  /** How many errors replies have been sent on this connection. */
  exceptions: number;
  /** The errors behind those replies, oldest first. */
  errors: Array<SmtpdException | Error>;
  /** With `proxyExtension`: what the PROXY header said (the socket peer is `proxy.proxyIp`); else `null`. */
  proxy: ProxyInfo | null;
  /**
   * What the last accepted XCLIENT said (from a host in `xclientTrustedSources`), else `null`.
   * Its NAME, ADDR, PORT, HELO, LOGIN, DESTADDR and DESTPORT already replaced the fields above.
   */
  xclient: XclientInfo | null;
  /** `"SMTP"` or `"LMTP"`: which protocol the listener speaks. */
  protocol: "SMTP" | "LMTP";
}

/**
 * Attributes of XCLIENT (Postfix), decoded from xtext. `null`: the proxy said
 * `[UNAVAILABLE]` (or `[TEMPUNAVAIL]` for NAME); absent: it did not send it.
 */
export interface XclientInfo {
  /** NAME: the client's host name. */
  name?: string | null;
  /** ADDR: the client's IP address (`IPV6:` prefix removed, v4-mapped as IPv4). */
  addr?: string | null;
  /** PORT: the client's port. */
  port?: number | null;
  /** PROTO: `"SMTP"` or `"ESMTP"`. */
  proto?: "SMTP" | "ESMTP" | null;
  /** HELO: the client's HELO/EHLO argument. */
  helo?: string | null;
  /** LOGIN: the client's SASL login; the session counts as authenticated by it. */
  login?: string | null;
  /** DESTADDR: the server address the client connected to. */
  destaddr?: string | null;
  /** DESTPORT: the server port the client connected to. */
  destport?: number | null;
}

/**
 * Attributes of XFORWARD (Postfix) for one transaction, decoded; `null` for
 * `[UNAVAILABLE]`. They describe the upstream client for logging only: access
 * decisions keep the session's own values.
 */
export interface XforwardInfo {
  /** NAME: upstream client host name. */
  name: string | null;
  /** ADDR: upstream client IP address. */
  addr: string | null;
  /** PORT: upstream client port. */
  port: number | null;
  /** PROTO: the protocol the upstream received the mail with. */
  proto: string | null;
  /** HELO: the name the upstream client announced. */
  helo: string | null;
  /** IDENT: the upstream's queue id. */
  ident: string | null;
  /** SOURCE: `"LOCAL"` or `"REMOTE"`. */
  source: "LOCAL" | "REMOTE" | null;
}

/** A DSN `NOTIFY` word (RFC 3461 4.1); `NEVER` stands alone. */
export type DsnNotify = "NEVER" | "SUCCESS" | "FAILURE" | "DELAY";

/** One accepted recipient with its parameters decoded. */
export interface RecipientContext {
  /** The forward-path as stored in `envelope.to` (a hook may have replaced it). */
  address: string;
  /** Every RCPT parameter, keyword upper-cased, as sent. */
  params: Record<string, EsmtpParamValue>;
  /** DSN `NOTIFY` (RFC 3461), `null` when not sent. */
  notify: DsnNotify[] | null;
  /** DSN `ORCPT` (RFC 3461): address type (e.g. `"rfc822"`) and the xtext-decoded original recipient; `null` when not sent. */
  orcpt: { type: string; address: string } | null;
  /** What application-declared RCPT parameters recorded (see `EsmtpParameter`). */
  values: Record<string, unknown>;
}

/** The current mail transaction: sender, recipients and their parameters. */
export interface EnvelopeContext {
  /** The reverse-path as given in MAIL FROM, with angle brackets: `"<a@example.com>"`, `"<>"`; `""` before MAIL. */
  from: string;
  /** The forward-paths accepted so far, with angle brackets. */
  to: string[];
  /** `""`, `"7bit"`, `"8bitmime"` or `"binarymime"` from the MAIL `BODY=` parameter. */
  encodingBody: "" | "7bit" | "8bitmime" | "binarymime";
  /** `"utf8"` when MAIL carried `SMTPUTF8`, else `""`. */
  encodingUtf8: "" | "utf8";
  /** Every MAIL parameter, keyword upper-cased. */
  mailParams: Record<string, EsmtpParamValue>;
  /** The parameters of each accepted RCPT, in the order of `to`. */
  rcptParams: Array<Record<string, EsmtpParamValue>>;
  /** Each accepted recipient with its parameters decoded (DSN), in the order of `to`. */
  recipients: RecipientContext[];
  /** DSN on MAIL (RFC 3461): `RET` and the xtext-decoded `ENVID`, `null` each when not sent. */
  dsn: { ret: "FULL" | "HDRS" | null; envid: string | null };
  /** MAIL carried `REQUIRETLS` (RFC 8689): the message must only travel on over TLS. */
  requireTls: boolean;
  /** What XFORWARD said for this transaction (trusted content filters), else `null`. */
  xforward: XforwardInfo | null;
  /** What application-declared MAIL parameters recorded (see `EsmtpParameter`). */
  values: Record<string, unknown>;
}

/** The message of the current transaction. */
export interface MessageContext {
  /** When DATA was accepted, or `null`. */
  received: Date | null;
  /** When the final `.` arrived, or `null`. */
  delivered: Date | null;
  /** Size of `data` in bytes; while receiving, the bytes so far; `-1` before DATA. */
  bytesize: number;
  /** The header section (up to the first empty line) once it is complete, else `""`. */
  headers: string;
  /** The message exactly as received, dots unstuffed, ending with its last line's CRLF. */
  data: Uint8Array;
  /** The line break used for `data`: always `"\r\n"` unless `CRLF_LEAVE` kept something else. */
  crlf: string;
  /** `data` decoded as UTF-8 (invalid bytes replaced), decoded on each access. */
  readonly text: string;
}

/**
 * What every hook receives.
 *
 * @example
 * ```ts
 * import type { MidiSmtpServerOptions } from "@midi/smtp-server";
 *
 * const options: MidiSmtpServerOptions = {
 *   onMessageDataEvent(ctx) {
 *     console.log(ctx.envelope.from, ctx.envelope.to, ctx.message.bytesize);
 *   },
 * };
 * ```
 */
export interface SmtpdContext {
  /** This session's id (12 characters), also in its log lines and published events. */
  readonly sessionId: string;
  /** Connection facts. */
  readonly server: ServerContext;
  /** The current transaction (replaced after each message and on RSET). */
  envelope: EnvelopeContext;
  /** The current message (replaced after each message and on RSET). */
  message: MessageContext;
  /**
   * Aborted when the session ends (client gone or timed out, a hook past
   * `hookTimeout`, server closing), so work a hook started can stop. A client
   * that leaves while a hook runs is noticed at once: the signal aborts then,
   * while the hook still runs, so it can cancel a delivery nobody will see
   * confirmed.
   */
  readonly signal: AbortSignal;
}

const END = Symbol("end");

/**
 * The context object of one session. A class so that `signal` is one getter
 * on the prototype, and its AbortController is made only when a hook asks for
 * it: an AbortController (an EventTarget with two Maps) costs about 500 bytes
 * per connection on Node, and most applications never look at it.
 */
class Context implements SmtpdContext {
  envelope: EnvelopeContext = newEnvelope();
  message: MessageContext = newMessage();
  #abort: AbortController | undefined;
  #ended = false;

  readonly sessionId: string = newSessionId();

  constructor(readonly server: ServerContext) {}

  get signal(): AbortSignal {
    if (!this.#abort) {
      this.#abort = new AbortController();
      if (this.#ended) this.#abort.abort();
    }
    return this.#abort.signal;
  }

  [END](): void {
    this.#ended = true;
    this.#abort?.abort();
  }
}

/** A session's context with a fresh envelope and message. */
export function newContext(server: ServerContext): SmtpdContext {
  return new Context(server);
}

/** Aborts `ctx.signal` (now, or when it is first asked for): the client is gone. */
export function endContext(ctx: SmtpdContext): void {
  if (ctx instanceof Context) ctx[END]();
}

/** A fresh, empty envelope. */
export function newEnvelope(): EnvelopeContext {
  return {
    from: "",
    to: [],
    encodingBody: "",
    encodingUtf8: "",
    mailParams: {},
    rcptParams: [],
    recipients: [],
    dsn: { ret: null, envid: null },
    requireTls: false,
    xforward: null,
    values: {},
  };
}

const EMPTY = new Uint8Array(0);
const utf8 = new TextDecoder();

/**
 * Sets `message.data` to the message made of `segments`, joined only when
 * first read: a hook that never looks at the bytes (or only at `bytesize` and
 * `headers`) costs no copy of the message.
 */
export function setMessageData(message: MessageContext, segments: Uint8Array[]): void {
  if (message instanceof Message) message[SET_SEGMENTS](segments);
  else message.data = segments.length === 1 ? segments[0] : concatBytes(segments);
}

const SET_SEGMENTS = Symbol("setSegments");

/**
 * The message record. A class, so that `text` and the lazily joined `data`
 * are accessors on the prototype: as object-literal getters (or a
 * per-message `defineProperty`) they cost every message a closure and
 * dictionary-mode properties, about 500 bytes.
 */
class Message implements MessageContext {
  received: Date | null = null;
  delivered: Date | null = null;
  bytesize = -1;
  headers = "";
  crlf = "\r\n";
  /** The joined bytes, or the single piece; `undefined` while `#pieces` still has to be joined. */
  #data: Uint8Array | undefined = EMPTY;
  #pieces: Uint8Array[] = [];

  get data(): Uint8Array {
    if (this.#data === undefined) {
      this.#data = concatBytes(this.#pieces);
      this.#pieces = []; // the joined copy replaces the pieces
    }
    return this.#data;
  }

  set data(value: Uint8Array) {
    this.#data = value;
    this.#pieces = [];
  }

  get text(): string {
    return utf8.decode(this.data);
  }

  [SET_SEGMENTS](segments: Uint8Array[]): void {
    if (segments.length <= 1) {
      this.data = segments[0] ?? EMPTY;
    } else {
      this.#data = undefined;
      this.#pieces = segments;
    }
  }
}

/** A fresh, empty message. */
export function newMessage(): MessageContext {
  return new Message();
}
