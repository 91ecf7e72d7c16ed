/**
 * {@link MidiSmtpServer}: options in, listeners up, admission
 * (`maxConnections`, `maxProcessings`), lifecycle (start, stop, shutdown,
 * join) and the default hooks.
 *
 * @module
 */
import type { Connection, Listener, TlsServerOptions, Transport } from "./transport/types.ts";
import type { SaslCredentials, SaslMechanism } from "./auth/types.ts";
import { DEFAULT_MECHANISMS } from "./auth/mod.ts";
import {
  certificateFingerprint,
  generateSelfSignedCertificate,
  loadCertificateFiles,
  TlsCertificateStore,
} from "./tls.ts";
import { loadTransport } from "./transport/detect.ts";
import type { SmtpdContext } from "./context.ts";
import type { Awaitable, SmtpdHooks } from "./hooks.ts";
import {
  type LogSeverity,
  type PemCertificate,
  type ResolvedOptions,
  resolveOptions,
  type ServerOptions,
  SEVERITY_RANK,
} from "./options.ts";
import { Smtpd500Exception, Smtpd535Exception } from "./exceptions.ts";
import { Session, type SessionHost } from "./session.ts";
import { formatAddress, resolveHost, reverseLookup } from "./addresses.ts";
import { formatReply } from "./replies.ts";
import { Deadlines, resolutionFor } from "./deadlines.ts";

/** Options of {@link MidiSmtpServer}: the server options plus any hook as a function. */
export interface MidiSmtpServerOptions extends ServerOptions, Partial<SmtpdHooks> {}

/** How {@link MidiSmtpServer.stop} ends the sessions. */
export interface StopOptions {
  /** Let sessions finish the command or message in progress (default `true`); else 421 at once. */
  gracefully?: boolean;
  /** Seconds to wait for sessions to end before they are cut off with 421 (default 2). */
  waitSecondsBeforeClose?: number;
}

const HOOK_NAMES = [
  "onLoggingEvent",
  "onConnectEvent",
  "onAuthEvent",
  "onTlsEvent",
  "onDisconnectEvent",
  "onHeloEvent",
  "onMailFromEvent",
  "onRcptToEvent",
  "onMessageDataStartEvent",
  "onMessageDataReceivingEvent",
  "onMessageDataHeadersEvent",
  "onMessageDataEvent",
  "onMessageDataStreamEvent",
  "onProcessLineUnknownEvent",
] as const satisfies ReadonlyArray<keyof SmtpdHooks>;

const encoder = new TextEncoder();

/**
 * An embeddable SMTP server. It speaks SMTP and hands every step to the hooks;
 * what happens to the mail is up to them.
 *
 * @example
 * ```ts
 * import { MidiSmtpServer } from "@midi/smtp-server";
 *
 * const server = new MidiSmtpServer({
 *   ports: 2525,
 *   hosts: "127.0.0.1",
 *   onMessageDataEvent(ctx) {
 *     console.log(`mail from ${ctx.envelope.from} to ${ctx.envelope.to.join(", ")}: ${ctx.message.bytesize} bytes`);
 *   },
 * });
 * await server.start();
 * console.log("listening on", server.addresses);
 * ```
 */
export class MidiSmtpServer implements SmtpdHooks {
  /** The options in force, defaults applied. */
  readonly options: ResolvedOptions;
  /** What sessions see of this server: options, hooks, logging, names, TLS and AUTH. */
  #sessionHost: { -readonly [K in keyof SessionHost]: SessionHost[K] };
  #certificates: TlsCertificateStore | undefined;
  #tlsOptions: TlsServerOptions | undefined;
  #transport: Transport | undefined;
  #listeners: Listener[] = [];
  #addresses: string[] | undefined;
  #tlsAddresses: string[] = [];
  #sessions = new Set<Session>();
  #waiting: Array<{ conn: Connection; admit: (ok: boolean) => void }> = [];
  #connections = 0;
  #processings = 0;
  #state: "new" | "starting" | "running" | "stopping" | "stopped" = "new";
  #shuttingDown = false;
  #joined: Promise<void>;
  #resolveJoined!: () => void;
  #severity: number;

  /** Validates `options` (throwing a `TypeError` that names a bad one); nothing is bound until {@link start}. */
  constructor(options: MidiSmtpServerOptions = {}) {
    this.options = resolveOptions(options);
    this.#severity = SEVERITY_RANK[this.options.loggerSeverity];
    if (this.options.ports.length > this.options.hosts.length) {
      throw new TypeError(`More port entries (${this.options.ports.length}) than hosts (${this.options.hosts.length})`);
    }
    for (const name of HOOK_NAMES) {
      const hook = options[name];
      if (hook === undefined) continue;
      if (typeof hook !== "function") throw new TypeError(`${name} must be a function`);
      // deno-lint-ignore no-explicit-any
      (this as any)[name] = hook;
    }
    this.#joined = new Promise((resolve) => this.#resolveJoined = resolve);
    this.#sessionHost = {
      options: this.options,
      hooks: this,
      // Only an application's own receiving hook is called: the default would cost a call per chunk.
      receivingHookActive: this.onMessageDataReceivingEvent !== MidiSmtpServer.prototype.onMessageDataReceivingEvent,
      streamingHookActive: this.onMessageDataStreamEvent !== MidiSmtpServer.prototype.onMessageDataStreamEvent,
      logs: (severity) => this.logs(severity),
      log: (ctx, severity, msg, err) => this.log(ctx, severity, msg, err),
      hostName: (ip) => this.options.doDnsReverseLookup ? reverseLookup(ip) : Promise.resolve(ip),
      startTls: undefined,
      authMechanisms: offeredMechanisms(this.options.authMechanisms),
      deadlines: new Deadlines(
        resolutionFor([this.options.ioGreetingTimeout, this.options.ioCmdTimeout, this.options.ioDataTimeout]),
      ),
    };
  }

  /** The ports per host entry, as configured. */
  get ports(): string[] {
    return this.options.ports.map((list) => list.join(":"));
  }

  /** The host entries, as configured. */
  get hosts(): string[] {
    return [...this.options.hosts];
  }

  /**
   * The bound addresses with their real ports once started (`["127.0.0.1:2525", "[::1]:2525"]`),
   * the configured ones before.
   */
  get addresses(): string[] {
    if (this.#addresses) return [...this.#addresses];
    const { hosts, ports } = this.options;
    return hosts.flatMap((host, i) => ports[Math.min(i, ports.length - 1)].map((port) => formatAddress(host, port)));
  }

  /** The bound addresses that speak implicit TLS (a subset of {@link addresses}); empty before start. */
  get tlsAddresses(): string[] {
    return this.#addresses ? [...this.#tlsAddresses] : [];
  }

  /** Binds every address and starts accepting; resolves once all listeners are bound. */
  async start(): Promise<void> {
    if (this.#state !== "new" && this.#state !== "stopped") throw new Error("Service was already started");
    this.#state = "starting";
    this.#shuttingDown = false;
    this.#joined = new Promise((resolve) => this.#resolveJoined = resolve);
    try {
      this.#transport = this.options.transport ?? await loadTransport();
      const { hosts, ports, tlsPorts } = this.options;
      const ips = await Promise.all(hosts.map(resolveHost));
      const tls = await this.#prepareTls(ips.flat());
      this.#sessionHost.startTls = this.options.tlsMode === "TLS_FORBIDDEN" ? undefined : tls;
      const bound: string[] = [];
      const listen = async (ip: string, port: number, implicitTls: boolean) => {
        const listener = await this.#transport!.listen(
          { hostname: ip, port, tls: implicitTls ? tls : undefined },
          (conn) => this.#accept(conn),
        );
        this.#listeners.push(listener);
        const address = formatAddress(listener.address.hostname, listener.address.port);
        bound.push(address);
        if (implicitTls) this.#tlsAddresses.push(address);
      };
      for (let i = 0; i < hosts.length; i++) {
        for (const ip of ips[i]) {
          for (const port of ports[Math.min(i, ports.length - 1)]) await listen(ip, port, false);
          for (const port of tlsPorts) await listen(ip, port, true);
        }
      }
      this.#addresses = bound;
      this.#state = "running";
      this.log(null, "info", `listening on ${bound.join(", ")} (${this.#transport.name} transport)`);
    } catch (err) {
      await Promise.all(this.#listeners.splice(0).map((l) => l.close()));
      this.#tlsAddresses = [];
      this.#state = "stopped";
      this.#resolveJoined();
      throw err;
    }
  }

  /**
   * The certificate in use, from the options or made self-signed (only when
   * TLS is on): sets up the store that STARTTLS and implicit TLS read from.
   */
  async #prepareTls(ips: string[]): Promise<TlsServerOptions | undefined> {
    const o = this.options;
    if (o.tlsMode === "TLS_FORBIDDEN" && o.tlsPorts.length === 0) return undefined;
    if (!this.#certificates) {
      const certificate = o.tlsCertificate ??
        (o.tlsCertPath ? await loadCertificateFiles(o.tlsCertPath, o.tlsKeyPath) : await this.#selfSigned(ips));
      this.#certificates = new TlsCertificateStore(certificate, o.tlsSni);
    }
    this.#tlsOptions ??= this.#certificates.toServerOptions({
      minVersion: o.tlsMinVersion,
      ciphers: o.tlsCiphers,
      handshakeTimeoutMs: o.tlsHandshakeTimeout * 1000,
    });
    return this.#tlsOptions;
  }

  async #selfSigned(ips: string[]): Promise<PemCertificate> {
    const names = this.options.hosts.filter((h) => h !== "*");
    const generated = await generateSelfSignedCertificate({
      commonName: this.options.tlsCertCn,
      altNames: [...this.options.tlsCertSan],
      hosts: [...new Set([...names, ...ips])],
    });
    this.log(null, "info", `self-signed TLS certificate made, SHA-256 fingerprint ${generated.fingerprint256}`);
    return generated;
  }

  /**
   * Replaces the TLS certificate (and SNI certificates) while running: new
   * handshakes use it, sessions already encrypted keep theirs.
   */
  updateTlsCertificate(certificate: PemCertificate, sni?: ServerOptions["tlsSni"]): void {
    if (!this.#certificates) throw new Error("TLS is not enabled on this server (or it is not started yet)");
    this.#certificates.replace(certificate, sni);
  }

  /** SHA-256 fingerprint of the TLS certificate in use (colon-separated hex), or `undefined` without TLS. */
  get tlsFingerprint(): string | undefined {
    return this.#certificates ? certificateFingerprint(this.#certificates.current.cert) : undefined;
  }

  /**
   * Stops the server: no new connections; then, if graceful, sessions finish
   * what is in progress and get `421` at their next command, for up to
   * `waitSecondsBeforeClose`; any left are cut off with `421`.
   */
  async stop({ gracefully = true, waitSecondsBeforeClose = 2 }: StopOptions = {}): Promise<void> {
    if (this.#state === "stopped" || this.#state === "new") return;
    this.#state = "stopping";
    await Promise.all(this.#listeners.splice(0).map((l) => l.close()));
    for (const waiting of this.#waiting.splice(0)) waiting.admit(false);
    if (gracefully) {
      this.shutdown();
      await this.#sessionsEnded(waitSecondsBeforeClose * 1000);
    }
    for (const session of this.#sessions) session.abort();
    await this.#sessionsEnded(1000);
    this.#addresses = undefined;
    this.#tlsAddresses = [];
    this.#state = "stopped";
    this.#resolveJoined();
  }

  /** Lets sessions end gracefully: each gets `421` at its next command boundary; new clients get `421` too. */
  shutdown(): void {
    this.#shuttingDown = true;
    for (const session of this.#sessions) session.shutdown();
  }

  /** Resolves once the server has stopped. */
  join(): Promise<void> {
    return this.#joined;
  }

  /** Open client connections (waiting ones included). */
  connections(): number {
    return this.#connections;
  }

  /** Sessions being served now. */
  processings(): number {
    return this.#processings;
  }

  /** Whether {@link shutdown} or {@link stop} was called. */
  isShutdown(): boolean {
    return this.#shuttingDown;
  }

  /** Whether the server is not running. */
  isStopped(): boolean {
    return this.#state === "stopped" || this.#state === "new";
  }

  // ---- admission ---------------------------------------------------------------------------

  #accept(conn: Connection): void {
    if (this.#state !== "running" || this.#shuttingDown) {
      this.#refuse(conn);
      return;
    }
    const max = this.options.maxConnections;
    if (max !== null && this.#connections >= max) {
      this.log(null, "warn", `connection from ${conn.remoteAddress.hostname} refused: maxConnections (${max}) reached`);
      this.#refuse(conn);
      return;
    }
    this.#connections++;
    this.#serve(conn).finally(() => {
      this.#connections--;
    });
  }

  /** Answers 421 and closes, without a session. */
  #refuse(conn: Connection): void {
    const reply = formatReply(
      421,
      "4.3.2",
      "Service too busy or not available, closing transmission channel",
      this.options.enhancedStatusCodesExtension,
    );
    conn.write(encoder.encode(reply)).then(() => conn.closeWrite()).catch(() => {}).finally(() => conn.close());
  }

  async #serve(conn: Connection): Promise<void> {
    if (!(await this.#acquireSlot(conn))) {
      this.#refuse(conn);
      return;
    }
    const session = new Session(this.#sessionHost, conn);
    this.#sessions.add(session);
    if (this.#shuttingDown) session.shutdown();
    try {
      await session.run();
    } finally {
      this.#sessions.delete(session);
      this.#releaseSlot();
    }
  }

  /** Waits for a free processing slot; `false` if the server stops first. */
  #acquireSlot(conn: Connection): Promise<boolean> {
    if (this.#processings < this.options.maxProcessings) {
      this.#processings++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => this.#waiting.push({ conn, admit: resolve }));
  }

  #releaseSlot(): void {
    const next = this.#waiting.shift();
    if (next) next.admit(true); // the slot passes straight on
    else this.#processings--;
    if (this.#sessions.size === 0) this.#notifyIdle?.();
  }

  #notifyIdle: (() => void) | undefined;

  /** Resolves when no session is left, or after `ms`. */
  async #sessionsEnded(ms: number): Promise<void> {
    if (this.#sessions.size === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      this.#notifyIdle = resolve;
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    this.#notifyIdle = undefined;
  }

  // ---- logging -----------------------------------------------------------------------------

  /** Whether a log line of `severity` reaches `onLoggingEvent`. */
  logs(severity: LogSeverity): boolean {
    return SEVERITY_RANK[severity] >= this.#severity;
  }

  /** Passes a log line to `onLoggingEvent` if its severity is high enough; a failing logger is ignored. */
  log(ctx: SmtpdContext | null, severity: LogSeverity, msg: string, err?: unknown): void {
    if (SEVERITY_RANK[severity] < this.#severity) return;
    try {
      this.onLoggingEvent(ctx, severity, msg, err);
    } catch {
      // a logger must never break a session
    }
  }

  // ---- default hooks -----------------------------------------------------------------------

  /** Writes `YYYY-MM-DD HH:MM:SS: [SEVERITY] msg` to stderr. */
  onLoggingEvent(_ctx: SmtpdContext | null, severity: LogSeverity, msg: string, err?: unknown): void {
    const stamp = new Date().toISOString().replace("T", " ").slice(0, 19);
    console.error(`${stamp}: [${severity.toUpperCase()}] ${msg}`);
    if (severity === "fatal" && err instanceof Error && err.stack) console.error(err.stack);
  }

  /** Accepts every client. */
  onConnectEvent(_ctx: SmtpdContext): Awaitable<void> {}

  /** Does nothing. */
  onDisconnectEvent(_ctx: SmtpdContext): Awaitable<void> {}

  /** Refuses everyone with `535 5.7.8`: an application that offers AUTH must override it. */
  onAuthEvent(
    ctx: SmtpdContext,
    _authorizationId: string,
    authenticationId: string,
    _authentication: string,
    credentials: SaslCredentials,
  ): Awaitable<string | void> {
    this.log(
      ctx,
      "warn",
      `Deny access from ${ctx.server.remoteIp} for ${authenticationId} (${credentials.mechanism}): no onAuthEvent`,
    );
    throw new Smtpd535Exception();
  }

  /** Accepts every TLS session. */
  onTlsEvent(_ctx: SmtpdContext): Awaitable<void> {}

  /** Accepts every HELO/EHLO. */
  onHeloEvent(_ctx: SmtpdContext, _heloData: string): Awaitable<void> {}

  /** Accepts every sender. */
  onMailFromEvent(_ctx: SmtpdContext, _mailFromData: string): Awaitable<string | void> {}

  /** Accepts every recipient. */
  onRcptToEvent(_ctx: SmtpdContext, _rcptToData: string): Awaitable<string | void> {}

  /** Accepts every DATA. */
  onMessageDataStartEvent(_ctx: SmtpdContext): Awaitable<void> {}

  /** Never called unless overridden. */
  onMessageDataReceivingEvent(_ctx: SmtpdContext): Awaitable<void> {}

  /** Does nothing. */
  onMessageDataHeadersEvent(_ctx: SmtpdContext): Awaitable<void> {}

  /** Accepts (and drops) every message. */
  onMessageDataEvent(_ctx: SmtpdContext): Awaitable<void> {}

  /** Not used unless overridden: then messages are streamed to it instead of `onMessageDataEvent`. */
  async onMessageDataStreamEvent(_ctx: SmtpdContext, stream: ReadableStream<Uint8Array>): Promise<void> {
    await stream.cancel();
  }

  /** Refuses with `500 5.5.2`. */
  onProcessLineUnknownEvent(_ctx: SmtpdContext, line: string): Awaitable<string | void> {
    throw new Smtpd500Exception(`unknown command: ${line.slice(0, 80)}`, "Syntax error, command unrecognised");
  }
}

/** The offered mechanisms by name, built-ins looked up by name; an unknown name is a configuration error. */
function offeredMechanisms(list: ReadonlyArray<string | SaslMechanism>): Map<string, SaslMechanism> {
  const offered = new Map<string, SaslMechanism>();
  for (const entry of list) {
    const mechanism = typeof entry === "string"
      ? DEFAULT_MECHANISMS.find((m) => m.name === entry.toUpperCase())
      : entry;
    if (!mechanism) {
      throw new TypeError(`Unknown AUTH mechanism ${String(entry)}: use PLAIN, LOGIN, CRAM-MD5, XOAUTH2 or your own`);
    }
    offered.set(mechanism.name.toUpperCase(), mechanism);
  }
  return offered;
}
