/**
 * The dev server's command line: its flags and `--help` text
 * ({@link USAGE}), its settings ({@link DevServerConfig}, with
 * {@link DEFAULT_CONFIG}) and {@link parseCliArgs}, which turns the one into
 * the other.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { AUTH_MODES, type AuthMode, CRLF_MODES, type CrlfMode, TLS_MODES, type TlsMode } from "../options.ts";
import { CidrList } from "../cidr.ts";
import { CliError } from "./cli_error.ts";
import { checkConfig } from "./config.ts";
import { LOG_FORMATS, type LogFormat } from "./log_format.ts";
import {
  authMechanismList,
  authUser,
  cidrEntries,
  integer,
  integerOrOff,
  oneOf,
  seconds,
  secondsOrOff,
  xclientEntries,
} from "./flag_values.ts";

export { CliError } from "./cli_error.ts";

/** The version printed by `--version` (kept in step with deno.json). */
export const VERSION = "0.1.0";

/** The `--help` text. */
export const USAGE = `Usage: midi-smtp-server [options]

An SMTP sink for development and tests: accepts every message, stores it in
a Maildir and prints one line per message to stdout. It offers PIPELINING,
SIZE, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, CHUNKING, BINARYMIME, DSN and
(over TLS) REQUIRETLS.

Options:
  --hosts LIST          addresses to listen on, e.g. "127.0.0.1, ::1" or "*" (default 127.0.0.1)
  --ports LIST          ports, e.g. "2525" or "2525:2526"; 0 picks a free port (default 2525)
  --maildir DIR         Maildir to store messages in, created if missing (default ./mail)
  --envelope-dir DIR    also write each message's envelope (sender, every recipient, BCC
                        ones too, with their DSN parameters; the client; TLS; AUTH) as
                        JSON into DIR, created if missing: NAME.json for the Maildir
                        file NAME
  --max-size BYTES      largest message accepted, 0 for no limit (default 26214400)
  --max-recipients N    recipients per message (default 100)
  --crlf-mode MODE      CRLF_ENSURE (default), CRLF_LEAVE or CRLF_STRICT
  -q, --quiet           do not print a line per message
  --log-format FORMAT   text (default) or json: log lines and the lines per message as
                        one JSON object per line
  --workers N           run N worker processes on the same ports under one supervisor,
                        which restarts one that dies (default: one process, no
                        supervisor); the ports must not be 0

Protocol:
  --lmtp                speak LMTP (RFC 2033: LHLO, one reply per recipient) instead of SMTP
  --socket PATH         listen on a Unix socket too, repeatable (a stale socket file there
                        is replaced)
  --no-chunking         do not offer CHUNKING (BDAT), nor BINARYMIME with it
  --no-binarymime       do not offer BINARYMIME
  --no-dsn              do not offer DSN (RET, ENVID, NOTIFY, ORCPT)
  --no-requiretls       do not offer REQUIRETLS (offered over TLS otherwise)

Limits and timeouts (S: seconds, decimals allowed):
  --max-connections N   open connections at most; past it 421 (default: no limit)
  --max-processings N   sessions served at once; further clients wait for their 220
                        (default 1000, or --max-connections if lower)
  --max-connections-per-ip N
                        open connections per client address, or off (default 50)
  --io-greeting-timeout S
                        time for the first command, or off (default 300)
  --io-cmd-timeout S    time for each command line, or off (default 300)
  --io-data-timeout S   time for a whole message, or off (default 600)
  --hook-timeout S      time for storing a message, or off (default 120); past it
                        the client gets 421 and nothing is stored
  --greeting-delay S    wait before the 220; clients that talk first are refused
                        (default 0)

PROXY protocol and XCLIENT:
  --proxy               every connection must start with a PROXY header (v1 or v2,
                        HAProxy), and only from --proxy-trusted addresses
  --proxy-trusted CIDR  who may send it, repeatable (default 127.0.0.0/8 and ::1/128);
                        needs --proxy
  --xclient-trusted CIDR
                        who may send XCLIENT and XFORWARD (Postfix), repeatable; "unix"
                        for clients on --socket (default: nobody)

TLS:
  --tls-mode MODE       STARTTLS: TLS_FORBIDDEN (default), TLS_OPTIONAL or TLS_REQUIRED
  --tls-port LIST       implicit TLS (SMTPS) ports on every host, e.g. "465" or "465:4650";
                        repeatable; 0 picks a free port
  --tls-cert FILE       PEM certificate (chain), followed by the key unless --tls-key is
                        given (default: a self-signed certificate made at start)
  --tls-key FILE        PEM private key of --tls-cert

AUTH:
  --auth-mode MODE      AUTH_FORBIDDEN (default), AUTH_OPTIONAL or AUTH_REQUIRED
  --auth-user USER:PASSWORD
                        an account, repeatable; the password is everything after the
                        first colon, so it may contain colons
  --auth-mechanisms LIST
                        mechanisms offered (default PLAIN,LOGIN,CRAM-MD5); XOAUTH2 may
                        be added: its bearer token is checked against the password
  --allow-insecure-auth
                        offer AUTH without TLS too (passwords then cross the network in
                        clear); without it AUTH is offered only over TLS

  -h, --help            show this help and exit
  -V, --version         show the version and exit

A message is acknowledged (250) only once its file is durably in DIR/new/
(and its envelope file, if any, is written); if it cannot be stored the
client gets 451 and may retry. SIGINT or SIGTERM stops the server
gracefully: no new connections, and messages in progress are received and
stored first (for up to 30 s); a second signal exits at once, and a stop
prints how long the server ran, with its counts. With TLS on, the SHA-256
fingerprint of the certificate (given or self-signed) is printed once
listening. Passwords are never printed.

Exit status: 0 on success or after a signal, 1 if the server cannot start
(within 30 s) or a stop left a delivery unfinished, 2 on a bad option. A
signal before the server listens ends it as that signal would.
`;

/** The dev server's settings, as given on the command line. */
export interface DevServerConfig {
  /** Host entries in the server's `hosts` syntax. */
  hosts: string;
  /** Port entries in the server's `ports` syntax. */
  ports: string;
  /** The Maildir directory. */
  maildir: string;
  /** Largest message in bytes (0: no limit). */
  maxSize: number;
  /** Recipients per message. */
  maxRecipients: number;
  /** Bare CR/LF policy. */
  crlfMode: CrlfMode;
  /** No line per message. */
  quiet: boolean;
  /** How log lines and the lines per message look: `"text"` or `"json"` (one object per line). */
  logFormat: LogFormat;
  /** Worker processes sharing the ports under one supervisor; `0` for one process without a supervisor. */
  workers: number;
  /** Open connections at most (`null`: no limit). */
  maxConnections: number | null;
  /** Sessions served at once. */
  maxProcessings: number;
  /** Open connections per client address (`null`: no limit). */
  maxConnectionsPerIp: number | null;
  /** Seconds for the first command (`null`: none). */
  ioGreetingTimeout: number | null;
  /** Seconds for each command line (`null`: none). */
  ioCmdTimeout: number | null;
  /** Seconds for a whole message (`null`: none). */
  ioDataTimeout: number | null;
  /** Seconds a hook, i.e. storing a message, may take (`null`: no limit). */
  hookTimeout: number | null;
  /** Seconds before the greeting. */
  greetingDelay: number;
  /** PROXY protocol required on every connection. */
  proxy: boolean;
  /** Who may send a PROXY header (CIDR entries). */
  proxyTrusted: readonly string[];
  /** STARTTLS policy. */
  tlsMode: TlsMode;
  /** Implicit TLS port entries (one per `--tls-port`, each in the `ports` syntax); empty for none. */
  tlsPorts: readonly string[];
  /** PEM certificate file; `undefined` for a self-signed certificate made at start. */
  tlsCert: string | undefined;
  /** PEM private key file, when the key is not in {@link tlsCert}. */
  tlsKey: string | undefined;
  /** AUTH policy. */
  authMode: AuthMode;
  /** The accounts AUTH accepts. */
  authUsers: readonly DevServerUser[];
  /** The AUTH mechanisms offered, upper-case, in order. */
  authMechanisms: readonly string[];
  /** Offer AUTH on connections without TLS too. */
  allowInsecureAuth: boolean;
  /** Offer CHUNKING: the `BDAT` command (RFC 3030). */
  chunking: boolean;
  /** Offer BINARYMIME (RFC 3030); needs {@link chunking}, as BINARYMIME bodies come in BDAT chunks. */
  binaryMime: boolean;
  /** Offer DSN (RFC 3461): `RET`, `ENVID`, `NOTIFY`, `ORCPT`. */
  dsn: boolean;
  /** Offer REQUIRETLS (RFC 8689); the server offers it over TLS only. */
  requireTls: boolean;
  /** Speak LMTP (RFC 2033) instead of SMTP. */
  lmtp: boolean;
  /** Who may send XCLIENT and XFORWARD: CIDR entries, and `"unix"` for Unix-socket clients; empty for nobody. */
  xclientTrusted: readonly string[];
  /** Unix socket paths to listen on besides the TCP ports; empty for none. */
  socketPaths: readonly string[];
  /** Where to write one JSON envelope file per stored message; `undefined` for none. */
  envelopeDir: string | undefined;
}

/** An account of the dev server (`--auth-user user:password`). */
export interface DevServerUser {
  /** The user name (authentication id). */
  readonly user: string;
  /** The password (for XOAUTH2: the bearer token). */
  readonly password: string;
}

/** The defaults of {@link DevServerConfig}. */
export const DEFAULT_CONFIG: Readonly<DevServerConfig> = Object.freeze({
  hosts: "127.0.0.1",
  ports: "2525",
  maildir: "./mail",
  maxSize: 26214400,
  maxRecipients: 100,
  crlfMode: "CRLF_ENSURE",
  quiet: false,
  logFormat: "text",
  workers: 0,
  // The server's own defaults, spelt out so that --help and tests can show them.
  maxConnections: null,
  maxProcessings: 1000,
  maxConnectionsPerIp: 50,
  ioGreetingTimeout: 300,
  ioCmdTimeout: 300,
  ioDataTimeout: 600,
  hookTimeout: 120,
  greetingDelay: 0,
  proxy: false,
  proxyTrusted: CidrList.LOOPBACK,
  tlsMode: "TLS_FORBIDDEN",
  tlsPorts: Object.freeze([]),
  tlsCert: undefined,
  tlsKey: undefined,
  authMode: "AUTH_FORBIDDEN",
  authUsers: Object.freeze([]),
  authMechanisms: Object.freeze(["PLAIN", "LOGIN", "CRAM-MD5"]),
  allowInsecureAuth: false,
  // On here, unlike in the library: a sink should take whatever a client under test may send.
  chunking: true,
  binaryMime: true,
  dsn: true,
  requireTls: true,
  lmtp: false,
  xclientTrusted: Object.freeze([]),
  socketPaths: Object.freeze([]),
  envelopeDir: undefined,
});

/** What the command line asks for. */
export type CliCommand =
  | { action: "run"; config: DevServerConfig }
  | { action: "help" }
  | { action: "version" };

/** `--workers N`: at least one (no flag, not `0`, means one process without a supervisor). */
function workerCount(value: string): number {
  const count = integer("--workers", value, 0);
  if (count < 1) throw new CliError("--workers must be at least 1");
  return count;
}

/** `--log-format text|json`, any case; the default if the flag was not given. */
function logFormat(value: string | undefined): LogFormat {
  if (value === undefined) return DEFAULT_CONFIG.logFormat;
  const format = LOG_FORMATS.find((name) => name === value.toLowerCase());
  if (format === undefined) throw new CliError(`--log-format must be one of ${LOG_FORMATS.join(", ")}, got "${value}"`);
  return format;
}

/**
 * Parses the command-line arguments (without the program name), checking
 * every value the way the server will; throws {@link CliError} if any is bad.
 *
 * @example
 * ```ts
 * parseCliArgs(["--ports", "0", "--maildir", "/tmp/mail", "--quiet"]);
 * // { action: "run", config: { hosts: "127.0.0.1", ports: "0", maildir: "/tmp/mail", ..., quiet: true } }
 * ```
 */
export function parseCliArgs(argv: readonly string[]): CliCommand {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        hosts: { type: "string" },
        ports: { type: "string" },
        maildir: { type: "string" },
        "max-size": { type: "string" },
        "max-recipients": { type: "string" },
        "crlf-mode": { type: "string" },
        quiet: { type: "boolean", short: "q" },
        "log-format": { type: "string" },
        workers: { type: "string" },
        "max-connections": { type: "string" },
        "max-processings": { type: "string" },
        "max-connections-per-ip": { type: "string" },
        "io-greeting-timeout": { type: "string" },
        "io-cmd-timeout": { type: "string" },
        "io-data-timeout": { type: "string" },
        "hook-timeout": { type: "string" },
        "greeting-delay": { type: "string" },
        proxy: { type: "boolean" },
        "proxy-trusted": { type: "string", multiple: true },
        "tls-mode": { type: "string" },
        "tls-port": { type: "string", multiple: true },
        "tls-cert": { type: "string" },
        "tls-key": { type: "string" },
        "auth-mode": { type: "string" },
        "auth-user": { type: "string", multiple: true },
        "auth-mechanisms": { type: "string" },
        "allow-insecure-auth": { type: "boolean" },
        "envelope-dir": { type: "string" },
        lmtp: { type: "boolean" },
        socket: { type: "string", multiple: true },
        // Spelt out: parseArgs's own --no- negation needs Node 22.4, and these default to on.
        "no-chunking": { type: "boolean" },
        "no-binarymime": { type: "boolean" },
        "no-dsn": { type: "boolean" },
        "no-requiretls": { type: "boolean" },
        "xclient-trusted": { type: "string", multiple: true },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
      },
    }));
  } catch (err) {
    throw new CliError(err instanceof Error ? err.message : String(err));
  }
  if (values.help) return { action: "help" };
  if (values.version) return { action: "version" };
  const maxConnections = values["max-connections"] === undefined
    ? DEFAULT_CONFIG.maxConnections
    : integer("--max-connections", values["max-connections"], 0);
  const config: DevServerConfig = {
    hosts: values.hosts ?? DEFAULT_CONFIG.hosts,
    ports: values.ports ?? DEFAULT_CONFIG.ports,
    maildir: values.maildir ?? DEFAULT_CONFIG.maildir,
    maxSize: integer("--max-size", values["max-size"], DEFAULT_CONFIG.maxSize),
    maxRecipients: integer("--max-recipients", values["max-recipients"], DEFAULT_CONFIG.maxRecipients),
    crlfMode: oneOf("--crlf-mode", values["crlf-mode"], CRLF_MODES, DEFAULT_CONFIG.crlfMode),
    quiet: values.quiet ?? false,
    logFormat: logFormat(values["log-format"]),
    workers: values.workers === undefined ? DEFAULT_CONFIG.workers : workerCount(values.workers),
    maxConnections,
    // A lower --max-connections caps the default: it must not be below --max-processings.
    maxProcessings: integer(
      "--max-processings",
      values["max-processings"],
      Math.min(DEFAULT_CONFIG.maxProcessings, maxConnections ?? Infinity),
    ),
    maxConnectionsPerIp: integerOrOff(
      "--max-connections-per-ip",
      values["max-connections-per-ip"],
      DEFAULT_CONFIG.maxConnectionsPerIp,
    ),
    ioGreetingTimeout: secondsOrOff(
      "--io-greeting-timeout",
      values["io-greeting-timeout"],
      DEFAULT_CONFIG.ioGreetingTimeout,
    ),
    ioCmdTimeout: secondsOrOff("--io-cmd-timeout", values["io-cmd-timeout"], DEFAULT_CONFIG.ioCmdTimeout),
    ioDataTimeout: secondsOrOff("--io-data-timeout", values["io-data-timeout"], DEFAULT_CONFIG.ioDataTimeout),
    hookTimeout: secondsOrOff("--hook-timeout", values["hook-timeout"], DEFAULT_CONFIG.hookTimeout),
    greetingDelay: values["greeting-delay"] === undefined
      ? DEFAULT_CONFIG.greetingDelay
      : seconds("--greeting-delay", values["greeting-delay"], { zero: true })!,
    proxy: values.proxy ?? false,
    proxyTrusted: values["proxy-trusted"] === undefined
      ? DEFAULT_CONFIG.proxyTrusted
      : values["proxy-trusted"].flatMap((value) => cidrEntries(value, "--proxy-trusted")),
    tlsMode: oneOf("--tls-mode", values["tls-mode"], TLS_MODES, DEFAULT_CONFIG.tlsMode),
    tlsPorts: values["tls-port"] ?? [],
    tlsCert: values["tls-cert"],
    tlsKey: values["tls-key"],
    authMode: oneOf("--auth-mode", values["auth-mode"], AUTH_MODES, DEFAULT_CONFIG.authMode),
    authUsers: (values["auth-user"] ?? []).map(authUser),
    authMechanisms: values["auth-mechanisms"] === undefined
      ? DEFAULT_CONFIG.authMechanisms
      : authMechanismList(values["auth-mechanisms"]),
    allowInsecureAuth: values["allow-insecure-auth"] ?? false,
    chunking: !values["no-chunking"],
    // BINARYMIME bodies can only come in BDAT chunks (RFC 3030): no CHUNKING, no BINARYMIME.
    binaryMime: !values["no-binarymime"] && !values["no-chunking"],
    dsn: !values["no-dsn"],
    requireTls: !values["no-requiretls"],
    lmtp: values.lmtp ?? false,
    xclientTrusted: (values["xclient-trusted"] ?? []).flatMap((value) => xclientEntries(value)),
    socketPaths: values.socket ?? [],
    envelopeDir: values["envelope-dir"],
  };
  // Flags that would do nothing are mistakes: say so rather than ignore them.
  const tlsOn = config.tlsMode !== "TLS_FORBIDDEN" || config.tlsPorts.length > 0;
  if (values["tls-cert"] !== undefined && !tlsOn) {
    throw new CliError(
      "--tls-cert is unused while TLS is off: add --tls-mode TLS_OPTIONAL (or TLS_REQUIRED) or --tls-port",
    );
  }
  if (values["proxy-trusted"] !== undefined && !config.proxy) {
    throw new CliError("--proxy-trusted is unused without --proxy (it does not turn the PROXY protocol on)");
  }
  if (config.xclientTrusted.includes("unix") && config.socketPaths.length === 0) {
    throw new CliError("--xclient-trusted unix is unused without --socket (it trusts clients on a Unix socket)");
  }
  if (config.authMode === "AUTH_FORBIDDEN") {
    for (const flag of ["auth-user", "auth-mechanisms", "allow-insecure-auth"] as const) {
      if (values[flag] !== undefined) {
        throw new CliError(`--${flag} is unused while AUTH is off: add --auth-mode AUTH_OPTIONAL or AUTH_REQUIRED`);
      }
    }
  }
  checkConfig(config);
  return { action: "run", config };
}
