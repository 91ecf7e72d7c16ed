/**
 * Server options: their types, defaults and validation, and the seed's string
 * forms for hosts and ports (`"2525, 3535"`, `"2525:3535"`, `"127.0.0.1, ::1"`, `"*"`).
 *
 * @module
 */
import type { Transport } from "./transport/types.ts";
import type { SaslMechanism } from "./auth/types.ts";
import { CidrList } from "./cidr.ts";
import type { SmtpdContext } from "./context.ts";
import {
  checkCommandDefinition,
  checkParameter,
  type CommandDefinition,
  type EsmtpParameter,
} from "./session/registry.ts";

/** How line endings other than CRLF are treated (commands and DATA). */
export type CrlfMode = "CRLF_ENSURE" | "CRLF_LEAVE" | "CRLF_STRICT";
/** Whether STARTTLS is offered, and whether it is required before mail (RFC 3207). */
export type TlsMode = "TLS_FORBIDDEN" | "TLS_OPTIONAL" | "TLS_REQUIRED";
/** Whether AUTH is offered, and whether it is required before mail (RFC 4954). */
export type AuthMode = "AUTH_FORBIDDEN" | "AUTH_OPTIONAL" | "AUTH_REQUIRED";
/** A PEM certificate (chain) and its private key. */
export interface PemCertificate {
  /** PEM certificate, optionally followed by its chain. */
  readonly cert: string;
  /** PEM private key (RSA or EC). */
  readonly key: string;
}
/** Log levels, lowest first. */
export type LogSeverity = "debug" | "info" | "warn" | "error" | "fatal";

/** Options of {@link MidiSmtpServer}; every one is optional. */
export interface ServerOptions {
  /** Ports: `2525`, `"2525, 3535"` (one entry per host, the last one repeats), `"2525:3535"` (several for one host), or an array. Default `2525`. */
  ports?: number | string | Array<number | string>;
  /** Hosts: `"127.0.0.1"`, `"127.0.0.1, ::1"`, host names (every address is bound), `"*"` (all local addresses), or an array. Default `"127.0.0.1"`. */
  hosts?: string | string[];
  /** Sessions served at the same time; further accepted clients wait for their `220`. Default 1000. */
  maxProcessings?: number;
  /** Open connections at most (`null`: unlimited); past it a client gets `421` and is closed. Must be >= `maxProcessings`. */
  maxConnections?: number | null;
  /** Bare CR/LF policy: `CRLF_ENSURE` (default) turns them into CRLF, `CRLF_LEAVE` keeps them, `CRLF_STRICT` refuses them with 500. */
  crlfMode?: CrlfMode;
  /** Fill `localHost`/`remoteHost` by reverse DNS (with a 2 s limit). Default `false`. */
  doDnsReverseLookup?: boolean;
  /** Seconds a client has for its first command after the greeting (`null`: no limit). Default 300. */
  ioGreetingTimeout?: number | null;
  /** Seconds a client has to send each complete command line (`null`: no limit). Default 300 (RFC 5321 4.5.3.2.7). */
  ioCmdTimeout?: number | null;
  /** Seconds a client has for the whole message after `354` (`null`: no limit). Default 600. */
  ioDataTimeout?: number | null;
  /** Bytes buffered for one command line before the connection is closed with 421 (`null`: no limit). Default 1 MiB. */
  ioBufferMaxSize?: number | null;
  /** Longest command line accepted, CRLF included; longer ones get `500 5.5.2 Line too long`. Default 12288 (RFC 4954 AUTH lines). */
  maxCommandLineLength?: number;
  /** Longest message line accepted, CRLF included (0: no limit). Default 0; RFC 5321 asks for at least 1000. */
  maxDataLineLength?: number;
  /** Largest message in bytes, advertised with SIZE and enforced while reading (0: no limit). Default 26214400 (25 MiB). */
  maxMessageSize?: number;
  /** Recipients per message; the next RCPT gets `452 4.5.3`. Default 100 (RFC 5321 4.5.3.1.8). */
  maxRecipients?: number;
  /** Syntax and sequence errors after which the session ends with 421 (at least 2). Default 10. */
  maxBadCommands?: number;
  /** Advertise and accept PIPELINING (RFC 2920). Default `false` (the seed's). */
  pipeliningExtension?: boolean;
  /** Advertise and accept 8BITMIME and SMTPUTF8 (RFC 6152, 6531). Default `false` (the seed's). */
  internationalizationExtensions?: boolean;
  /** Advertise ENHANCEDSTATUSCODES and prefix replies with them (RFC 2034, 3463). Default `true`. */
  enhancedStatusCodesExtension?: boolean;
  /** Lowest severity passed to `onLoggingEvent`. Default `"warn"`. */
  loggerSeverity?: LogSeverity;
  /** The socket layer; default: the one of the runtime we run on. */
  transport?: Transport;
  /**
   * Bind the TCP ports with SO_REUSEPORT, so that several processes (see
   * `runWorkers`) listen on the same ports and the kernel spreads the new
   * connections over them. Needs Linux; on Deno `--unstable-net` (which
   * `runWorkers` gives its workers); on Node 22.12 / 23.1 or later (a
   * `node:cluster` worker on older Node shares its primary's socket
   * instead). Unix sockets are never shared. Default `false`.
   */
  reusePort?: boolean;
  /** STARTTLS: `TLS_FORBIDDEN` (default), `TLS_OPTIONAL`, or `TLS_REQUIRED` (MAIL, RCPT, DATA and AUTH get 530 before it). */
  tlsMode?: TlsMode;
  /** Ports with implicit TLS (SMTPS, RFC 8314), bound on every host besides `ports`; `0` picks a free one. */
  tlsPorts?: number | string | Array<number | string>;
  /** PEM file with the certificate, its chain, and possibly the key. Without any certificate a self-signed one is made in memory. */
  tlsCertPath?: string;
  /** PEM file with the private key (when it is not in `tlsCertPath`). */
  tlsKeyPath?: string;
  /** The certificate as PEM text instead of a file (with `tlsKey`). */
  tlsCert?: string;
  /** The private key as PEM text (with `tlsCert`). */
  tlsKey?: string;
  /** Certificates by SNI name (`"mail.example.com"`, `"*.example.com"`), or a function choosing one; unmatched names get the default. */
  tlsSni?: Record<string, PemCertificate> | ((serverName: string) => PemCertificate | undefined);
  /** Common name for the self-signed certificate (default: the first host name, else `localhost`). */
  tlsCertCn?: string;
  /** Extra subject alternative names for the self-signed certificate. */
  tlsCertSan?: string[];
  /** Lowest TLS version, `"TLSv1.2"` (default) or `"TLSv1.3"`. */
  tlsMinVersion?: "TLSv1.2" | "TLSv1.3";
  /** OpenSSL cipher list for TLS 1.2 (default: the runtime's). */
  tlsCiphers?: string;
  /** Seconds a client has to finish the TLS handshake. Default 10. */
  tlsHandshakeTimeout?: number;
  /** AUTH: `AUTH_FORBIDDEN` (default), `AUTH_OPTIONAL`, or `AUTH_REQUIRED` (MAIL, RCPT and DATA get 530 before it). */
  authMode?: AuthMode;
  /** Mechanisms offered, in order: names of built-ins (`PLAIN`, `LOGIN`, `CRAM-MD5`, `XOAUTH2`) or your own. Default `["PLAIN", "LOGIN"]`. */
  authMechanisms?: Array<string | SaslMechanism>;
  /** Offer AUTH on connections without TLS too (passwords then cross the network in clear). Default `false`. */
  allowInsecureAuth?: boolean;
  /** Failed AUTH attempts after which the connection is closed with 421. Default 3. */
  maxAuthFailures?: number;
  /**
   * PROXY protocol v1 and v2 (HAProxy): every connection must start with a
   * header, honoured only from {@link proxyTrustedSources}; anything else is
   * closed with nothing served. Default `false`.
   */
  proxyExtension?: boolean;
  /** Who may send a PROXY header: CIDR list, default loopback only (`["127.0.0.0/8", "::1/128"]`). */
  proxyTrustedSources?: string[];
  /** Seconds a proxy has to send the whole PROXY header. Default 5 (the spec asks for at least 3). */
  proxyTimeout?: number;
  /** Open connections per client address (IPv6 counted per /64); past it `421 4.7.0`. `null`: no limit. Default 50 (Postfix). */
  maxConnectionsPerIp?: number | null;
  /** New connections per client address and minute; past it `421 4.7.0`. `null`: no limit. Default 600. */
  maxConnectionRatePerIp?: number | null;
  /** MAIL commands per client address and minute; past it `450 4.7.1`. `null`: no limit. Default 1200. */
  maxMessageRatePerIp?: number | null;
  /** Failed AUTH attempts per client address (across connections) before AUTH is locked for that address. `null`: no limit. Default 10. */
  maxAuthFailuresPerIp?: number | null;
  /** Seconds over which failed AUTH attempts per address are counted, and how long a lockout lasts. Default 900. */
  authLockoutTime?: number;
  /** Client addresses (CIDR list) that the per-address limits do not apply to, e.g. your own relays. Default none. */
  perIpLimitsExempt?: string[];
  /** Errors in a session after which every reply is delayed (a tarpit). `null`: never. Default 5. */
  softErrorLimit?: number | null;
  /** Seconds the tarpit delays a reply per error past `softErrorLimit` (growing, at most 10 times this). Default 1. */
  errorSleepTime?: number;
  /** Seconds a connection may wait for a free slot behind `maxProcessings`; then `421 4.3.2`. `null`: no limit. Default 30. */
  queueTimeout?: number | null;
  /** Share of `maxProcessings` in use from which the server counts as overloaded (0 < x <= 1). Default 0.8. */
  overloadThreshold?: number;
  /** Greeting and command timeout (seconds) while overloaded; idle sessions are then shed first. `null`: no overload mode. Default 10. */
  overloadTimeout?: number | null;
  /** Seconds to wait before the `220`; a client that talks first is refused (`554`) either way. Default 0. */
  greetingDelay?: number;
  /** Seconds any hook may take; past it the client gets `421 4.3.0`, `ctx.signal` aborts and the session ends. `null`: no limit. Default 120. */
  hookTimeout?: number | null;
  /** Advertise and accept CHUNKING: the `BDAT` command (RFC 3030). Default `false`. */
  chunkingExtension?: boolean;
  /** Advertise and accept BINARYMIME (`BODY=BINARYMIME`, RFC 3030; needs `chunkingExtension`). Default `false`. */
  binaryMimeExtension?: boolean;
  /** Advertise and accept DSN: `RET`/`ENVID` on MAIL, `NOTIFY`/`ORCPT` on RCPT (RFC 3461). Default `false`. */
  dsnExtension?: boolean;
  /** Advertise and accept REQUIRETLS (RFC 8689), over TLS only. Default `false`. */
  requireTlsExtension?: boolean;
  /**
   * Clients (CIDR list) that may send XCLIENT and XFORWARD (Postfix), e.g. a
   * proxy or content filter in front; `"unix"` trusts Unix-socket clients.
   * Default none: both are neither offered nor accepted.
   */
  xclientTrustedSources?: string[];
  /** Speak LMTP (RFC 2033) instead of SMTP: `LHLO`, one reply per recipient after the message. Default `false`. */
  lmtp?: boolean;
  /** Unix socket paths to listen on as well as `ports` (a stale socket file there is replaced). Default none. */
  socketPaths?: string | string[];
  /** Commands to add (or to replace built-in ones of the same name). */
  commands?: CommandDefinition[];
  /** Built-in commands to switch off (they then get `502`), e.g. `["VRFY", "HELP"]`. */
  disabledCommands?: string[];
  /** MAIL and RCPT parameters to accept besides the built-in ones. */
  esmtpParameters?: EsmtpParameter[];
  /**
   * Adjusts the EHLO keywords per session: gets the built-in lines (e.g.
   * `"SIZE 26214400"`, `"STARTTLS"`, `"AUTH PLAIN LOGIN"`) and returns the
   * lines to offer (or changes the array in place). A keyword left out is
   * also refused: STARTTLS and AUTH answer 502, parameters 555.
   */
  ehloKeywords?: (ctx: SmtpdContext, keywords: string[]) => string[] | void;
}

/** Options after defaults, as the server uses them (`server.options`). */
export interface ResolvedOptions {
  /** Port lists per host entry. */
  readonly ports: readonly (readonly number[])[];
  /** Host entries as given (names, IPs or `*`). */
  readonly hosts: readonly string[];
  /** See {@link ServerOptions.maxProcessings}. */
  readonly maxProcessings: number;
  /** See {@link ServerOptions.maxConnections}. */
  readonly maxConnections: number | null;
  /** See {@link ServerOptions.crlfMode}. */
  readonly crlfMode: CrlfMode;
  /** See {@link ServerOptions.doDnsReverseLookup}. */
  readonly doDnsReverseLookup: boolean;
  /** See {@link ServerOptions.ioGreetingTimeout}. */
  readonly ioGreetingTimeout: number | null;
  /** See {@link ServerOptions.ioCmdTimeout}. */
  readonly ioCmdTimeout: number | null;
  /** See {@link ServerOptions.ioDataTimeout}. */
  readonly ioDataTimeout: number | null;
  /** See {@link ServerOptions.ioBufferMaxSize}. */
  readonly ioBufferMaxSize: number | null;
  /** See {@link ServerOptions.maxCommandLineLength}. */
  readonly maxCommandLineLength: number;
  /** See {@link ServerOptions.maxDataLineLength}. */
  readonly maxDataLineLength: number;
  /** See {@link ServerOptions.maxMessageSize}. */
  readonly maxMessageSize: number;
  /** See {@link ServerOptions.maxRecipients}. */
  readonly maxRecipients: number;
  /** See {@link ServerOptions.maxBadCommands}. */
  readonly maxBadCommands: number;
  /** See {@link ServerOptions.pipeliningExtension}. */
  readonly pipeliningExtension: boolean;
  /** See {@link ServerOptions.internationalizationExtensions}. */
  readonly internationalizationExtensions: boolean;
  /** See {@link ServerOptions.enhancedStatusCodesExtension}. */
  readonly enhancedStatusCodesExtension: boolean;
  /** See {@link ServerOptions.loggerSeverity}. */
  readonly loggerSeverity: LogSeverity;
  /** The transport given, or `undefined` for the runtime's own. */
  readonly transport: Transport | undefined;
  /** See {@link ServerOptions.reusePort}. */
  readonly reusePort: boolean;
  /** See {@link ServerOptions.tlsMode}. */
  readonly tlsMode: TlsMode;
  /** Implicit TLS port lists, one per host (the same list for every host). */
  readonly tlsPorts: readonly number[];
  /** See {@link ServerOptions.tlsCertPath}. */
  readonly tlsCertPath: string | undefined;
  /** See {@link ServerOptions.tlsKeyPath}. */
  readonly tlsKeyPath: string | undefined;
  /** The PEM pair given as text, if any. */
  readonly tlsCertificate: PemCertificate | undefined;
  /** See {@link ServerOptions.tlsSni}. */
  readonly tlsSni: Record<string, PemCertificate> | ((serverName: string) => PemCertificate | undefined) | undefined;
  /** See {@link ServerOptions.tlsCertCn}. */
  readonly tlsCertCn: string | undefined;
  /** See {@link ServerOptions.tlsCertSan}. */
  readonly tlsCertSan: readonly string[];
  /** See {@link ServerOptions.tlsMinVersion}. */
  readonly tlsMinVersion: "TLSv1.2" | "TLSv1.3";
  /** See {@link ServerOptions.tlsCiphers}. */
  readonly tlsCiphers: string | undefined;
  /** See {@link ServerOptions.tlsHandshakeTimeout}. */
  readonly tlsHandshakeTimeout: number;
  /** See {@link ServerOptions.authMode}. */
  readonly authMode: AuthMode;
  /** See {@link ServerOptions.authMechanisms}. */
  readonly authMechanisms: ReadonlyArray<string | SaslMechanism>;
  /** See {@link ServerOptions.allowInsecureAuth}. */
  readonly allowInsecureAuth: boolean;
  /** See {@link ServerOptions.maxAuthFailures}. */
  readonly maxAuthFailures: number;
  /** See {@link ServerOptions.proxyExtension}. */
  readonly proxyExtension: boolean;
  /** See {@link ServerOptions.proxyTrustedSources}. */
  readonly proxyTrustedSources: CidrList;
  /** See {@link ServerOptions.proxyTimeout}. */
  readonly proxyTimeout: number;
  /** See {@link ServerOptions.maxConnectionsPerIp}. */
  readonly maxConnectionsPerIp: number | null;
  /** See {@link ServerOptions.maxConnectionRatePerIp}. */
  readonly maxConnectionRatePerIp: number | null;
  /** See {@link ServerOptions.maxMessageRatePerIp}. */
  readonly maxMessageRatePerIp: number | null;
  /** See {@link ServerOptions.maxAuthFailuresPerIp}. */
  readonly maxAuthFailuresPerIp: number | null;
  /** See {@link ServerOptions.authLockoutTime}. */
  readonly authLockoutTime: number;
  /** See {@link ServerOptions.perIpLimitsExempt}. */
  readonly perIpLimitsExempt: CidrList;
  /** See {@link ServerOptions.softErrorLimit}. */
  readonly softErrorLimit: number | null;
  /** See {@link ServerOptions.errorSleepTime}. */
  readonly errorSleepTime: number;
  /** See {@link ServerOptions.queueTimeout}. */
  readonly queueTimeout: number | null;
  /** See {@link ServerOptions.overloadThreshold}. */
  readonly overloadThreshold: number;
  /** See {@link ServerOptions.overloadTimeout}. */
  readonly overloadTimeout: number | null;
  /** See {@link ServerOptions.greetingDelay}. */
  readonly greetingDelay: number;
  /** See {@link ServerOptions.hookTimeout}. */
  readonly hookTimeout: number | null;
  /** See {@link ServerOptions.chunkingExtension}. */
  readonly chunkingExtension: boolean;
  /** See {@link ServerOptions.binaryMimeExtension}. */
  readonly binaryMimeExtension: boolean;
  /** See {@link ServerOptions.dsnExtension}. */
  readonly dsnExtension: boolean;
  /** See {@link ServerOptions.requireTlsExtension}. */
  readonly requireTlsExtension: boolean;
  /** See {@link ServerOptions.xclientTrustedSources} (without `"unix"`). */
  readonly xclientTrustedSources: CidrList;
  /** Whether Unix-socket clients may send XCLIENT and XFORWARD (`"unix"` in {@link ServerOptions.xclientTrustedSources}). */
  readonly xclientTrustsUnix: boolean;
  /** See {@link ServerOptions.lmtp}. */
  readonly lmtp: boolean;
  /** See {@link ServerOptions.socketPaths}. */
  readonly socketPaths: readonly string[];
  /** See {@link ServerOptions.commands}. */
  readonly commands: readonly CommandDefinition[];
  /** See {@link ServerOptions.disabledCommands} (upper-cased). */
  readonly disabledCommands: readonly string[];
  /** See {@link ServerOptions.esmtpParameters}. */
  readonly esmtpParameters: readonly EsmtpParameter[];
  /** See {@link ServerOptions.ehloKeywords}. */
  readonly ehloKeywords: ((ctx: SmtpdContext, keywords: string[]) => string[] | void) | undefined;
}

/** Every {@link CrlfMode}, for validation and for tools that list them (the dev server's `--crlf-mode`). */
export const CRLF_MODES: readonly CrlfMode[] = Object.freeze(["CRLF_ENSURE", "CRLF_LEAVE", "CRLF_STRICT"]);
/** Every {@link TlsMode}, for validation and for tools that list them (the dev server's `--tls-mode`). */
export const TLS_MODES: readonly TlsMode[] = Object.freeze(["TLS_FORBIDDEN", "TLS_OPTIONAL", "TLS_REQUIRED"]);
/** Every {@link AuthMode}, for validation and for tools that list them (the dev server's `--auth-mode`). */
export const AUTH_MODES: readonly AuthMode[] = Object.freeze(["AUTH_FORBIDDEN", "AUTH_OPTIONAL", "AUTH_REQUIRED"]);
// RFC 4422 3.1: 1 to 20 upper-case letters, digits, hyphens or underscores.
// Checked because a bad name would corrupt the EHLO AUTH line. Lower case is
// allowed before upper-casing, but only ASCII: Unicode case mapping would
// turn "ß" into "SS" and the dotless "ı" into "I".
const MECHANISM_NAME = /^[A-Za-z0-9_-]{1,20}$/;
/** Severity order, for filtering. */
export const SEVERITY_RANK: Readonly<Record<LogSeverity, number>> = { debug: 0, info: 1, warn: 2, error: 3, fatal: 4 };

/** Splits `"a, b"` or an array into trimmed items, failing on empty ones. */
function listOf(value: string | number | Array<string | number>, what: string): string[] {
  const items = Array.isArray(value) ? value.map(String) : String(value).split(",");
  const trimmed = items.map((s) => s.trim());
  if (trimmed.length === 0 || trimmed.every((s) => s === "")) {
    throw new TypeError(`No ${what} defined! Please give at least one.`);
  }
  if (trimmed.some((s) => s === "")) {
    throw new TypeError(`Detected an empty identifier in given ${what}: ${JSON.stringify(value)}`);
  }
  return trimmed;
}

/** Parses the seed's port forms into one port list per host entry. */
export function parsePorts(value: number | string | Array<number | string>): number[][] {
  return listOf(value, "ports").map((entry) =>
    entry.split(":").map((p) => {
      const port = Number(p.trim());
      if (p.trim() === "" || !Number.isInteger(port) || port < 0 || port > 65535) {
        throw new TypeError(`Invalid port "${p}" in ${JSON.stringify(value)}: ports are integers 0..65535`);
      }
      return port;
    })
  );
}

/** Parses the seed's host forms (brackets around IPv6 addresses are dropped). */
export function parseHosts(value: string | string[]): string[] {
  return listOf(value, "hosts").map((h) => h.replace(/^\[(.*)\]$/, "$1"));
}

function positiveInt(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new TypeError(`${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

function nonNegativeInt(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw new TypeError(`${name} must be 0 or a positive integer, got ${String(value)}`);
  }
  return value;
}

function seconds(name: string, value: unknown): number | null {
  if (value === null) return null;
  if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) {
    throw new TypeError(`${name} must be a positive number of seconds or null, got ${String(value)}`);
  }
  return value;
}

function bool(name: string, value: unknown): boolean {
  if (typeof value !== "boolean") throw new TypeError(`${name} must be true or false, got ${String(value)}`);
  return value;
}

/** Applies defaults and checks every option, throwing a `TypeError` that names the bad one. */
export function resolveOptions(options: ServerOptions = {}): ResolvedOptions {
  const o = options;
  const maxProcessings = positiveInt("maxProcessings", o.maxProcessings ?? 1000);
  const maxConnections = o.maxConnections == null ? null : positiveInt("maxConnections", o.maxConnections);
  if (maxConnections !== null && maxConnections < maxProcessings) {
    throw new TypeError(
      `maxConnections (${maxConnections}) is lower than maxProcessings (${maxProcessings}): it must be at least as large`,
    );
  }
  const crlfMode = o.crlfMode ?? "CRLF_ENSURE";
  if (!CRLF_MODES.includes(crlfMode)) throw new TypeError(`Unknown CRLF mode ${String(crlfMode)} was given!`);
  const loggerSeverity = o.loggerSeverity ?? "warn";
  if (!Object.hasOwn(SEVERITY_RANK, loggerSeverity)) {
    throw new TypeError(`Unknown loggerSeverity ${String(loggerSeverity)}`);
  }
  const maxBadCommands = positiveInt("maxBadCommands", o.maxBadCommands ?? 10);
  if (maxBadCommands < 2) {
    throw new TypeError("maxBadCommands must be at least 2: one unknown command never ends a session");
  }
  const maxCommandLineLength = positiveInt("maxCommandLineLength", o.maxCommandLineLength ?? 12288);
  if (maxCommandLineLength < 512) throw new TypeError("maxCommandLineLength must be at least 512 (RFC 5321 4.5.3.1.4)");
  const ioBufferMaxSize = o.ioBufferMaxSize === null
    ? null
    : positiveInt("ioBufferMaxSize", o.ioBufferMaxSize ?? 1048576);
  if (o.transport !== undefined && typeof o.transport?.listen !== "function") {
    throw new TypeError("transport must implement Transport (a listen() method)");
  }
  return {
    ports: parsePorts(o.ports ?? 2525),
    hosts: parseHosts(o.hosts ?? "127.0.0.1"),
    maxProcessings,
    maxConnections,
    crlfMode,
    doDnsReverseLookup: bool("doDnsReverseLookup", o.doDnsReverseLookup ?? false),
    ioGreetingTimeout: seconds("ioGreetingTimeout", o.ioGreetingTimeout === undefined ? 300 : o.ioGreetingTimeout),
    ioCmdTimeout: seconds("ioCmdTimeout", o.ioCmdTimeout === undefined ? 300 : o.ioCmdTimeout),
    ioDataTimeout: seconds("ioDataTimeout", o.ioDataTimeout === undefined ? 600 : o.ioDataTimeout),
    ioBufferMaxSize,
    maxCommandLineLength,
    maxDataLineLength: nonNegativeInt("maxDataLineLength", o.maxDataLineLength ?? 0),
    maxMessageSize: nonNegativeInt("maxMessageSize", o.maxMessageSize ?? 26214400),
    maxRecipients: positiveInt("maxRecipients", o.maxRecipients ?? 100),
    maxBadCommands,
    pipeliningExtension: bool("pipeliningExtension", o.pipeliningExtension ?? false),
    internationalizationExtensions: bool("internationalizationExtensions", o.internationalizationExtensions ?? false),
    enhancedStatusCodesExtension: bool("enhancedStatusCodesExtension", o.enhancedStatusCodesExtension ?? true),
    loggerSeverity,
    transport: o.transport,
    reusePort: bool("reusePort", o.reusePort ?? false),
    ...resolveTlsAndAuth(o),
    ...resolveLimits(o),
    ...resolveExtensions(o),
  };
}

/** The extension and registry part of {@link resolveOptions}. */
function resolveExtensions(o: ServerOptions) {
  const chunkingExtension = bool("chunkingExtension", o.chunkingExtension ?? false);
  const binaryMimeExtension = bool("binaryMimeExtension", o.binaryMimeExtension ?? false);
  if (binaryMimeExtension && !chunkingExtension) {
    throw new TypeError("binaryMimeExtension needs chunkingExtension (RFC 3030: BINARYMIME bodies are sent with BDAT)");
  }
  const trusted = o.xclientTrustedSources ?? [];
  if (!Array.isArray(trusted)) throw new TypeError('xclientTrustedSources must be an array of CIDR strings or "unix"');
  const socketPaths = o.socketPaths === undefined ? [] : Array.isArray(o.socketPaths) ? o.socketPaths : [o.socketPaths];
  for (const path of socketPaths) {
    if (typeof path !== "string" || path === "") throw new TypeError("socketPaths must be non-empty path strings");
  }
  const commands = o.commands ?? [];
  if (!Array.isArray(commands)) throw new TypeError("commands must be an array of command definitions");
  commands.forEach(checkCommandDefinition);
  const disabled = o.disabledCommands ?? [];
  if (!Array.isArray(disabled) || disabled.some((c) => typeof c !== "string" || !/^[A-Za-z][A-Za-z0-9-]*$/.test(c))) {
    throw new TypeError("disabledCommands must be an array of command names");
  }
  const ehloKeywords = o.ehloKeywords;
  if (ehloKeywords !== undefined && typeof ehloKeywords !== "function") {
    throw new TypeError("ehloKeywords must be a function (ctx, keywords) => keywords");
  }
  const params = o.esmtpParameters ?? [];
  if (!Array.isArray(params)) throw new TypeError("esmtpParameters must be an array of parameter declarations");
  params.forEach(checkParameter);
  return {
    chunkingExtension,
    binaryMimeExtension,
    dsnExtension: bool("dsnExtension", o.dsnExtension ?? false),
    requireTlsExtension: bool("requireTlsExtension", o.requireTlsExtension ?? false),
    xclientTrustedSources: cidrs("xclientTrustedSources", trusted.filter((e) => e !== "unix"), []),
    xclientTrustsUnix: trusted.includes("unix"),
    lmtp: bool("lmtp", o.lmtp ?? false),
    socketPaths: [...socketPaths],
    commands: [...commands],
    disabledCommands: disabled.map((c) => c.toUpperCase()),
    esmtpParameters: [...params],
    ehloKeywords,
  };
}

function nullableCount(name: string, value: unknown, fallback: number): number | null {
  if (value === null) return null;
  return positiveInt(name, value ?? fallback);
}

function positiveSeconds(name: string, value: unknown, fallback: number): number {
  const v = value ?? fallback;
  if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) {
    throw new TypeError(`${name} must be a positive number of seconds, got ${String(v)}`);
  }
  return v;
}

function cidrs(name: string, value: unknown, fallback: readonly string[]): CidrList {
  const list = value ?? fallback;
  if (!Array.isArray(list) || list.some((e) => typeof e !== "string")) {
    throw new TypeError(`${name} must be an array of CIDR strings such as "10.0.0.0/8"`);
  }
  try {
    return new CidrList(list);
  } catch (err) {
    throw new TypeError(`${name}: ${(err as Error).message}`);
  }
}

/** The PROXY, per-client admission, overload and deadline part of {@link resolveOptions}. */
function resolveLimits(o: ServerOptions) {
  const overloadThreshold = o.overloadThreshold ?? 0.8;
  if (typeof overloadThreshold !== "number" || !(overloadThreshold > 0 && overloadThreshold <= 1)) {
    throw new TypeError(`overloadThreshold must be a share of maxProcessings (0 < x <= 1), got ${overloadThreshold}`);
  }
  const greetingDelay = o.greetingDelay ?? 0;
  if (typeof greetingDelay !== "number" || !(greetingDelay >= 0) || !Number.isFinite(greetingDelay)) {
    throw new TypeError(`greetingDelay must be 0 or a positive number of seconds, got ${String(greetingDelay)}`);
  }
  const softErrorLimit = o.softErrorLimit === null ? null : positiveInt("softErrorLimit", o.softErrorLimit ?? 5);
  return {
    proxyExtension: bool("proxyExtension", o.proxyExtension ?? false),
    proxyTrustedSources: cidrs("proxyTrustedSources", o.proxyTrustedSources, CidrList.LOOPBACK),
    proxyTimeout: positiveSeconds("proxyTimeout", o.proxyTimeout, 5),
    maxConnectionsPerIp: nullableCount("maxConnectionsPerIp", o.maxConnectionsPerIp, 50),
    maxConnectionRatePerIp: nullableCount("maxConnectionRatePerIp", o.maxConnectionRatePerIp, 600),
    maxMessageRatePerIp: nullableCount("maxMessageRatePerIp", o.maxMessageRatePerIp, 1200),
    maxAuthFailuresPerIp: nullableCount("maxAuthFailuresPerIp", o.maxAuthFailuresPerIp, 10),
    authLockoutTime: positiveSeconds("authLockoutTime", o.authLockoutTime, 900),
    perIpLimitsExempt: cidrs("perIpLimitsExempt", o.perIpLimitsExempt, []),
    softErrorLimit,
    errorSleepTime: positiveSeconds("errorSleepTime", o.errorSleepTime, 1),
    queueTimeout: seconds("queueTimeout", o.queueTimeout === undefined ? 30 : o.queueTimeout),
    overloadThreshold,
    overloadTimeout: seconds("overloadTimeout", o.overloadTimeout === undefined ? 10 : o.overloadTimeout),
    greetingDelay,
    hookTimeout: seconds("hookTimeout", o.hookTimeout === undefined ? 120 : o.hookTimeout),
  };
}

function optionalString(name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value === "") throw new TypeError(`${name} must be a non-empty string`);
  return value;
}

/** The TLS and AUTH part of {@link resolveOptions}. */
function resolveTlsAndAuth(o: ServerOptions) {
  const tlsMode = o.tlsMode ?? "TLS_FORBIDDEN";
  if (!TLS_MODES.includes(tlsMode)) throw new TypeError(`Unknown encryption mode ${String(tlsMode)} was given!`);
  const authMode = o.authMode ?? "AUTH_FORBIDDEN";
  if (!AUTH_MODES.includes(authMode)) throw new TypeError(`Unknown authentication mode ${String(authMode)} was given!`);
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw new TypeError("tlsCert and tlsKey go together");
  if (o.tlsCert !== undefined && o.tlsCertPath !== undefined) {
    throw new TypeError("Give tlsCert/tlsKey or tlsCertPath, not both");
  }
  if (o.tlsKeyPath !== undefined && o.tlsCertPath === undefined) throw new TypeError("tlsKeyPath needs tlsCertPath");
  const tlsMinVersion = o.tlsMinVersion ?? "TLSv1.2";
  if (tlsMinVersion !== "TLSv1.2" && tlsMinVersion !== "TLSv1.3") {
    throw new TypeError(`tlsMinVersion must be "TLSv1.2" or "TLSv1.3", got ${String(tlsMinVersion)}`);
  }
  if (o.tlsSni !== undefined && typeof o.tlsSni !== "function" && (typeof o.tlsSni !== "object" || o.tlsSni === null)) {
    throw new TypeError("tlsSni must be an object of certificates by name or a function");
  }
  const tlsHandshakeTimeout = o.tlsHandshakeTimeout ?? 10;
  if (typeof tlsHandshakeTimeout !== "number" || !(tlsHandshakeTimeout > 0)) {
    throw new TypeError(`tlsHandshakeTimeout must be a positive number of seconds, got ${String(tlsHandshakeTimeout)}`);
  }
  const mechanisms = o.authMechanisms ?? ["PLAIN", "LOGIN"];
  if (!Array.isArray(mechanisms) || mechanisms.length === 0) {
    throw new TypeError("authMechanisms must list at least one mechanism");
  }
  for (const m of mechanisms) {
    if (typeof m === "string" ? m === "" : typeof m?.start !== "function" || typeof m?.name !== "string") {
      throw new TypeError("authMechanisms entries are mechanism names or objects with a name and start()");
    }
    if (typeof m !== "string" && !MECHANISM_NAME.test(m.name)) {
      throw new TypeError(`Invalid SASL mechanism name ${JSON.stringify(m.name)} (RFC 4422 3.1)`);
    }
  }
  return {
    tlsMode,
    tlsPorts: o.tlsPorts === undefined ? [] : parsePorts(o.tlsPorts).flat(),
    tlsCertPath: optionalString("tlsCertPath", o.tlsCertPath),
    tlsKeyPath: optionalString("tlsKeyPath", o.tlsKeyPath),
    tlsCertificate: o.tlsCert !== undefined ? { cert: String(o.tlsCert), key: String(o.tlsKey) } : undefined,
    tlsSni: o.tlsSni,
    tlsCertCn: optionalString("tlsCertCn", o.tlsCertCn),
    tlsCertSan: [...(o.tlsCertSan ?? [])],
    tlsMinVersion,
    tlsCiphers: optionalString("tlsCiphers", o.tlsCiphers),
    tlsHandshakeTimeout,
    authMode,
    authMechanisms: mechanisms,
    allowInsecureAuth: bool("allowInsecureAuth", o.allowInsecureAuth ?? false),
    maxAuthFailures: positiveInt("maxAuthFailures", o.maxAuthFailures ?? 3),
  };
}
