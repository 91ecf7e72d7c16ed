/**
 * Server options: their types, defaults and validation, and the seed's string
 * forms for hosts and ports (`"2525, 3535"`, `"2525:3535"`, `"127.0.0.1, ::1"`, `"*"`).
 *
 * @module
 */
import type { Transport } from "./transport/types.ts";

/** How line endings other than CRLF are treated (commands and DATA). */
export type CrlfMode = "CRLF_ENSURE" | "CRLF_LEAVE" | "CRLF_STRICT";
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
}

const CRLF_MODES: readonly CrlfMode[] = ["CRLF_ENSURE", "CRLF_LEAVE", "CRLF_STRICT"];
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
  };
}
