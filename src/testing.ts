/**
 * An SMTP server for an application's own test suite (what aiosmtpd's
 * `Controller` is to Python): {@link startTestServer} starts a real server on
 * a free port and keeps every accepted message in memory, so a test can send
 * mail the way the application does (nodemailer, an HTTP call that sends a
 * confirmation mail, ...) and then check what arrived. It works with any test
 * runner (`node:test`, `Deno.test`, `bun test`, vitest, jest), since it needs
 * nothing from the runner: start it, use it, close it.
 *
 * Each server keeps its own messages (there is no global state), so tests
 * that run in parallel each start their own.
 *
 * @example
 * ```ts
 * import { startTestServer } from "@midi/smtp-server/testing";
 * import { connect } from "node:net";
 * import { once } from "node:events";
 *
 * const server = await startTestServer();
 * // The application under test would send here (server.host, server.port); a raw client stands in for it.
 * const client = connect(server.port, server.host);
 * await once(client, "data"); // the 220 greeting
 * client.end(
 *   "EHLO app.example\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<ann@example.com>\r\nDATA\r\n" +
 *     "Subject: Welcome\r\n\r\nHello Ann\r\n.\r\nQUIT\r\n",
 * );
 * const mail = await server.waitForMessage((m) => m.rcptTo.includes("ann@example.com"));
 * mail.headers.get("subject"); // => "Welcome"
 * await server.close();
 * ```
 *
 * @module
 */
import { MidiSmtpServer, type MidiSmtpServerOptions } from "./server.ts";
import type { EnvelopeContext, SmtpdContext } from "./context.ts";
import type { SaslCredentials } from "./auth/types.ts";
import { Smtpd535Exception } from "./exceptions.ts";
import { generateSelfSignedCertificate } from "./tls/certificates.ts";
import { concatBytes } from "./bytes.ts";
import { isPromiseLike } from "./hooks.ts";

/**
 * Options of {@link startTestServer}: every {@link MidiSmtpServerOptions} option, plus two shortcuts.
 *
 * @example
 * ```ts
 * import { startTestServer, type TestServerOptions } from "@midi/smtp-server/testing";
 *
 * // A submission server as in production: STARTTLS and AUTH required, one user.
 * const options: TestServerOptions = {
 *   tls: true,
 *   tlsMode: "TLS_REQUIRED",
 *   users: { app: "secret" },
 *   authMode: "AUTH_REQUIRED",
 * };
 * const server = await startTestServer(options);
 * server.server.options.authMode; // => "AUTH_REQUIRED"
 * typeof server.ca; // => "string"
 * await server.close();
 * ```
 */
export interface TestServerOptions extends MidiSmtpServerOptions {
  /**
   * TLS with a freshly made self-signed certificate: STARTTLS is offered
   * (`tlsMode: "TLS_OPTIONAL"`) and an implicit-TLS port is opened
   * (`tlsPorts: 0`), unless you set those options yourself. The certificate
   * is the result's {@link TestServer.ca}: give it to the client as its CA, so
   * that the client can verify the server as it would in production.
   */
  tls?: boolean;
  /**
   * User names and their passwords: AUTH is offered (`authMode:
   * "AUTH_OPTIONAL"`, mechanisms PLAIN and LOGIN unless you set them) and
   * only these credentials are accepted. With {@link tls} AUTH is offered
   * only over TLS, as a real submission server does; without it, on the plain
   * connection (`allowInsecureAuth` is then `true`, since there is no other
   * way to test it). An `onAuthEvent` of yours runs after the check passes.
   */
  users?: Record<string, string>;
}

/**
 * The client facts a message arrived with.
 *
 * @example
 * ```ts
 * import type { TestMessage } from "@midi/smtp-server/testing";
 *
 * // The application must submit over TLS (STARTTLS or implicit) as user "app".
 * const submittedSafely = ({ client }: TestMessage) => client.tls !== null && client.authenticationId === "app";
 * ```
 */
export interface TestClientInfo {
  /** The client's IP address. */
  readonly remoteIp: string;
  /** The client's port. */
  readonly remotePort: number;
  /** The server port the client connected to: tells {@link TestServer.tlsPort} from {@link TestServer.port}. */
  readonly localPort: number;
  /** The HELO/EHLO argument. */
  readonly helo: string;
  /** TLS protocol and cipher (STARTTLS or implicit TLS), `null` on a plain connection. */
  readonly tls: { readonly protocol: string; readonly cipher: string } | null;
  /** The user who authenticated (AUTH), `null` without AUTH. */
  readonly authenticationId: string | null;
  /** The identity the client acts as after AUTH (usually the user), `null` without AUTH. */
  readonly authorizationId: string | null;
}

/**
 * One header field: its name as written, and its value unfolded with RFC 2047 encoded words decoded.
 *
 * @example
 * ```ts
 * import { parseHeaders } from "@midi/smtp-server/testing";
 *
 * parseHeaders("X-Tag: a\r\n b\r\n\r\n").fields; // => [{ name: "X-Tag", value: "a b" }]
 * ```
 */
export interface HeaderField {
  /** The field name as written (`"Subject"`). */
  readonly name: string;
  /** The value: folding undone, surrounding blanks trimmed, `=?UTF-8?Q?...?=` words decoded. */
  readonly value: string;
}

/**
 * A message's header section: the text as received, and a case-insensitive
 * lookup over its fields.
 *
 * @example
 * ```ts
 * import { parseHeaders } from "@midi/smtp-server/testing";
 *
 * const headers = parseHeaders("To: ann@example.com\r\nReceived: a\r\nReceived: b\r\n\r\nbody\r\n");
 * headers.get("TO"); // => "ann@example.com"
 * headers.getAll("received"); // => ["a", "b"]
 * headers.has("Cc"); // => false
 * headers.raw; // => "To: ann@example.com\r\nReceived: a\r\nReceived: b\r\n"
 * ```
 */
export interface MessageHeaders {
  /** The header section as received: every field line with its line break, without the empty line that ends it. */
  readonly raw: string;
  /** The fields in message order. */
  readonly fields: readonly HeaderField[];
  /** The value of the first field named `name` (any case), or `undefined`. */
  get(name: string): string | undefined;
  /** The values of every field named `name` (any case), in message order. */
  getAll(name: string): string[];
  /** Whether a field named `name` (any case) is present. */
  has(name: string): boolean;
}

/**
 * A message the test server accepted, with its envelope and the client facts.
 *
 * @example
 * ```ts
 * import type { TestMessage } from "@midi/smtp-server/testing";
 *
 * // A predicate for waitForMessage: a password-reset mail to Ann, sent after AUTH over TLS.
 * const isResetMail = (m: TestMessage) =>
 *   m.rcptTo.includes("ann@example.com") && /reset/i.test(m.headers.get("subject") ?? "") &&
 *   m.client.tls !== null && m.client.authenticationId === "app";
 * ```
 */
export interface TestMessage {
  /** The envelope sender without angle brackets (`""` for the null sender `<>`); not the `From:` header. */
  readonly mailFrom: string;
  /** The envelope recipients without angle brackets, in RCPT order; not the `To:` header. */
  readonly rcptTo: readonly string[];
  /** The whole envelope as the hooks saw it: parameters, DSN (`recipients[i].notify`, `dsn.ret`), BODY, SMTPUTF8. */
  readonly envelope: EnvelopeContext;
  /** The message exactly as received (dots unstuffed), ending with its last line's CRLF. */
  readonly data: Uint8Array;
  /** `data` decoded as UTF-8. For MIME parts and attachments parse `data` with a MIME parser (e.g. postal-mime). */
  readonly text: string;
  /** The header section, parsed. */
  readonly headers: MessageHeaders;
  /** Who sent it, and how. */
  readonly client: TestClientInfo;
  /** When the final dot (or the last BDAT chunk) arrived. */
  readonly receivedAt: Date;
}

/**
 * Options of {@link TestServer.waitForMessage}.
 *
 * @example
 * ```ts
 * import type { WaitForMessageOptions } from "@midi/smtp-server/testing";
 *
 * // A slow job queue sends the mail: wait longer than the default 3 s (and raise the runner's test timeout too).
 * const slow: WaitForMessageOptions = { timeout: 20_000 };
 * ```
 */
export interface WaitForMessageOptions {
  /**
   * Milliseconds to wait (`Infinity`: no limit). Default 3000: below the 5 s
   * test timeout of bun, vitest and jest, so that a missing mail fails with
   * this server's explanation rather than the runner's bare timeout.
   */
  timeout?: number;
}

/**
 * A running test server (see {@link startTestServer}).
 *
 * @example
 * ```ts
 * import { startTestServer } from "@midi/smtp-server/testing";
 *
 * const server = await startTestServer();
 * try {
 *   typeof server.port; // => "number"
 *   server.host; // => "127.0.0.1"
 *   server.messages; // => []
 * } finally {
 *   await server.close();
 * }
 * ```
 */
export interface TestServer {
  /** The plain SMTP port (STARTTLS there when TLS is on). */
  readonly port: number;
  /** The address the server listens on, e.g. `"127.0.0.1"` (an IP without brackets). */
  readonly host: string;
  /** The implicit-TLS (SMTPS) port, `undefined` when there is none. */
  readonly tlsPort: number | undefined;
  /**
   * The PEM certificate made for this server (it is self-signed, so it is its
   * own CA): pass it to the client (`tls: { ca }` in nodemailer, `ca` in
   * `node:tls`). `undefined` when TLS is off or you gave a certificate yourself.
   */
  readonly ca: string | undefined;
  /** The server itself, for what the shortcuts do not cover (`server.options`, `server.connections()`). */
  readonly server: MidiSmtpServer;
  /** The messages accepted so far (since the last {@link clear}), oldest first; a copy. */
  readonly messages: readonly TestMessage[];
  /**
   * Resolves with the first message, already received or still to come, for
   * which `predicate` returns true (any message without one). A received
   * message stays in {@link messages}, so two calls can return the same
   * message: {@link clear} in between, or tell them apart by the predicate.
   * Rejects after `timeout` ms with an error (`name` `"TimeoutError"`) that
   * names the timeout and lists what was received; rejects at once when the
   * server is closed and nothing received matches; a predicate that throws
   * rejects with its error.
   *
   * @example
   * ```ts
   * import { startTestServer } from "@midi/smtp-server/testing";
   *
   * const server = await startTestServer();
   * await server.waitForMessage((m) => m.rcptTo.includes("nobody@example.com"), { timeout: 50 }); // throws TimeoutError
   * await server.close();
   * ```
   */
  waitForMessage(predicate?: (message: TestMessage) => boolean, options?: WaitForMessageOptions): Promise<TestMessage>;
  /**
   * Forgets the messages received so far (waits in progress go on).
   *
   * @example
   * ```ts
   * import { startTestServer } from "@midi/smtp-server/testing";
   *
   * const server = await startTestServer();
   * server.clear();
   * server.messages.length; // => 0
   * await server.close();
   * ```
   */
  clear(): void;
  /**
   * Stops the server at once (sessions still open get `421`) and rejects
   * waits in progress. Calling it again does nothing; the messages stay
   * readable.
   *
   * @example
   * ```ts
   * import { startTestServer } from "@midi/smtp-server/testing";
   *
   * const server = await startTestServer();
   * await server.close();
   * await server.close(); // a second call is harmless
   * server.server.isStopped(); // => true
   * ```
   */
  close(): Promise<void>;
  /** The same as {@link close}, so that `await using server = await startTestServer()` closes it at scope end. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** A message's summary for error texts: `a@x -> b@y "Subject"`. */
function summary(message: TestMessage): string {
  const subject = message.headers.get("subject");
  return `${message.mailFrom || "<>"} -> ${message.rcptTo.join(", ")}${
    subject === undefined ? "" : ` ${JSON.stringify(subject)}`
  }`;
}

/** How much of the received list an error text shows: enough to see what went wrong, not a wall of text. */
const LISTED = 10;

function receivedList(messages: readonly TestMessage[]): string {
  if (messages.length === 0) return "no message was received";
  const shown = messages.slice(-LISTED).map((m, i) =>
    `  #${messages.length - Math.min(LISTED, messages.length) + i + 1} ${summary(m)}`
  );
  const more = messages.length > LISTED ? ` (the last ${LISTED} shown)` : "";
  return `${messages.length} message(s) received${more}:\n${shown.join("\n")}`;
}

interface Waiter {
  readonly predicate: (message: TestMessage) => boolean;
  readonly resolve: (message: TestMessage) => void;
  readonly reject: (error: unknown) => void;
}

/** `<a@b>` -> `a@b`; `<>` -> `""`. */
function withoutBrackets(path: string): string {
  return path.startsWith("<") && path.endsWith(">") ? path.slice(1, -1) : path;
}

/** The accepted messages of one server and the waits for them. */
class Inbox {
  #messages: TestMessage[] = [];
  #waiters = new Set<Waiter>();
  #closed = false;

  get messages(): readonly TestMessage[] {
    return [...this.#messages];
  }

  /** Keeps an accepted message and settles the waits it matches. */
  record(message: TestMessage): void {
    this.#messages.push(message);
    for (const waiter of [...this.#waiters]) {
      let matches: boolean;
      try {
        matches = waiter.predicate(message);
      } catch (error) {
        waiter.reject(error);
        continue;
      }
      if (matches) waiter.resolve(message);
    }
  }

  wait(predicate: (message: TestMessage) => boolean, options: WaitForMessageOptions): Promise<TestMessage> {
    if (typeof predicate !== "function") {
      return Promise.reject(new TypeError("waitForMessage: the predicate must be a function (options come second)"));
    }
    const timeout = options.timeout ?? 3000;
    if (typeof timeout !== "number" || Number.isNaN(timeout) || timeout < 0) {
      return Promise.reject(new TypeError(`waitForMessage: timeout must be a number >= 0, not ${String(timeout)}`));
    }
    try {
      const found = this.#messages.find(predicate);
      if (found) return Promise.resolve(found);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#closed) {
      return Promise.reject(
        new Error(`waitForMessage: the test server is closed and no message matches; ${receivedList(this.#messages)}`),
      );
    }
    return new Promise<TestMessage>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(waiter);
      };
      const waiter: Waiter = {
        predicate,
        resolve: (message) => {
          done();
          resolve(message);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
      this.#waiters.add(waiter);
      if (Number.isFinite(timeout)) {
        timer = setTimeout(() => {
          const error = new Error(
            `waitForMessage timed out after ${timeout} ms: no message matched; ${receivedList(this.#messages)}`,
          );
          error.name = "TimeoutError";
          waiter.reject(error);
        }, timeout);
      }
    });
  }

  clear(): void {
    this.#messages = [];
  }

  /** No more messages will come: waits in progress are rejected, later ones fail unless a kept message matches. */
  close(): void {
    this.#closed = true;
    for (const waiter of [...this.#waiters]) {
      waiter.reject(
        new Error(`waitForMessage: the test server was closed while waiting; ${receivedList(this.#messages)}`),
      );
    }
  }
}

class RunningTestServer implements TestServer {
  readonly port: number;
  readonly host: string;
  readonly tlsPort: number | undefined;
  readonly ca: string | undefined;
  readonly server: MidiSmtpServer;
  #inbox: Inbox;
  #closing: Promise<void> | undefined;

  constructor(server: MidiSmtpServer, ca: string | undefined, inbox: Inbox) {
    this.server = server;
    this.ca = ca;
    this.#inbox = inbox;
    const tls = new Set(server.tlsAddresses);
    const plain = server.addresses.find((a) => !tls.has(a));
    const [host, port] = splitAddress(plain ?? server.addresses[0]);
    this.host = host;
    this.port = port;
    this.tlsPort = server.tlsAddresses.length > 0 ? splitAddress(server.tlsAddresses[0])[1] : undefined;
  }

  get messages(): readonly TestMessage[] {
    return this.#inbox.messages;
  }

  waitForMessage(
    predicate: (message: TestMessage) => boolean = () => true,
    options: WaitForMessageOptions = {},
  ): Promise<TestMessage> {
    return this.#inbox.wait(predicate, options);
  }

  clear(): void {
    this.#inbox.clear();
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#inbox.close();
      // Not graceful: a graceful stop waits for idle clients (a nodemailer pool) to send their next command.
      await this.server.stop({ gracefully: false, waitSecondsBeforeClose: 0 });
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** `"127.0.0.1:2525"` / `"[::1]:2525"` -> host and port. */
function splitAddress(address: string): [string, number] {
  const colon = address.lastIndexOf(":");
  return [address.slice(0, colon).replace(/^\[(.*)\]$/, "$1"), Number(address.slice(colon + 1))];
}

/** The host names of the `hosts` option, for the certificate's subject alternative names. */
function hostNames(hosts: MidiSmtpServerOptions["hosts"]): string[] {
  const list = hosts === undefined ? ["127.0.0.1"] : Array.isArray(hosts) ? hosts : [hosts];
  return list.flatMap((entry) => String(entry).split(/[\s,]+/)).filter((name) => name !== "");
}

function checkUsers(users: unknown): Map<string, string> {
  if (typeof users !== "object" || users === null || Array.isArray(users)) {
    throw new TypeError(
      'startTestServer: users must be an object of user names and passwords, e.g. { alice: "secret" }',
    );
  }
  const map = new Map<string, string>();
  for (const [name, password] of Object.entries(users)) {
    if (typeof password !== "string") {
      throw new TypeError(`startTestServer: the password of user ${name} must be a string`);
    }
    map.set(name, password);
  }
  return map;
}

const decoder = new TextDecoder();

/** The test server's message record for the current transaction of `ctx`. */
function messageOf(ctx: SmtpdContext, data: Uint8Array): TestMessage {
  const { envelope, server } = ctx;
  const text = decoder.decode(data);
  return {
    mailFrom: withoutBrackets(envelope.from),
    rcptTo: envelope.to.map(withoutBrackets),
    // Copies: the session replaces its envelope after each transaction, but a hook could still change these objects.
    envelope: {
      ...envelope,
      to: [...envelope.to],
      mailParams: { ...envelope.mailParams },
      rcptParams: envelope.rcptParams.map((params) => ({ ...params })),
      recipients: envelope.recipients.map((r) => ({ ...r, params: { ...r.params } })),
      dsn: { ...envelope.dsn },
      values: { ...envelope.values },
    },
    data,
    text,
    headers: parseHeaders(text),
    client: {
      remoteIp: server.remoteIp,
      remotePort: server.remotePort,
      localPort: server.localPort,
      helo: server.helo,
      tls: server.encrypted ? { protocol: server.tlsProtocol, cipher: server.tlsCipher } : null,
      authenticationId: server.authenticated ? server.authenticationId : null,
      authorizationId: server.authenticated ? server.authorizationId : null,
    },
    receivedAt: ctx.message.delivered ?? new Date(),
  };
}

/** Reads a stream to its end. */
async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return concatBytes(chunks);
    chunks.push(value);
  }
}

/**
 * Starts an SMTP server that keeps every accepted message in memory, on a
 * free port of 127.0.0.1. Takes any {@link MidiSmtpServerOptions} option;
 * its defaults differ from the library's where tests want it: PIPELINING,
 * 8BITMIME, SMTPUTF8, CHUNKING and DSN are on; only `"error"` log lines are
 * printed (a hook of yours that fails); the per-client rate limits, the AUTH
 * lockout and the tarpit are off, since a test suite is one busy client. See
 * {@link TestServerOptions} for `tls` and `users`.
 *
 * Hooks you pass run as usual: a message your `onMessageDataEvent` (or
 * streaming hook) refuses is not recorded, since the client was told so.
 *
 * @example
 * ```ts
 * import { startTestServer } from "@midi/smtp-server/testing";
 * import { connect } from "node:tls";
 * import { once } from "node:events";
 *
 * const server = await startTestServer({ tls: true, users: { app: "secret" } });
 * // Implicit TLS, the server verified against the returned certificate, as a production client would.
 * const client = connect({ host: server.host, port: server.tlsPort, ca: server.ca, servername: "localhost" });
 * await once(client, "data"); // the 220 greeting
 * client.end(
 *   "EHLO app.example\r\nAUTH PLAIN AGFwcABzZWNyZXQ=\r\nMAIL FROM:<app@example.com>\r\n" +
 *     "RCPT TO:<ann@example.com>\r\nDATA\r\nSubject: Welcome\r\n\r\nHello Ann\r\n.\r\nQUIT\r\n",
 * );
 * const mail = await server.waitForMessage(undefined, { timeout: 5000 });
 * mail.client.authenticationId; // => "app"
 * mail.client.tls !== null; // => true
 * await server.close();
 * ```
 */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const { tls = false, users, ...serverOptions } = options;
  const credentials = users === undefined ? undefined : checkUsers(users);
  const tlsOn = tls || (options.tlsMode !== undefined && options.tlsMode !== "TLS_FORBIDDEN") ||
    (options.tlsPorts !== undefined && (!Array.isArray(options.tlsPorts) || options.tlsPorts.length > 0));
  const ownCertificate = options.tlsCert !== undefined || options.tlsCertPath !== undefined;
  // Made here rather than by the server, so that the client can be given it; EC: milliseconds, where RSA takes 0.1-0.4 s.
  const certificate = tlsOn && !ownCertificate
    ? await generateSelfSignedCertificate({
      hosts: hostNames(options.hosts),
      commonName: options.tlsCertCn,
      altNames: options.tlsCertSan,
      keyType: "ec",
    })
    : undefined;

  const inbox = new Inbox();
  const record = (ctx: SmtpdContext, data: Uint8Array) => inbox.record(messageOf(ctx, data));
  const userData = options.onMessageDataEvent;
  const userStream = options.onMessageDataStreamEvent;
  const userAuth = options.onAuthEvent;

  const hooks: Partial<MidiSmtpServerOptions> = {
    onMessageDataEvent(this: MidiSmtpServer, ctx) {
      const result = userData?.call(this, ctx);
      // Copied: ctx.message.data may be a view into the bytes the connection read, which the kept message must outlive.
      const keep = () => record(ctx, ctx.message.data.slice());
      if (isPromiseLike(result)) return Promise.resolve(result).then((value) => (keep(), value));
      keep();
      return result;
    },
  };
  if (userStream) {
    // The application reads one branch, the recorder the other; the message is kept only if the hook accepts it.
    hooks.onMessageDataStreamEvent = async function (this: MidiSmtpServer, ctx, stream) {
      const [theirs, ours] = stream.tee();
      const collected = readAll(ours);
      collected.catch(() => {}); // the hook's own failure is the one reported
      await userStream.call(this, ctx, theirs);
      record(ctx, await collected);
    };
  }
  if (credentials) {
    hooks.onAuthEvent = function (
      this: MidiSmtpServer,
      ctx: SmtpdContext,
      authorizationId: string,
      authenticationId: string,
      authentication: string,
      sasl: SaslCredentials,
    ) {
      const secret = credentials.get(authenticationId);
      // CRAM-MD5 sends a digest, which only `verify` can check; the others send the secret itself.
      const valid = secret !== undefined && (sasl.verify ? sasl.verify(secret) : authentication === secret);
      if (!valid) throw new Smtpd535Exception(`test server: wrong user name or password for ${authenticationId}`);
      if (authorizationId !== "" && authorizationId !== authenticationId) {
        throw new Smtpd535Exception(`test server: ${authenticationId} may not act as ${authorizationId}`);
      }
      return userAuth?.call(this, ctx, authorizationId, authenticationId, authentication, sasl);
    };
  }

  const server = new MidiSmtpServer({
    hosts: "127.0.0.1",
    ports: 0,
    loggerSeverity: "error",
    pipeliningExtension: true,
    internationalizationExtensions: true,
    chunkingExtension: true,
    dsnExtension: true,
    maxConnectionsPerIp: null,
    maxConnectionRatePerIp: null,
    maxMessageRatePerIp: null,
    maxAuthFailuresPerIp: null,
    softErrorLimit: null,
    ...(tls ? { tlsMode: "TLS_OPTIONAL" as const, tlsPorts: 0 } : {}),
    ...(credentials ? { authMode: "AUTH_OPTIONAL" as const, allowInsecureAuth: !tlsOn } : {}),
    ...serverOptions,
    ...(certificate ? { tlsCert: certificate.cert, tlsKey: certificate.key } : {}),
    ...hooks,
  });
  await server.start();
  return new RunningTestServer(server, certificate?.cert, inbox);
}

/** RFC 2047 encoded word: `=?charset?B|Q?text?=` (an RFC 2231 `*language` suffix on the charset is allowed). */
const ENCODED_WORD = /=\?([^?\s*]+)(?:\*[^?\s]*)?\?([BbQq])\?([^?\s]*)\?=/g;

function decodeWordBytes(encoding: string, text: string): Uint8Array | undefined {
  if (encoding === "B" || encoding === "b") {
    try {
      return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
    } catch {
      return undefined;
    }
  }
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "_") bytes.push(0x20);
    else if (c === "=" && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(c.charCodeAt(0) & 0xff);
  }
  return new Uint8Array(bytes);
}

/**
 * Decodes the encoded words of a header value. Adjacent words (only blanks
 * between them) are joined before decoding, and the blanks dropped, as RFC
 * 2047 6.2 says: mailers split long UTF-8 text there, sometimes inside a
 * character. A word with an unknown charset or broken encoding stays as is.
 */
function decodeEncodedWords(value: string): string {
  if (!value.includes("=?")) return value;
  let out = "";
  let last = 0;
  let run: { charset: string; bytes: Uint8Array[]; source: string } | undefined;
  const flush = () => {
    if (!run) return;
    try {
      out += new TextDecoder(run.charset).decode(concatBytes(run.bytes));
    } catch {
      out += run.source;
    }
    run = undefined;
  };
  for (const match of value.matchAll(ENCODED_WORD)) {
    const between = value.slice(last, match.index);
    const charset = match[1].toLowerCase();
    const bytes = decodeWordBytes(match[2], match[3]);
    last = match.index + match[0].length;
    if (bytes === undefined) {
      flush();
      out += between + match[0];
      continue;
    }
    if (run && /^[ \t\r\n]*$/.test(between)) {
      if (run.charset === charset) {
        run.bytes.push(bytes);
        run.source += between + match[0];
        continue;
      }
      flush();
    } else {
      flush();
      out += between;
    }
    run = { charset, bytes: [bytes], source: match[0] };
  }
  flush();
  return out + value.slice(last);
}

class HeaderLookup implements MessageHeaders {
  constructor(readonly raw: string, readonly fields: readonly HeaderField[]) {}

  get(name: string): string | undefined {
    const wanted = name.toLowerCase();
    return this.fields.find((f) => f.name.toLowerCase() === wanted)?.value;
  }

  getAll(name: string): string[] {
    const wanted = name.toLowerCase();
    return this.fields.filter((f) => f.name.toLowerCase() === wanted).map((f) => f.value);
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }
}

/**
 * Parses the header section at the start of a message (the text up to the
 * first empty line, or all of it when there is none). Folded fields are
 * unfolded and RFC 2047 encoded words (`=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=`, as
 * nodemailer writes non-ASCII subjects) decoded; a line that is no field (no
 * colon) is skipped. Any line break is accepted, so a message kept with
 * `CRLF_LEAVE` parses too.
 *
 * @example
 * ```ts
 * import { parseHeaders } from "@midi/smtp-server/testing";
 *
 * const headers = parseHeaders("Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n =?UTF-8?B?8J+Riw==?=\r\n\r\nbody\r\n");
 * headers.get("subject"); // => "Grüße👋"
 * headers.fields; // => [{ name: "Subject", value: "Grüße👋" }]
 * ```
 */
export function parseHeaders(message: string): MessageHeaders {
  // The section ends before the first empty line (a message that starts with one has no header section).
  const line = /([^\r\n]*)(?:\r\n|\n|\r|$)/y;
  let end = 0;
  for (;;) {
    line.lastIndex = end;
    const match = line.exec(message)!;
    if (match[1] === "") break;
    end += match[0].length;
  }
  const raw = message.slice(0, end);
  const fields: { name: string; value: string }[] = [];
  for (const line of raw.split(/\r\n|\n|\r/)) {
    if (line === "") continue;
    if (/^[ \t]/.test(line)) {
      // Unfolding (RFC 5322 2.2.3) removes only the line break; the blank that starts the line stays.
      if (fields.length > 0) fields[fields.length - 1].value += line;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    fields.push({ name: line.slice(0, colon).trimEnd(), value: line.slice(colon + 1) });
  }
  return new HeaderLookup(
    raw,
    fields.map((f) => ({ name: f.name, value: decodeEncodedWords(f.value.trim()) })),
  );
}
