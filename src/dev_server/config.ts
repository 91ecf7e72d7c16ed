/**
 * What a dev server configuration becomes for the server
 * ({@link serverOptions}), and the check of a whole configuration
 * ({@link checkConfig}): first what only the dev server knows, in the words of
 * its flags, then the server's own checks, so the two can never disagree.
 *
 * @module
 */
import { resolve } from "node:path";
import { MidiSmtpServer, type MidiSmtpServerOptions } from "../server.ts";
import { CidrList } from "../cidr.ts";
import { DEFAULT_MECHANISMS } from "../auth/mod.ts";
import { CliError } from "./cli_error.ts";
import { portList } from "./flag_values.ts";
import type { DevServerConfig } from "./args.ts";

/**
 * The mechanisms the dev server can check: all the built-in ones, since it
 * has the plain passwords (CRAM-MD5 needs them).
 */
const AUTH_MECHANISM_NAMES: readonly string[] = DEFAULT_MECHANISMS.map((mechanism) => mechanism.name);

/**
 * Checks a whole configuration (one from `parseCliArgs` or one made in
 * code for `runDevServer`); throws a {@link CliError} naming the flag.
 *
 * @example
 * ```ts
 * import { DEFAULT_CONFIG } from "@midi/smtp-server/cli";
 *
 * checkConfig({ ...DEFAULT_CONFIG, ports: "2525", tlsPorts: ["2525"] }); // throws CliError: port 2525 is given both in --ports and --tls-port
 * ```
 */
export function checkConfig(config: DevServerConfig): void {
  if (config.maildir === "") throw new CliError("--maildir must not be empty");
  if (config.maxRecipients < 1) throw new CliError("--max-recipients must be at least 1");
  checkLimits(config);
  checkTls(config);
  checkAuth(config);
  checkProtocol(config);
  checkWorkers(config);
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

/** Ports given twice, and certificate files that are empty or a key without its certificate. */
function checkTls(config: DevServerConfig): void {
  const plainPorts = new Set(portList("--ports", config.ports));
  const tlsPorts = new Set<number>();
  for (const entry of config.tlsPorts) {
    for (const port of portList("--tls-port", entry)) {
      if (port === 0) continue; // each 0 is a free port of its own
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
}

/** The accounts (named, with a password, each once) and the mechanisms the dev server can check. */
function checkAuth(config: DevServerConfig): void {
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
    if (!AUTH_MECHANISM_NAMES.includes(name.toUpperCase())) {
      throw new CliError(`--auth-mechanisms: unknown mechanism "${name}", use ${AUTH_MECHANISM_NAMES.join(", ")}`);
    }
  }
}

/** The extensions, LMTP, XCLIENT sources, Unix sockets and the envelope folder. */
function checkProtocol(config: DevServerConfig): void {
  if (config.binaryMime && !config.chunking) {
    throw new CliError("BINARYMIME needs CHUNKING: its bodies come in BDAT chunks (--no-chunking turns both off)");
  }
  for (const entry of config.xclientTrusted) {
    if (entry === "unix") continue;
    try {
      new CidrList([entry]);
    } catch (err) {
      throw new CliError(`--xclient-trusted: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const seen = new Set<string>();
  for (const path of config.socketPaths) {
    if (path === "") throw new CliError("--socket must not be empty");
    if (seen.has(resolve(path))) throw new CliError(`--socket ${path} is given twice`);
    seen.add(resolve(path));
  }
  const { envelopeDir } = config;
  if (envelopeDir === "") throw new CliError("--envelope-dir must not be empty");
  // A mail reader would take the JSON files there for messages.
  if (
    envelopeDir !== undefined &&
    ["new", "cur", "tmp"].some((sub) => resolve(config.maildir, sub) === resolve(envelopeDir))
  ) {
    throw new CliError(
      "--envelope-dir must not be the Maildir's new/, cur/ or tmp/ (readers would take its files for mail)",
    );
  }
}

/**
 * What worker processes cannot share: a free port (`0` gives every worker a
 * port of its own) and a Unix socket (one process binds it).
 */
function checkWorkers(config: DevServerConfig): void {
  if (!Number.isInteger(config.workers) || config.workers < 0) {
    throw new CliError("--workers must be a whole number, at least 1 (0: one process, no supervisor)");
  }
  if (config.workers === 0) return;
  const ports = [...portList("--ports", config.ports), ...config.tlsPorts.flatMap((p) => portList("--tls-port", p))];
  if (ports.includes(0)) {
    throw new CliError("--workers needs fixed ports: with port 0 every worker would get a port of its own");
  }
  if (config.socketPaths.length > 0) {
    throw new CliError("--workers cannot share a Unix socket (--socket): it is bound by one process");
  }
}

/**
 * The server options of a dev server configuration; the hooks and the
 * transport are added by `runDevServer`.
 *
 * @example
 * ```ts
 * import { DEFAULT_CONFIG } from "@midi/smtp-server/cli";
 *
 * serverOptions({ ...DEFAULT_CONFIG, tlsPorts: ["465", "4650:4651"] }).tlsPorts; // => "465,4650:4651"
 * ```
 */
export function serverOptions(config: DevServerConfig): MidiSmtpServerOptions {
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
    chunkingExtension: config.chunking,
    binaryMimeExtension: config.binaryMime,
    dsnExtension: config.dsn,
    requireTlsExtension: config.requireTls,
    lmtp: config.lmtp,
    xclientTrustedSources: [...config.xclientTrusted],
    socketPaths: [...config.socketPaths],
    // Worker processes bind the same ports (node:cluster workers on older Node share the primary's socket instead).
    reusePort: config.workers > 0,
  };
}
