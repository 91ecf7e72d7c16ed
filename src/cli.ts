#!/usr/bin/env node
/**
 * `midi-smtp-server`: an SMTP sink for development and tests. It accepts
 * every message, stores it in a Maildir and prints one line per message.
 *
 * ```sh
 * deno run -A src/cli.ts --ports 2525 --maildir ./mail
 * npx midi-smtp-server --ports 2525 --maildir ./mail
 * ```
 *
 * The logic is exported ({@link parseCliArgs}, {@link runDevServer}) so tests
 * and scripts can run the dev server in-process; the command line only runs
 * when this module is the program's entry point.
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { MidiSmtpServer, type MidiSmtpServerOptions } from "./server.ts";
import { Smtpd451Exception } from "./exceptions.ts";
import type { CrlfMode } from "./options.ts";
import type { Transport } from "./transport/types.ts";
import { loadTransport } from "./transport/detect.ts";
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
  -h, --help            show this help and exit
  -V, --version         show the version and exit

A message is acknowledged (250) only once its file is durably in DIR/new/;
if it cannot be stored the client gets 451 and may retry. SIGINT or SIGTERM
stops the server gracefully.

Exit status: 0 on success or after a signal, 1 if the server cannot start,
2 on a bad option.
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
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
      },
    }));
  } catch (err) {
    throw new CliError(err instanceof Error ? err.message : String(err));
  }
  if (values.help) return { action: "help" };
  if (values.version) return { action: "version" };
  const config: DevServerConfig = {
    hosts: values.hosts ?? DEFAULT_CONFIG.hosts,
    ports: values.ports ?? DEFAULT_CONFIG.ports,
    maildir: values.maildir ?? DEFAULT_CONFIG.maildir,
    maxSize: integer("--max-size", values["max-size"], DEFAULT_CONFIG.maxSize),
    maxRecipients: integer("--max-recipients", values["max-recipients"], DEFAULT_CONFIG.maxRecipients),
    crlfMode: crlfMode(values["crlf-mode"]),
    quiet: values.quiet ?? false,
  };
  if (config.maildir === "") throw new CliError("--maildir must not be empty");
  if (config.maxRecipients < 1) throw new CliError("--max-recipients must be at least 1");
  try {
    // The server's own checks (host and port syntax, ranges, ports per host)
    // are the single source of truth; constructing binds nothing.
    new MidiSmtpServer(serverOptions(config));
  } catch (err) {
    throw new CliError(err instanceof Error ? err.message : String(err));
  }
  return { action: "run", config };
}

/** A plain decimal integer: Number() would also take "", "1e3", "0x10" and " 7". */
function integer(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d{1,15}$/.test(value)) throw new CliError(`${flag} needs a whole number, got "${value}"`);
  return Number(value);
}

function crlfMode(value: string | undefined): CrlfMode {
  if (value === undefined) return DEFAULT_CONFIG.crlfMode;
  const mode = value.toUpperCase() as CrlfMode;
  if (!CRLF_MODES.includes(mode)) {
    throw new CliError(`--crlf-mode must be one of ${CRLF_MODES.join(", ")}, got "${value}"`);
  }
  return mode;
}

function serverOptions(config: DevServerConfig): MidiSmtpServerOptions {
  return {
    hosts: config.hosts,
    ports: config.ports,
    maxMessageSize: config.maxSize,
    maxRecipients: config.maxRecipients,
    crlfMode: config.crlfMode,
    // Test suites send many messages at once, often pipelined and with 8-bit or UTF-8 content.
    maxProcessings: 1000,
    pipeliningExtension: true,
    internationalizationExtensions: true,
    enhancedStatusCodesExtension: true,
  };
}

/** Where {@link runDevServer} writes. */
export interface DevServerIo {
  /** Receives the "listening on" line and one line per message (default `process.stdout`). */
  stdout?: { write(text: string): unknown };
  /** Receives the server's log lines, warnings and above (default `process.stderr`). */
  stderr?: { write(text: string): unknown };
  /** The socket layer (default: the runtime's own). */
  transport?: Transport;
}

/**
 * Starts the dev server: creates the Maildir, listens, and stores every
 * accepted message before acknowledging it. Resolves with the running
 * server once it listens; stop it with `server.stop()`.
 *
 * @example
 * ```ts
 * const server = await runDevServer({ ...DEFAULT_CONFIG, ports: "0", maildir: "/tmp/mail" });
 * console.log(server.addresses); // ["127.0.0.1:40123"]
 * await server.stop();
 * ```
 */
export async function runDevServer(config: DevServerConfig, io: DevServerIo = {}): Promise<MidiSmtpServer> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const write = (stream: { write(text: string): unknown }, text: string) => {
    try {
      stream.write(text);
    } catch {
      // a closed stdout (e.g. `| head`) must not fail deliveries
    }
  };
  const maildir = new Maildir(config.maildir);
  await maildir.init();
  const transport = io.transport ?? await loadTransport();
  const server = new MidiSmtpServer({
    ...serverOptions(config),
    transport,
    onLoggingEvent(_ctx, severity, msg) {
      write(stderr, `${timestamp()} [${severity.toUpperCase()}] ${msg}\n`);
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
      let path: string;
      try {
        // Awaited on purpose: the 250 goes out only once the file is durably in new/.
        path = await maildir.deliver(message.data, headers);
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        write(stderr, `${timestamp()} [ERROR] message ${id} not stored: ${reason}\n`);
        throw new Smtpd451Exception(`message ${id} not stored: ${reason}`);
      }
      if (!config.quiet) {
        // Addresses are client-given: sanitised so they cannot drive the terminal.
        const clean = (address: string) => sanitizeHeaderValue(address, { utf8: true });
        const to = envelope.to.map(clean).join(",");
        write(stdout, `${timestamp()} ${clean(envelope.from)} -> ${to} ${message.bytesize} bytes ${path}\n`);
      }
    },
  });
  await server.start();
  const where = server.addresses.join(", ");
  write(
    stdout,
    `midi-smtp-server listening on ${where} (${transport.name} transport), storing mail in ${config.maildir}\n`,
  );
  return server;
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

async function main(): Promise<void> {
  let command: CliCommand;
  try {
    command = parseCliArgs(programArgs());
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    process.stderr.write(`midi-smtp-server: ${err.message}\nTry 'midi-smtp-server --help' for more information.\n`);
    process.exit(2);
  }
  if (command.action === "help") return void process.stdout.write(USAGE);
  if (command.action === "version") return void process.stdout.write(`midi-smtp-server ${VERSION}\n`);

  // Signal handlers go in before the server starts: whoever reads the
  // "listening on" line may signal at once, and must not kill us unhandled.
  let server: MidiSmtpServer | undefined;
  let stopping = false;
  const stop = (signal: string) => {
    // A second signal means the user will not wait for sessions to finish.
    if (stopping) process.exit(1);
    stopping = true;
    process.stderr.write(`midi-smtp-server: ${signal} received, stopping\n`);
    if (server) stopAndExit(server);
    // else: still starting; main() stops it once it is up.
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      process.on(signal, () => stop(signal));
    } catch {
      // Deno on Windows cannot listen for SIGTERM; SIGINT still works.
    }
  }

  try {
    server = await runDevServer(command.config);
  } catch (err) {
    process.stderr.write(`midi-smtp-server: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  if (stopping) stopAndExit(server);
}

/** Stops gracefully (sessions finish what they are doing), then exits 0. */
function stopAndExit(server: MidiSmtpServer): void {
  server.stop({ gracefully: true }).then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`midi-smtp-server: stop failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}

if (isEntryPoint()) await main();
