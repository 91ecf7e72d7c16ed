#!/usr/bin/env node
/**
 * `midi-smtp-server`: an SMTP sink for development and tests. It accepts
 * every message, stores it in a Maildir and prints one line per message.
 *
 * ```sh
 * deno run -A src/cli.ts --ports 2525 --maildir ./mail
 * npx midi-smtp-server --ports 2525 --maildir ./mail
 * npx midi-smtp-server --tls-mode TLS_REQUIRED --auth-mode AUTH_REQUIRED --auth-user alice:s3cret
 * ```
 *
 * The logic is exported ({@link parseCliArgs}, {@link runDevServer},
 * {@link stopDevServer}, {@link runCli}) so tests and scripts can run the dev
 * server in-process; the command line only runs when this module is the
 * program's entry point.
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { spawn } from "node:child_process";
import { MidiSmtpServer, type MidiSmtpServerOptions } from "./server.ts";
import { Smtpd451Exception, Smtpd535Exception } from "./exceptions.ts";
import { type AuthMode, type CrlfMode, parsePorts, type TlsMode } from "./options.ts";
import { CidrList } from "./cidr.ts";
import type { SaslCredentials } from "./auth/types.ts";
import type { Transport } from "./transport/types.ts";
import { detectRuntime, loadTransport } from "./transport/detect.ts";
import { Maildir, sanitizeHeaderValue, traceHeaders } from "./maildir.ts";

/** The version printed by `--version` (kept in step with deno.json). */
export const VERSION = "0.1.0";

/** The `--help` text. */
export const USAGE = `Usage: midi-smtp-server [options]

An SMTP sink for development and tests: accepts every message, stores it in
a Maildir and prints one line per message to stdout.

Options:
  --hosts LIST          addresses to listen on, e.g. "127.0.0.1, ::1" or "*" (default 127.0.0.1)
  --ports LIST          ports, e.g. "2525" or "2525:2526"; 0 picks a free port (default 2525)
  --maildir DIR         Maildir to store messages in, created if missing (default ./mail)
  --max-size BYTES      largest message accepted, 0 for no limit (default 26214400)
  --max-recipients N    recipients per message (default 100)
  --crlf-mode MODE      CRLF_ENSURE (default), CRLF_LEAVE or CRLF_STRICT
  -q, --quiet           do not print a line per message

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

PROXY protocol:
  --proxy               every connection must start with a PROXY header (v1 or v2,
                        HAProxy), and only from --proxy-trusted addresses
  --proxy-trusted CIDR  who may send it, repeatable (default 127.0.0.0/8 and ::1/128);
                        needs --proxy

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

A message is acknowledged (250) only once its file is durably in DIR/new/;
if it cannot be stored the client gets 451 and may retry. SIGINT or SIGTERM
stops the server gracefully: no new connections, and messages in progress
are received and stored first (for up to 30 s); a second signal exits at
once. With TLS on, the SHA-256 fingerprint of the certificate (given or
self-signed) is printed once listening. Passwords are never printed.

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
});

/** What the command line asks for. */
export type CliCommand =
  | { action: "run"; config: DevServerConfig }
  | { action: "help" }
  | { action: "version" };

/** A bad command line; the message says what is wrong. */
export class CliError extends Error {
  /** Makes the error; `message` says what is wrong with the arguments. */
  constructor(message: string) {
    super(message);
    this.name = "CliError";
  }
}

const CRLF_MODES: readonly CrlfMode[] = ["CRLF_ENSURE", "CRLF_LEAVE", "CRLF_STRICT"];
const TLS_MODES: readonly TlsMode[] = ["TLS_FORBIDDEN", "TLS_OPTIONAL", "TLS_REQUIRED"];
const AUTH_MODES: readonly AuthMode[] = ["AUTH_FORBIDDEN", "AUTH_OPTIONAL", "AUTH_REQUIRED"];
/** The mechanisms the dev server can check: it has the plain passwords, so CRAM-MD5 works too. */
const AUTH_MECHANISMS: readonly string[] = ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"];

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
      : values["proxy-trusted"].flatMap(cidrEntries),
    tlsMode: oneOf("--tls-mode", values["tls-mode"], TLS_MODES, DEFAULT_CONFIG.tlsMode),
    tlsPorts: values["tls-port"] ?? [],
    tlsCert: values["tls-cert"],
    tlsKey: values["tls-key"],
    authMode: oneOf("--auth-mode", values["auth-mode"], AUTH_MODES, DEFAULT_CONFIG.authMode),
    authUsers: (values["auth-user"] ?? []).map(authUser),
    authMechanisms: values["auth-mechanisms"] === undefined
      ? DEFAULT_CONFIG.authMechanisms
      : authMechanisms(values["auth-mechanisms"]),
    allowInsecureAuth: values["allow-insecure-auth"] ?? false,
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

/**
 * Checks a whole configuration (also one made in code for {@link runDevServer}):
 * what only the dev server knows first, then the server's own checks.
 */
function checkConfig(config: DevServerConfig): void {
  if (config.maildir === "") throw new CliError("--maildir must not be empty");
  if (config.maxRecipients < 1) throw new CliError("--max-recipients must be at least 1");
  checkLimits(config);

  const plainPorts = new Set(portList("--ports", config.ports));
  const tlsPorts = new Set<number>();
  for (const entry of config.tlsPorts) {
    for (const port of portList("--tls-port", entry)) {
      if (port === 0) continue;
      if (plainPorts.has(port)) throw new CliError(`port ${port} is given both in --ports and --tls-port`);
      if (tlsPorts.has(port)) throw new CliError(`--tls-port ${port} is given twice`);
      tlsPorts.add(port);
    }
  }
  if (config.tlsCert === "") throw new CliError("--tls-cert must not be empty");
  if (config.tlsKey === "") throw new CliError("--tls-key must not be empty");
  if (config.tlsKey !== undefined && config.tlsCert === undefined) {
    throw new CliError("--tls-key needs --tls-cert (the certificate that goes with the key)");
  }

  const seen = new Set<string>();
  for (const { user, password } of config.authUsers) {
    if (user === "") throw new CliError("--auth-user needs a user name before the colon");
    if (password === "") throw new CliError(`--auth-user ${user} needs a password after the colon`);
    if (seen.has(user)) throw new CliError(`--auth-user ${user} is given twice`);
    seen.add(user);
  }
  if (config.authMode !== "AUTH_FORBIDDEN" && config.authUsers.length === 0) {
    throw new CliError(`--auth-mode ${config.authMode} needs at least one --auth-user USER:PASSWORD`);
  }
  for (const name of config.authMechanisms) {
    if (!AUTH_MECHANISMS.includes(name.toUpperCase())) {
      throw new CliError(`--auth-mechanisms: unknown mechanism "${name}", use ${AUTH_MECHANISMS.join(", ")}`);
    }
  }

  try {
    // The server's own checks (host and port syntax, ranges, ports per host,
    // modes, mechanisms) are the single source of truth; constructing binds
    // nothing and reads no certificate.
    new MidiSmtpServer(serverOptions(config));
  } catch (err) {
    throw new CliError(err instanceof Error ? err.message : String(err));
  }
}

/** The connection limits and the PROXY sources, in the words of the flags (the server would name its options). */
function checkLimits(config: DevServerConfig): void {
  const { maxConnections, maxProcessings, maxConnectionsPerIp } = config;
  if (maxConnections !== null && maxConnections < 1) throw new CliError("--max-connections must be at least 1");
  if (maxProcessings < 1) throw new CliError("--max-processings must be at least 1");
  if (maxConnectionsPerIp !== null && maxConnectionsPerIp < 1) {
    throw new CliError("--max-connections-per-ip must be at least 1, or off");
  }
  if (maxConnections !== null && maxConnections < maxProcessings) {
    throw new CliError(
      `--max-connections (${maxConnections}) is lower than --max-processings (${maxProcessings}): ` +
        "it must be at least as large",
    );
  }
  if (config.proxyTrusted.length === 0) throw new CliError("--proxy-trusted needs at least one address or network");
  for (const entry of config.proxyTrusted) {
    try {
      new CidrList([entry]);
    } catch (err) {
      throw new CliError(`--proxy-trusted: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

/** Every port of a value in the `ports` syntax; a bad one is a CliError naming `flag`. */
function portList(flag: string, value: string): number[] {
  try {
    return parsePorts(value).flat();
  } catch (err) {
    throw new CliError(`${flag}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** `user:password`, split at the first colon. The value is never echoed: it holds a password. */
function authUser(value: string): DevServerUser {
  const colon = value.indexOf(":");
  if (colon < 0) throw new CliError("--auth-user needs USER:PASSWORD (a colon between user name and password)");
  return { user: value.slice(0, colon), password: value.slice(colon + 1) };
}

/** `"PLAIN,LOGIN"` or `"plain login"`: upper-cased, each at most once. */
function authMechanisms(value: string): string[] {
  const names = value.split(/[\s,]+/).filter((name) => name !== "").map((name) => name.toUpperCase());
  if (names.length === 0) throw new CliError("--auth-mechanisms needs at least one mechanism");
  const duplicate = names.find((name, i) => names.indexOf(name) !== i);
  if (duplicate !== undefined) throw new CliError(`--auth-mechanisms lists ${duplicate} twice`);
  return names;
}

/** A plain decimal integer: Number() would also take "", "1e3", "0x10" and " 7". */
function integer(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d{1,15}$/.test(value)) throw new CliError(`${flag} needs a whole number, got "${value}"`);
  return Number(value);
}

/** A whole number, or `off` for none (`null`). */
function integerOrOff(flag: string, value: string | undefined, fallback: number | null): number | null {
  if (value === undefined) return fallback;
  if (value.toLowerCase() === "off") return null;
  if (!/^\d{1,15}$/.test(value)) throw new CliError(`${flag} needs a whole number or off, got "${value}"`);
  return Number(value);
}

/**
 * Longest time accepted, in seconds: timers take at most 2^31-1 ms (about
 * 24.8 days), and a longer one would fire at once instead.
 */
const MAX_SECONDS = 2_147_483;

/** A number of seconds (decimals allowed), more than 0 unless `zero` is allowed; `off` gives `null` if allowed. */
function seconds(flag: string, value: string, allow: { zero?: boolean; off?: boolean } = {}): number | null {
  if (allow.off && value.toLowerCase() === "off") return null;
  if (!/^\d{1,9}(\.\d{1,6})?$/.test(value)) {
    throw new CliError(`${flag} needs a number of seconds${allow.off ? " or off" : ""}, got "${value}"`);
  }
  const number = Number(value);
  if (number === 0 && !allow.zero) {
    throw new CliError(`${flag} must be more than 0 seconds${allow.off ? " (off for no limit)" : ""}`);
  }
  if (number > MAX_SECONDS) throw new CliError(`${flag} must be at most ${MAX_SECONDS} seconds (about 24 days)`);
  return number;
}

/** A number of seconds, or `off` for none (`null`). */
function secondsOrOff(flag: string, value: string | undefined, fallback: number | null): number | null {
  return value === undefined ? fallback : seconds(flag, value, { off: true });
}

/** `"10.0.0.0/8, 192.0.2.1"`: one or more CIDR entries (checked in {@link checkConfig}). */
function cidrEntries(value: string): string[] {
  const entries = value.split(/[\s,]+/).filter((entry) => entry !== "");
  if (entries.length === 0) throw new CliError("--proxy-trusted needs an address or network, e.g. 10.0.0.0/8");
  return entries;
}

/** One of `choices`, case-insensitively. */
function oneOf<T extends string>(flag: string, value: string | undefined, choices: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  const choice = value.toUpperCase() as T;
  if (!choices.includes(choice)) throw new CliError(`${flag} must be one of ${choices.join(", ")}, got "${value}"`);
  return choice;
}

/** The server options of a dev server configuration (hooks and transport come in {@link runDevServer}). */
function serverOptions(config: DevServerConfig): MidiSmtpServerOptions {
  return {
    hosts: config.hosts,
    ports: config.ports,
    maxMessageSize: config.maxSize,
    maxRecipients: config.maxRecipients,
    crlfMode: config.crlfMode,
    maxConnections: config.maxConnections,
    maxProcessings: config.maxProcessings,
    maxConnectionsPerIp: config.maxConnectionsPerIp,
    ioGreetingTimeout: config.ioGreetingTimeout,
    ioCmdTimeout: config.ioCmdTimeout,
    ioDataTimeout: config.ioDataTimeout,
    hookTimeout: config.hookTimeout,
    greetingDelay: config.greetingDelay,
    proxyExtension: config.proxy,
    proxyTrustedSources: [...config.proxyTrusted],
    // Test suites send many messages at once, often pipelined and with 8-bit or UTF-8 content.
    pipeliningExtension: true,
    internationalizationExtensions: true,
    enhancedStatusCodesExtension: true,
    tlsMode: config.tlsMode,
    // One list in the ports syntax: "465, 4650:4651" binds all three on every host.
    tlsPorts: config.tlsPorts.length > 0 ? config.tlsPorts.join(",") : undefined,
    tlsCertPath: config.tlsCert,
    tlsKeyPath: config.tlsKey,
    authMode: config.authMode,
    authMechanisms: [...config.authMechanisms],
    allowInsecureAuth: config.allowInsecureAuth,
  };
}

/** Seconds the whole start-up (Maildir, transport, certificate, listening) may take by default. */
export const START_TIMEOUT_SECONDS = 30;
/** Seconds a graceful stop waits by default for the messages in progress to be received and stored. */
export const STOP_TIMEOUT_SECONDS = 30;
/** After a stop's wait: how long cut-off deliveries get to cancel (and remove their files). */
const CANCEL_GRACE_MS = 2000;

/** Where {@link runDevServer} writes, and what it may be given instead of its defaults. */
export interface DevServerIo {
  /** Receives the "listening on" line and one line per message (default `process.stdout`). */
  stdout?: { write(text: string): unknown };
  /** Receives the server's log lines, warnings and above (default `process.stderr`). */
  stderr?: { write(text: string): unknown };
  /** The socket layer (default: the runtime's own). */
  transport?: Transport;
  /** The Maildir to store into (default: `new Maildir(config.maildir)`); e.g. one that is slow, for tests. */
  maildir?: Maildir;
  /** Seconds the start-up may take before it is given up (default {@link START_TIMEOUT_SECONDS}). */
  startTimeout?: number;
}

/** The deliveries each running dev server has in progress, for {@link stopDevServer}. */
const deliveries = new WeakMap<MidiSmtpServer, Set<Promise<unknown>>>();

/**
 * Starts the dev server: creates the Maildir, listens, and stores every
 * accepted message before acknowledging it. Resolves with the running
 * server once it listens; stop it with {@link stopDevServer} (or
 * `server.stop()`). A bad `config` rejects with a {@link CliError}, as
 * {@link parseCliArgs} would; a start-up that fails, or does not finish
 * within `io.startTimeout`, rejects with an error saying why.
 *
 * @example
 * ```ts
 * const server = await runDevServer({ ...DEFAULT_CONFIG, ports: "0", maildir: "/tmp/mail" });
 * console.log(server.addresses); // ["127.0.0.1:40123"]
 * await stopDevServer(server);
 * ```
 */
export async function runDevServer(config: DevServerConfig, io: DevServerIo = {}): Promise<MidiSmtpServer> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  checkConfig(config);
  const startup = new Deadline(io.startTimeout ?? START_TIMEOUT_SECONDS, "start-up");
  const maildir = io.maildir ?? new Maildir(config.maildir);
  await startup.race(`creating the Maildir ${config.maildir}`, maildir.init());
  const transport = io.transport ?? await startup.race("loading the transport", loadTransport());
  const server = devServer(config, { stdout, stderr, transport, maildir });
  await startup.race(
    `starting to listen on ${config.hosts} (host names, TLS certificate, ports)`,
    server.start(),
    // Given up on, but up after all: nobody will use it.
    () => void server.stop({ gracefully: false, waitSecondsBeforeClose: 0 }),
  );
  const where = server.addresses.join(", ");
  write(
    stdout,
    `midi-smtp-server listening on ${where} (${transport.name} transport), storing mail in ${config.maildir}\n`,
  );
  for (const line of describeServer(config, server)) write(stdout, `${line}\n`);
  for (const warning of authWarnings(config)) write(stderr, `midi-smtp-server: warning: ${warning}\n`);
  return server;
}

/**
 * Stops a server made by {@link runDevServer} gracefully: no new
 * connections; sessions finish the message in progress, its delivery
 * included, and get `421`. Waits up to `seconds` for that, then cuts off
 * what is left (a cut-off delivery is cancelled and removes its file).
 * Resolves with `true` if every delivery in progress finished in time.
 */
export async function stopDevServer(server: MidiSmtpServer, seconds = STOP_TIMEOUT_SECONDS): Promise<boolean> {
  const until = Date.now() + seconds * 1000;
  await server.stop({ gracefully: true, waitSecondsBeforeClose: seconds });
  const pending = [...deliveries.get(server) ?? []];
  return await settlesWithin(Promise.allSettled(pending), Math.max(until - Date.now(), CANCEL_GRACE_MS));
}

/** How many deliveries a dev server has in progress. */
function deliveriesInProgress(server: MidiSmtpServer): number {
  return deliveries.get(server)?.size ?? 0;
}

/** "1 delivery", "2 deliveries". */
function deliveryCount(count: number): string {
  return `${count} ${count === 1 ? "delivery" : "deliveries"}`;
}

/** Writes to stdout or stderr; a closed one (e.g. `| head`) must not fail deliveries. */
function write(stream: { write(text: string): unknown }, text: string): void {
  try {
    stream.write(text);
  } catch {
    // nobody reads it any more
  }
}

/** What {@link devServer} is wired to. */
interface DevServerParts {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  transport: Transport;
  maildir: Maildir;
}

/** The server with the dev server's hooks: log lines, AUTH against the configured users, Maildir delivery. */
function devServer(config: DevServerConfig, { stdout, stderr, transport, maildir }: DevServerParts): MidiSmtpServer {
  const passwords = new Map(config.authUsers.map(({ user, password }) => [user, password]));
  const inProgress = new Set<Promise<unknown>>();
  const server = new MidiSmtpServer({
    ...serverOptions(config),
    transport,
    onLoggingEvent(_ctx, severity, msg) {
      write(stderr, `${timestamp()} [${severity.toUpperCase()}] ${msg}\n`);
    },
    onAuthEvent(ctx, authorizationId, authenticationId, _authentication, credentials) {
      if (checkCredentials(passwords, authorizationId, authenticationId, credentials)) return;
      // The user name is client-given (sanitised); the password is never printed.
      const user = sanitizeHeaderValue(authenticationId, { utf8: true });
      write(
        stderr,
        `${timestamp()} [WARN] AUTH ${credentials.mechanism} failed for "${user}" from ${ctx.server.remoteIp}\n`,
      );
      throw new Smtpd535Exception();
    },
    async onMessageDataEvent(ctx) {
      const { server: conn, envelope, message } = ctx;
      const id = randomBytes(6).toString("hex").toUpperCase();
      const headers = traceHeaders({
        from: envelope.from,
        to: envelope.to,
        helo: conn.helo,
        heloMode: conn.heloMode,
        remoteHost: conn.remoteHost,
        remoteIp: conn.remoteIp,
        localHost: conn.localHost,
        id,
        date: message.delivered ?? new Date(),
        encrypted: conn.encrypted !== null,
        authenticated: conn.authenticated !== null,
        utf8: envelope.encodingUtf8 === "utf8",
        crlf: message.crlf,
      });
      // ctx.signal aborts if the client leaves or the hook times out: nobody
      // would see the 250, so the delivery is cancelled rather than kept.
      const delivery = Promise.resolve().then(() => maildir.deliver(message.data, headers, { signal: ctx.signal }));
      inProgress.add(delivery);
      let path: string;
      try {
        // Awaited on purpose: the 250 goes out only once the file is durably in new/.
        path = await delivery;
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        write(stderr, `${timestamp()} [ERROR] message ${id} not stored: ${reason}\n`);
        throw new Smtpd451Exception(`message ${id} not stored: ${reason}`);
      } finally {
        inProgress.delete(delivery);
      }
      if (!config.quiet) {
        // Addresses are client-given: sanitised so they cannot drive the terminal.
        const clean = (address: string) => sanitizeHeaderValue(address, { utf8: true });
        const to = envelope.to.map(clean).join(",");
        write(stdout, `${timestamp()} ${clean(envelope.from)} -> ${to} ${message.bytesize} bytes ${path}\n`);
      }
    },
  });
  deliveries.set(server, inProgress);
  return server;
}

/** A step did not finish in time: its work may still be running (or stuck). */
class DeadlineError extends Error {
  override name = "DeadlineError";
}

/** A deadline for several steps in a row; a step past it rejects with what was still going on. */
class Deadline {
  readonly #until: number;
  readonly #seconds: number;
  readonly #what: string;

  /** Starts the clock: `seconds` from now for everything `what` (e.g. "start-up") does. */
  constructor(seconds: number, what: string) {
    this.#seconds = seconds;
    this.#until = Date.now() + seconds * 1000;
    this.#what = what;
  }

  /**
   * `promise`, or a rejection naming `step` if the deadline passes first;
   * then `late` runs should the promise still resolve.
   */
  async race<T>(step: string, promise: Promise<T>, late?: (value: T) => void): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let timedOut = false;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        reject(new DeadlineError(`${this.#what} did not finish within ${this.#seconds} s: still ${step}`));
      }, Math.max(0, this.#until - Date.now()));
    });
    promise.then((value) => timedOut && late?.(value), () => {});
    try {
      return await Promise.race([promise, expired]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Whether `promise` settles within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), ms));
  try {
    return await Promise.race([promise.then(() => true, () => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Whether the credentials are those of a known user. Every path does the same
 * work (an unknown user is checked against a dummy secret), so the time taken
 * does not tell which user names exist.
 */
function checkCredentials(
  passwords: ReadonlyMap<string, string>,
  authorizationId: string,
  authenticationId: string,
  credentials: SaslCredentials,
): boolean {
  const stored = passwords.get(authenticationId);
  const secret = stored ?? "\u0000no such user";
  // CRAM-MD5 sends a keyed digest, checked with the plain password; PLAIN and
  // LOGIN send the password, XOAUTH2 a bearer token that must equal it.
  const matches = credentials.verify ? credentials.verify(secret) : sameSecret(credentials.authentication, secret);
  // Acting as someone else (a PLAIN authorization id) is not something a dev server grants.
  const self = authorizationId === "" || authorizationId === authenticationId;
  return stored !== undefined && matches && self;
}

/** Constant-time comparison; hashing first makes the lengths equal, as timingSafeEqual needs. */
function sameSecret(given: string, expected: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text, "utf8").digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** The lines printed after "listening on" about PROXY, TLS and AUTH (no passwords). */
function describeServer(config: DevServerConfig, server: MidiSmtpServer): string[] {
  const lines: string[] = [];
  if (config.proxy) lines.push(`PROXY: required from ${server.options.proxyTrustedSources.entries.join(", ")}`);
  const fingerprint = server.tlsFingerprint;
  if (fingerprint !== undefined) {
    const starttls = config.tlsMode === "TLS_REQUIRED"
      ? "STARTTLS required"
      : config.tlsMode === "TLS_OPTIONAL"
      ? "STARTTLS offered"
      : "no STARTTLS";
    const implicit = implicitTlsAddresses(server);
    const where = implicit.length > 0
      ? `; implicit TLS on ${implicit.join(", ")}`
      : config.tlsPorts.length > 0
      ? `; implicit TLS on port ${config.tlsPorts.join(", ")}`
      : "";
    lines.push(`TLS: ${starttls}${where}`);
    const certificate = config.tlsCert === undefined ? "self-signed certificate" : `certificate ${config.tlsCert}`;
    lines.push(`TLS: ${certificate}, SHA-256 fingerprint ${fingerprint}`);
  }
  if (config.authMode !== "AUTH_FORBIDDEN") {
    const mode = config.authMode === "AUTH_REQUIRED" ? "required" : "optional";
    // TLS_REQUIRED refuses AUTH before STARTTLS even with allowInsecureAuth.
    const over = config.allowInsecureAuth && config.tlsMode !== "TLS_REQUIRED"
      ? "with or without TLS"
      : "over TLS only";
    const users = config.authUsers.map(({ user }) => user).join(", ");
    lines.push(`AUTH: ${mode}, ${over}; mechanisms ${config.authMechanisms.join(" ")}; users ${users}`);
  }
  return lines;
}

/**
 * Which of `server.addresses` are implicit TLS listeners. By port number when
 * every TLS port was given; with a free port (0) by position: the server binds,
 * for each address, the plain ports and then the TLS ports, and lists them so.
 */
function implicitTlsAddresses(server: MidiSmtpServer): string[] {
  const { ports, tlsPorts } = server.options;
  const addresses = server.addresses;
  const portOf = (address: string) => Number(address.slice(address.lastIndexOf(":") + 1));
  if (tlsPorts.length === 0) return [];
  if (!tlsPorts.includes(0)) return addresses.filter((address) => tlsPorts.includes(portOf(address)));
  const perHost = new Set(ports.map((list) => list.length));
  const chunk = ports[0].length + tlsPorts.length;
  if (perHost.size !== 1 || addresses.length % chunk !== 0) return []; // cannot tell
  return addresses.filter((_, i) => i % chunk >= ports[0].length);
}

/** Why AUTH may not be offered where the user expects it. */
function authWarnings(config: DevServerConfig): string[] {
  if (config.authMode === "AUTH_FORBIDDEN" || config.allowInsecureAuth || config.tlsMode !== "TLS_FORBIDDEN") {
    return [];
  }
  const fix = "add --tls-mode TLS_OPTIONAL (or TLS_REQUIRED) for STARTTLS, " +
    "or --allow-insecure-auth to offer AUTH without TLS";
  const required = config.authMode === "AUTH_REQUIRED";
  if (config.tlsPorts.length === 0) {
    return [
      `AUTH will not be offered: it is offered only over TLS, and TLS is off (--tls-mode TLS_FORBIDDEN)` +
      (required ? ", so with AUTH_REQUIRED no client can send mail" : "") + `; ${fix}`,
    ];
  }
  return [
    `AUTH will be offered only on the implicit TLS ports (--tls-port), not on --ports, which have no STARTTLS` +
    (required ? ", so with AUTH_REQUIRED clients there cannot send mail" : "") + `; ${fix}`,
  ];
}

/** `2026-11-28T10:00:00Z`: ISO 8601 in UTC, whole seconds. */
function timestamp(date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

// ---- command line ----------------------------------------------------------------------------

/** The program's arguments: Deno keeps them in Deno.args; Bun and Node after the script path. */
function programArgs(): string[] {
  const deno = (globalThis as { Deno?: { args?: readonly string[] } }).Deno;
  return Array.isArray(deno?.args) ? [...deno.args] : process.argv.slice(2);
}

/** Whether this module is the program's entry point rather than imported. */
function isEntryPoint(): boolean {
  const main = (import.meta as { main?: unknown }).main;
  if (typeof main === "boolean") return main; // Deno, Bun (and Node >= 24.2)
  // Older Node: compare real paths, so an npm bin symlink counts as us.
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

/**
 * Runs the command line `argv` (without the program name) and ends the
 * process: exits 2 on a bad option, 1 if the server cannot start within
 * {@link START_TIMEOUT_SECONDS}; once running, SIGINT or SIGTERM stops it
 * with {@link stopDevServer} and exits 0 (1 if a delivery was cut off). The
 * program's entry point; tests run it in a child process with their own `io`.
 */
export async function runCli(argv: readonly string[], io: DevServerIo = {}): Promise<void> {
  let command: CliCommand;
  try {
    command = parseCliArgs(argv);
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    process.stderr.write(`midi-smtp-server: ${err.message}\nTry 'midi-smtp-server --help' for more information.\n`);
    exitProcess(2);
  }
  if (command.action === "help") return void process.stdout.write(USAGE);
  if (command.action === "version") return void process.stdout.write(`midi-smtp-server ${VERSION}\n`);

  // Signal handlers go in before the server starts: whoever reads the
  // "listening on" line may signal at once, and must not kill us unhandled.
  let server: MidiSmtpServer | undefined;
  let stopping = false;
  const stop = (signal: Signal) => {
    if (!server) return endBySignal(signal, "while starting");
    // A second signal means the user will not wait for deliveries to finish.
    if (stopping) {
      process.stderr.write(`midi-smtp-server: ${signal} received again, exiting without waiting\n`);
      exitDespiteStuckIo(1);
    }
    stopping = true;
    const busy = deliveriesInProgress(server);
    const waiting = busy > 0 ? `, waiting up to ${STOP_TIMEOUT_SECONDS} s for ${deliveryCount(busy)} in progress` : "";
    process.stderr.write(`midi-smtp-server: ${signal} received, stopping${waiting}\n`);
    stopAndExit(server);
  };
  for (const signal of SIGNALS) {
    try {
      process.on(signal, () => stop(signal));
    } catch {
      // Deno on Windows cannot listen for SIGTERM; SIGINT still works.
    }
  }

  try {
    server = await runDevServer(command.config, io);
  } catch (err) {
    process.stderr.write(`midi-smtp-server: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    if (err instanceof DeadlineError) exitDespiteStuckIo(1);
    exitProcess(1);
  }
}

/** The signals that stop the dev server. */
const SIGNALS = ["SIGINT", "SIGTERM"] as const;
type Signal = typeof SIGNALS[number];
/** Exit status by the shell's convention for death by a signal (128 + its number). */
const SIGNAL_STATUS: Record<Signal, number> = { SIGINT: 130, SIGTERM: 143 };

/**
 * Ends the process as `signal` would have, had we not handled it: nothing is
 * running yet that could need a clean stop, and start-up may be stuck where
 * process.exit() cannot end the process (below).
 */
function endBySignal(signal: Signal, when: string): never {
  process.stderr.write(`midi-smtp-server: ${signal} received ${when}, exiting\n`);
  for (const name of SIGNALS) process.removeAllListeners(name);
  process.kill(process.pid, signal);
  // Where the runtime keeps its own handler, the signal may not end us: exit as if it had.
  process.exit(SIGNAL_STATUS[signal]);
}

/**
 * Exits with `status`. Our signal handlers go first: on Node, process.exit()
 * joins libuv's worker threads, so a file operation stuck in the kernel (a
 * dead network mount, a FIFO) can hold it up; then the next SIGINT or
 * SIGTERM, with its default action back, ends the process at once.
 */
function exitProcess(status: number): never {
  for (const name of SIGNALS) process.removeAllListeners(name);
  process.exit(status);
}

/** How long the watchdog of {@link exitDespiteStuckIo} gives process.exit(). */
const EXIT_WATCHDOG_MS = 3000;

/**
 * Exits with `status` although work may still be stuck in the kernel (a file
 * on a dead network mount, a FIFO nobody writes to). Node's process.exit()
 * first joins libuv's worker threads, so it would wait for that work forever:
 * there a watchdog child process ends us with SIGKILL if we are still alive
 * after {@link EXIT_WATCHDOG_MS}. It goes away by itself once we are gone.
 */
function exitDespiteStuckIo(status: number): never {
  if (detectRuntime() === "node") startExitWatchdog();
  exitProcess(status);
}

/** The watchdog of {@link exitDespiteStuckIo}: its stdin ends when we exit, which stops it. */
function startExitWatchdog(): void {
  const script = `const t = setTimeout(() => { try { process.kill(${process.pid}, "SIGKILL"); } catch {} }, ` +
    `${EXIT_WATCHDOG_MS}); process.stdin.on("end", () => clearTimeout(t)).on("error", () => {}).resume();`;
  try {
    spawn(process.execPath, ["-e", script], { stdio: ["pipe", "ignore", "ignore"] }).on("error", () => {});
  } catch {
    // Without a watchdog the exit may wait; SIGINT or SIGTERM still ends it (see exitProcess).
  }
}

/** Stops gracefully (messages in progress are stored first), then exits 0, or 1 if a delivery was cut off. */
function stopAndExit(server: MidiSmtpServer): void {
  // stopDevServer() is bounded; this is in case a transport never settles a close.
  const hardStop = setTimeout(() => {
    process.stderr.write("midi-smtp-server: the stop did not finish in time, exiting\n");
    exitDespiteStuckIo(1);
  }, (STOP_TIMEOUT_SECONDS + 15) * 1000);
  stopDevServer(server).then(
    (finished) => {
      clearTimeout(hardStop);
      if (finished) exitProcess(0);
      const left = deliveryCount(deliveriesInProgress(server));
      process.stderr.write(`midi-smtp-server: stopped with ${left} unfinished after ${STOP_TIMEOUT_SECONDS} s\n`);
      // What did not finish may be stuck in the kernel.
      exitDespiteStuckIo(1);
    },
    (err) => {
      process.stderr.write(`midi-smtp-server: stop failed: ${err instanceof Error ? err.message : String(err)}\n`);
      exitProcess(1);
    },
  );
}

if (isEntryPoint()) await runCli(programArgs());
