/**
 * {@link MidiSmtpServer}: options in, listeners up, admission, lifecycle
 * (start, stop, shutdown, join) and the default hooks.
 *
 * Every accepted connection takes one path before its session, here and not
 * in the transports: `maxConnections` -> PROXY header (trusted sources only)
 * -> per-client limits, keyed on the real client -> implicit TLS handshake
 * -> a processing slot (`maxProcessings`, waiting `queueTimeout` at most) ->
 * the session. PROXY comes before TLS because a TCP-mode balancer sends its
 * header in clear ahead of the client's ClientHello.
 *
 * Clients on a Unix socket (`socketPaths`) take the same path without the
 * PROXY header and the per-client limits: they have no IP address (their
 * connection reports family `"unix"`), they are local processes, and a
 * shared key for all of them would let one stall the others. They still
 * count against `maxConnections` and the processing slots.
 *
 * @module
 */
import { checkOptionKeys, SERVER_OPTION_KEYS } from "./option_keys.ts";
import type { Connection, Listener, SocketAddress, TlsServerOptions, Transport } from "./transport/types.ts";
import type { SaslCredentials, SaslMechanism } from "./auth/types.ts";
import { DEFAULT_MECHANISMS } from "./auth/mod.ts";
import {
  certificateFingerprint,
  generateSelfSignedCertificate,
  loadCertificateFiles,
  TlsCertificateStore,
} from "./tls/certificates.ts";
import { loadTransport } from "./transport/detect.ts";
import type { SmtpdContext } from "./context.ts";
import type { Awaitable, RecipientResults, SmtpdHooks } from "./hooks.ts";
import {
  type LogSeverity,
  type PemCertificate,
  type ResolvedOptions,
  resolveOptions,
  type ServerOptions,
  SEVERITY_RANK,
} from "./options.ts";
import { Smtpd500Exception, Smtpd535Exception } from "./exceptions.ts";
import { Session, type SessionHost } from "./session/session.ts";
import { formatAddress, resolveHost, reverseLookup } from "./addresses.ts";
import { formatReply } from "./session/replies.ts";
import { errorText } from "./session/errors.ts";
import { Deadlines, resolutionFor } from "./session/deadlines.ts";
import type { ProxyInfo } from "./context.ts";
import { ClientLimits, type Refusal, RefusalLog } from "./client_limits.ts";
import { Slots } from "./slots.ts";
import { readProxyHeader } from "./proxy_reader.ts";
import { ProxyProtocolError } from "./proxy_protocol.ts";
import { PrefixedConnection } from "./transport/prefixed.ts";
import { channels, type SmtpRefusalEvent } from "./events.ts";
import { formatLogLine } from "./log_line.ts";

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
  "onProxyEvent",
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

/** Every key `MidiSmtpServerOptions` may have: the server options and the hooks. */
const KNOWN_OPTION_KEYS: readonly string[] = [...SERVER_OPTION_KEYS, ...HOOK_NAMES];

const encoder = new TextEncoder();

/** The reply to a client the server cannot take now (stopping, `maxConnections`, no slot in time). */
const BUSY: Refusal = {
  code: 421,
  enhancedCode: "4.3.2",
  text: "Service too busy or not available, closing transmission channel",
  reason: "busy",
};
/** The reply to a client that comes while the server stops (as {@link BUSY}; its own reason for the refusal event). */
const STOPPING: Refusal = { ...BUSY, reason: "the server is stopping" };
/** Overloaded, a session idle this long may be closed for a client waiting for a slot. */
const SHED_MIN_IDLE_MS = 1000;
/** After a non-graceful stop: how long sessions get to send their 421, close and run onDisconnectEvent. */
const ABORT_GRACE_MS = 5000;

/**
 * An embeddable SMTP server. It speaks SMTP and hands every step to the hooks;
 * what happens to the mail is up to them.
 *
 * @example
 * ```ts
 * import { MidiSmtpServer } from "@midi/smtp-server";
 *
 * const server = new MidiSmtpServer({
 *   ports: 0, // any free port; 25 or 587 for real
 *   hosts: "127.0.0.1",
 *   onMessageDataEvent(ctx) {
 *     console.log(`mail from ${ctx.envelope.from} to ${ctx.envelope.to.join(", ")}: ${ctx.message.bytesize} bytes`);
 *   },
 * });
 * await server.start();
 * console.log("listening on", server.addresses); // listening on [ "127.0.0.1:40123" ]
 * await server.stop();
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
  #socketPaths: string[] = [];
  #sessions = new Set<Session>();
  /** Connections not yet in a session (PROXY header, TLS handshake, waiting for a slot): closed by stop(). */
  #admitting = new Set<Connection>();
  /** One promise per open connection, settled when it has ended: stop() waits for them. */
  #serving = new Set<Promise<void>>();
  #slots: Slots;
  #limits: ClientLimits;
  #refusals = new RefusalLog();
  #overloaded = false;
  #connections = 0;
  #state: "new" | "starting" | "running" | "stopping" | "stopped" = "new";
  #shuttingDown = false;
  #joined: Promise<void>;
  #resolveJoined!: () => void;
  #severity: number;

  /** Validates `options` (throwing a `TypeError` that names a bad one); nothing is bound until {@link start}. */
  constructor(options: MidiSmtpServerOptions = {}) {
    // From plain JavaScript a misspelt option would be ignored without a word: name it, and what was meant.
    checkOptionKeys(options, KNOWN_OPTION_KEYS);
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
    this.#slots = new Slots(this.options.maxProcessings);
    this.#limits = new ClientLimits(this.options);
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
      deadlines: new Deadlines(resolutionFor([
        this.options.ioGreetingTimeout,
        this.options.ioCmdTimeout,
        this.options.ioDataTimeout,
        this.options.overloadTimeout,
        this.options.proxyExtension ? this.options.proxyTimeout : null,
      ])),
      hookDeadlines: new Deadlines(resolutionFor([this.options.hookTimeout])),
      limits: this.#limits,
      logRefusal: (ctx, ip, refusal) => this.#logRefusal(ctx, ip, refusal),
      overloadTimeout: () => this.#overloaded ? this.options.overloadTimeout : null,
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

  /**
   * The Unix socket paths listened on (from `socketPaths`), once started;
   * empty before start and after stop. {@link addresses} lists TCP only.
   *
   * Each socket file is made when the server starts, replacing a stale socket
   * left by an earlier run (unless a server still answers on it; any other
   * kind of file there makes start() fail and is left alone), and removed on
   * stop. It gets the runtime's default mode, `0777` minus the umask: with the
   * usual umask `022` only its owner may connect (connecting needs write
   * permission), so chmod it, or choose its directory, to let others in.
   * Clients on it skip the PROXY header and the per-IP limits.
   */
  get socketPaths(): string[] {
    return [...this.#socketPaths];
  }

  /** Binds every address and starts accepting; resolves once all listeners are bound. */
  async start(): Promise<void> {
    if (this.#state !== "new" && this.#state !== "stopped") throw new Error("Service was already started");
    this.#state = "starting";
    this.#shuttingDown = false;
    this.#slots = new Slots(this.options.maxProcessings); // nothing held before survives a restart
    this.#overloaded = false;
    this.#joined = new Promise((resolve) => this.#resolveJoined = resolve);
    try {
      this.#transport = this.options.transport ?? await loadTransport();
      const { hosts, ports, tlsPorts } = this.options;
      const ips = await Promise.all(hosts.map(resolveHost));
      const tls = await this.#prepareTls(ips.flat());
      this.#sessionHost.startTls = this.options.tlsMode === "TLS_FORBIDDEN" ? undefined : tls;
      const bound: string[] = [];
      const listen = async (ip: string, port: number, implicitTls: boolean) => {
        // Listeners are plain: the implicit-TLS handshake runs after admission and any PROXY header.
        const listener = await this.#transport!.listen(
          { hostname: ip, port, reusePort: this.options.reusePort },
          (conn) => this.#accept(conn, implicitTls),
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
      for (const path of this.options.socketPaths) {
        // Plain, like the TCP listeners: STARTTLS works on a Unix socket as on TCP.
        const listener = await this.#transport.listen(
          { hostname: "", port: 0, path },
          (conn) => this.#accept(conn, false),
        );
        this.#listeners.push(listener);
        this.#socketPaths.push(path);
      }
      this.#addresses = bound;
      this.#state = "running";
      const all = [...bound, ...this.#socketPaths.map((path) => `unix:${path}`)];
      this.log(null, "info", `listening on ${all.join(", ")} (${this.#transport.name} transport)`);
    } catch (err) {
      // Closing removes the socket files bound so far, too.
      await Promise.all(this.#listeners.splice(0).map((l) => l.close()));
      this.#tlsAddresses = [];
      this.#socketPaths = [];
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
   * Stops the server: no new connections, and clients not yet in a session
   * are closed; then, if graceful, sessions finish what is in progress and
   * get `421` at their next command, for up to `waitSecondsBeforeClose`; any
   * left are cut off with `421`, without waiting for hooks still running.
   * Resolves once every connection has ended: then {@link connections} and
   * {@link processings} are 0.
   */
  async stop({ gracefully = true, waitSecondsBeforeClose = 2 }: StopOptions = {}): Promise<void> {
    if (this.#state === "stopped" || this.#state === "new") return;
    this.#state = "stopping";
    for (const giveUp of this.#handshakes) giveUp();
    await Promise.all(this.#listeners.splice(0).map((l) => l.close()));
    this.#slots.refuseAll();
    for (const conn of this.#admitting) conn.close();
    if (gracefully) {
      this.shutdown();
      await this.#connectionsEnded(waitSecondsBeforeClose * 1000);
    }
    for (const session of this.#sessions) session.abort();
    await Promise.all(this.#refusing);
    if (!(await this.#connectionsEnded(ABORT_GRACE_MS))) {
      // Cannot happen unless a transport never settles a close: say so rather than hang.
      this.log(null, "error", `${this.#serving.size} connection(s) still open ${ABORT_GRACE_MS} ms after stop`);
    }
    this.#addresses = undefined;
    this.#tlsAddresses = [];
    this.#socketPaths = [];
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

  /** Open client connections (those waiting for a slot, a PROXY header or a TLS handshake included). */
  connections(): number {
    return this.#connections;
  }

  /** Sessions being served now (processing slots in use). */
  processings(): number {
    return this.#slots.busy;
  }

  /** Whether {@link shutdown} or {@link stop} was called. */
  isShutdown(): boolean {
    return this.#shuttingDown;
  }

  /** Whether the server is not running. */
  isStopped(): boolean {
    return this.#state === "stopped" || this.#state === "new";
  }

  /** Whether most processing slots are busy: then command timeouts are `overloadTimeout` and idle sessions are shed. */
  isOverloaded(): boolean {
    return this.#overloaded;
  }

  // ---- admission ---------------------------------------------------------------------------

  #accept(conn: Connection, implicitTls: boolean): void {
    if (conn.remoteAddress.hostname === "" && conn.remoteAddress.family !== "unix") {
      // Reset before we saw it (a balancer's TCP health check): nobody to serve or to log about.
      conn.close();
      return;
    }
    if (this.#state !== "running" || this.#shuttingDown) {
      this.#refuse(conn, STOPPING, peerName(conn.remoteAddress), implicitTls);
      return;
    }
    const max = this.options.maxConnections;
    if (max !== null && this.#connections >= max) {
      const refusal = { ...BUSY, reason: `maxConnections (${max}) reached` };
      this.#logRefusal(null, peerName(conn.remoteAddress), refusal);
      this.#refuse(conn, refusal, peerName(conn.remoteAddress), implicitTls);
      return;
    }
    this.#connections++;
    const serving: Promise<void> = this.#serve(conn, implicitTls)
      .catch((err) => {
        this.log(null, "error", `connection error: ${errorText(err)}`, err);
        conn.close(); // whatever went wrong, the socket is not left open
      })
      .finally(() => {
        this.#connections--;
        this.#serving.delete(serving);
        if (this.#serving.size === 0) this.#notifyIdle?.();
      });
    this.#serving.add(serving);
  }

  /**
   * Answers `refusal` and closes, without a session; a client that does not
   * read is cut off after 1 s. Before an implicit-TLS handshake there is no
   * way to answer (a plaintext reply would only break the client's
   * handshake): the connection is just closed, and the log says why.
   * `client` is who is refused (after PROXY), for the refusal event.
   */
  #refuse(conn: Connection, refusal: Refusal, client: string, beforeTls = false): Promise<void> {
    this.#publishRefusal(client, beforeTls ? 0 : refusal.code, refusal.reason);
    if (beforeTls) {
      conn.close();
      return Promise.resolve();
    }
    const refusing: Promise<void> = this.#sendRefusal(conn, refusal).finally(() => this.#refusing.delete(refusing));
    this.#refusing.add(refusing);
    return refusing;
  }

  /** Refusals being written (1 s at most each): stop() waits for them too. */
  #refusing = new Set<Promise<void>>();

  /**
   * Publishes a refusal before a session on `channels.refusal` (`code` 0:
   * closed without a reply). Every refusal, not once per window as the log:
   * subscribers count them. Built only when someone listens.
   */
  #publishRefusal(remoteIp: string, code: number, reason: string): void {
    if (!channels.refusal.hasSubscribers) return;
    const event: SmtpRefusalEvent = { time: Date.now(), remoteIp, code, reason };
    channels.refusal.publish(event);
  }

  #sendRefusal(conn: Connection, refusal: Refusal): Promise<void> {
    const reply = formatReply(
      refusal.code,
      refusal.enhancedCode,
      refusal.text,
      this.options.enhancedStatusCodesExtension,
    );
    const hardClose = setTimeout(() => conn.close(), 1000);
    return conn.write(encoder.encode(reply)).then(() => conn.closeWrite()).catch(() => {}).finally(() => {
      clearTimeout(hardClose);
      conn.close();
    });
  }

  /**
   * One connection from accept to its end: PROXY, per-client limits, implicit TLS, a slot, the session.
   * A Unix-socket client skips the PROXY header and the per-client limits (see the module comment).
   */
  async #serve(raw: Connection, implicitTls: boolean): Promise<void> {
    this.#admitting.add(raw);
    const unix = raw.remoteAddress.family === "unix";
    // The client's IP (or the one its PROXY header names), which keys the per-client limits; `unix:<path>` for the log.
    let client = peerName(raw.remoteAddress);
    let counted = false;
    try {
      let proxy: ProxyInfo | null = null;
      let received: Uint8Array | undefined;
      if (this.options.proxyExtension && !unix) {
        const read = await this.#proxyHeader(raw);
        if (!read) return;
        proxy = read.proxy;
        received = read.rest;
        if (proxy.command === "PROXY" && proxy.sourceIp !== undefined) client = proxy.sourceIp;
      }
      if (!unix) {
        const refusal = this.#limits.admitConnection(client);
        if (refusal) {
          this.#logRefusal(null, client, refusal);
          await this.#refuse(raw, refusal, client, implicitTls);
          return;
        }
        counted = true;
      }
      let conn: Connection | undefined = raw;
      if (implicitTls) {
        conn = await this.#implicitTls(raw, received);
        if (!conn) return;
      } else if (received !== undefined && received.length > 0) {
        conn = new PrefixedConnection(raw, received);
      }
      if (!(await this.#acquireSlot())) {
        const running = this.#state === "running";
        const refusal = running ? { ...BUSY, reason: "no free slot within queueTimeout" } : STOPPING;
        if (running) this.#logRefusal(null, client, refusal);
        await this.#refuse(conn, refusal, client);
        return;
      }
      this.#admitting.delete(raw);
      await this.#runSession(conn, proxy);
    } finally {
      this.#admitting.delete(raw);
      if (counted) this.#limits.releaseConnection(client);
    }
  }

  /** Reads the PROXY header of a connection from a trusted source; `undefined` (connection closed) otherwise. */
  async #proxyHeader(raw: Connection): Promise<{ proxy: ProxyInfo; rest: Uint8Array } | undefined> {
    const peer = raw.remoteAddress;
    if (!this.options.proxyTrustedSources.contains(peer.hostname)) {
      const reason = "PROXY header expected from an untrusted source";
      this.#logRefusal(null, peer.hostname, { ...BUSY, reason });
      this.#publishRefusal(peer.hostname, 0, reason);
      raw.close();
      return undefined;
    }
    try {
      const { header, rest } = await readProxyHeader(
        raw,
        this.options.proxyTimeout * 1000,
        this.#sessionHost.deadlines,
      );
      return { proxy: { ...header, proxyIp: peer.hostname, proxyPort: peer.port }, rest };
    } catch (err) {
      // A proxy's health check may connect and close without a header: not worth a warning.
      const quiet = err instanceof ProxyProtocolError && err.reason.startsWith("connection closed");
      if (this.#state === "running") {
        this.log(null, quiet ? "info" : "warn", `no valid PROXY header from ${peer.hostname}: ${errorText(err)}`);
        // A health check that leaves without a header was not refused: it left.
        if (!quiet) this.#publishRefusal(peer.hostname, 0, `no valid PROXY header: ${errorText(err)}`);
      }
      raw.close();
      return undefined;
    }
  }

  /** The implicit-TLS handshake; `undefined` if it failed or the server stopped meanwhile. */
  async #implicitTls(raw: Connection, received: Uint8Array | undefined): Promise<Connection | undefined> {
    if (this.#state !== "running") {
      raw.close();
      return undefined;
    }
    const handshake = raw.acceptTls(this.#tlsOptions!, received);
    // stop() gives up on handshakes in progress. A promise of this handshake's own (not one shared by the
    // server until it stops, whose callbacks would keep every connection raced against it alive).
    let giveUp!: () => void;
    const stopped = new Promise<undefined>((resolve) => giveUp = () => resolve(undefined));
    this.#handshakes.add(giveUp);
    let abandoned = false;
    try {
      const conn = await Promise.race([handshake, stopped]);
      if (conn) return conn;
      abandoned = true;
      return undefined;
    } catch (err) {
      this.log(null, "info", `TLS handshake with ${raw.remoteAddress.hostname} failed: ${errorText(err)}`);
      return undefined;
    } finally {
      this.#handshakes.delete(giveUp);
      // A handshake that finishes after the server stopped is closed, never served.
      if (abandoned) handshake.then((conn) => conn.close(), () => {});
    }
  }

  /** The handshakes in progress: stop() gives up on each. */
  #handshakes = new Set<() => void>();

  async #runSession(conn: Connection, proxy: ProxyInfo | null): Promise<void> {
    // The slot goes back to the Slots it came from, even if stop() and start() ran meanwhile.
    const slots = this.#slots;
    const session = new Session(this.#sessionHost, conn, proxy);
    this.#sessions.add(session);
    if (this.#shuttingDown) session.shutdown();
    else if (this.#state !== "running") session.abort(); // got its slot just as a non-graceful stop began
    this.#checkOverload();
    try {
      await session.run();
    } finally {
      this.#sessions.delete(session);
      slots.release();
      this.#checkOverload();
    }
  }

  /** Takes a processing slot, waiting `queueTimeout` at most; overloaded, an idle session makes room. */
  #acquireSlot(): Promise<boolean> {
    if (this.#state !== "running") return Promise.resolve(false);
    if (!this.#slots.free) this.#shedIdleSession();
    const seconds = this.options.queueTimeout;
    return this.#slots.acquire(seconds === null ? null : seconds * 1000);
  }

  /** Closes the session idle longest (outside a transaction, for a second at least) to free its slot. */
  #shedIdleSession(): void {
    if (this.options.overloadTimeout === null) return;
    const now = Date.now();
    let oldest: Session | undefined;
    for (const session of this.#sessions) {
      const since = session.idleSince;
      if (since === 0 || now - since < SHED_MIN_IDLE_MS) continue;
      if (!oldest || since < oldest.idleSince) oldest = session;
    }
    oldest?.shed();
  }

  /** Enters or leaves overload mode (Postfix's stress mode) as slots fill and empty. */
  #checkOverload(): void {
    const seconds = this.options.overloadTimeout;
    if (seconds === null) return;
    const max = this.options.maxProcessings;
    const overloaded = this.#slots.busy >= Math.max(1, this.options.overloadThreshold * max);
    if (overloaded === this.#overloaded) return;
    this.#overloaded = overloaded;
    if (overloaded) {
      this.log(
        null,
        "warn",
        `overloaded: ${this.#slots.busy} of ${max} sessions busy; command timeout now ${seconds} s`,
      );
      for (const session of this.#sessions) session.tightenDeadline(seconds);
    } else {
      this.log(null, "info", `no longer overloaded: ${this.#slots.busy} of ${max} sessions busy`);
    }
  }

  /** Logs a refusal once per client and window (a flood is one line, not thousands). */
  #logRefusal(ctx: SmtpdContext | null, ip: string, refusal: Refusal): void {
    if (!this.logs("warn")) return;
    const once = this.#refusals.shouldLog(ip, refusal.reason);
    if (!once) return;
    const more = once.suppressed > 0 ? ` (${once.suppressed} more refused since the last such line)` : "";
    this.log(ctx, "warn", `refused ${ip}: ${refusal.reason}${more}`);
  }

  #notifyIdle: (() => void) | undefined;

  /** Resolves `true` once no connection is left, or `false` after `ms`. */
  async #connectionsEnded(ms: number): Promise<boolean> {
    if (this.#serving.size === 0) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ended = await new Promise<boolean>((resolve) => {
      this.#notifyIdle = () => resolve(true);
      timer = setTimeout(() => resolve(false), ms);
    });
    clearTimeout(timer);
    this.#notifyIdle = undefined;
    return ended;
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

  /**
   * Writes `2026-12-02T04:00:00Z [WARN] [6K2M9QF1ZP4T] msg` to stderr: UTC,
   * the severity, and the session id on lines of a session (see `src/log_line.ts`).
   */
  onLoggingEvent(ctx: SmtpdContext | null, severity: LogSeverity, msg: string, err?: unknown): void {
    console.error(formatLogLine(severity, msg, ctx?.sessionId));
    if (severity === "fatal" && err instanceof Error && err.stack) console.error(err.stack);
  }

  /** Accepts every proxied client. */
  onProxyEvent(_ctx: SmtpdContext, _proxy: ProxyInfo): Awaitable<void> {}

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
  onMessageDataEvent(_ctx: SmtpdContext): Awaitable<void | RecipientResults> {}

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

/** Who a connection's peer is, for the log and the refusal log: its IP, or `unix:<path>` on a Unix socket. */
function peerName(address: SocketAddress): string {
  return address.family === "unix" ? `unix:${address.path ?? ""}` : address.hostname;
}
