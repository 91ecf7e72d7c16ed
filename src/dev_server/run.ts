/**
 * Running the dev server: in-process ({@link runDevServer},
 * {@link stopDevServer}) and as a program ({@link runCli}: the command line,
 * the start deadline, SIGINT/SIGTERM and the exit status).
 *
 * @module
 */
import process from "node:process";
import { randomBytes } from "node:crypto";
import { basename } from "node:path";
import { MidiSmtpServer } from "../server.ts";
import { Smtpd451Exception, Smtpd535Exception } from "../exceptions.ts";
import type { SmtpdContext } from "../context.ts";
import type { Transport } from "../transport/types.ts";
import type { PemCertificate } from "../options.ts";
import { loadTransport } from "../transport/detect.ts";
import { type CliCommand, type DevServerConfig, parseCliArgs, USAGE, VERSION } from "./args.ts";
import { CliError } from "./cli_error.ts";
import { checkConfig, serverOptions } from "./config.ts";
import { checkCredentials } from "./credentials.ts";
import { Deadline, DeadlineError, settlesWithin } from "./deadline.ts";
import { EnvelopeDir, envelopeRecord, type EnvelopeSource } from "./envelope_file.ts";
import { logLine, type LogLineSession, messageLine } from "./log_format.ts";
import { Maildir } from "./maildir.ts";
import { endBySignal, exitDespiteStuckIo, exitProcess, type Signal, SIGNALS } from "./process_exit.ts";
import { authWarnings, describeServer } from "./startup_report.ts";
import { DevServerStats } from "./stats.ts";
import { sanitizeHeaderValue, traceHeaders } from "./trace_headers.ts";

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
  /**
   * Print the "listening on" line and what follows it (default `true`). A
   * worker process leaves that to its supervisor, which prints it once.
   */
  report?: boolean;
  /** The certificate to use instead of a self-signed one made at start (workers get their supervisor's). */
  tlsCertificate?: PemCertificate;
}

/** The deliveries each running dev server has in progress, for {@link stopDevServer}. */
const deliveries = new WeakMap<MidiSmtpServer, Set<Promise<unknown>>>();
/** What each dev server counted, for the line printed when it stops. */
const counts = new WeakMap<MidiSmtpServer, DevServerStats>();

/** The counts of a server made by {@link runDevServer} (`undefined` for any other server). */
export function devServerStats(server: MidiSmtpServer): DevServerStats | undefined {
  return counts.get(server);
}

/** The line after the start-up report (the program's and the supervisor's, not runDevServer's: it stops nothing). */
export const STOP_HINT = "Press Ctrl-C to stop.";

/**
 * Starts the dev server: creates the Maildir, listens, and stores every
 * accepted message before acknowledging it. Resolves with the running
 * server once it listens; stop it with {@link stopDevServer} (or
 * `server.stop()`). A bad `config` rejects with a `CliError`, as
 * `parseCliArgs` would; a start-up that fails, or does not finish
 * within `io.startTimeout`, rejects with an error saying why.
 *
 * @example
 * ```ts
 * // not run: creates /tmp/mail and listens on a free port
 * import { DEFAULT_CONFIG } from "@midi/smtp-server/cli";
 *
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
  const envelopes = config.envelopeDir === undefined ? undefined : new EnvelopeDir(config.envelopeDir);
  if (envelopes) await startup.race(`creating the envelope directory ${envelopes.dir}`, envelopes.init());
  const transport = io.transport ?? await startup.race("loading the transport", loadTransport());
  const server = devServer(config, {
    stdout,
    stderr,
    transport,
    maildir,
    envelopes,
    tlsCertificate: io.tlsCertificate,
  });
  await startup.race(
    `starting to listen on ${config.hosts} (host names, TLS certificate, ports)`,
    server.start(),
    // Given up on, but up after all: nobody will use it.
    () => void server.stop({ gracefully: false, waitSecondsBeforeClose: 0 }),
  );
  // The run time on the final line counts from here: that is when the user was told it listens.
  counts.get(server)!.startedAt = Date.now();
  if (io.report === false) return server;
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

/**
 * Writes the envelope file of the message stored at `path`; resolves with
 * `path`. The record is built from the context's parts taken when the hook
 * began (the session replaces them after the message, it does not change
 * them). If the file cannot be written, the message is taken back: the client
 * gets 451 and retries, and a kept message would become a duplicate.
 */
async function writeEnvelope(
  envelopes: EnvelopeDir,
  maildir: Maildir,
  path: string,
  source: EnvelopeSource,
  { id, receivedAt }: { id: string; receivedAt: Date },
): Promise<string> {
  const messageFile = basename(path);
  try {
    await envelopes.write(messageFile, envelopeRecord(source, { id, messageFile, receivedAt }));
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw await maildir.withdraw(path, new Error(`envelope file not written: ${reason}`, { cause: err }));
  }
  return path;
}

/** The client for a log line: its IP, else (a Unix-socket client) its host name. */
function clientName(server: { remoteIp: string; remoteHost: string }): string {
  return server.remoteIp || server.remoteHost || "unknown";
}

/** Writes to stdout or stderr; a closed one (e.g. `| head`) must not fail deliveries. */
function write(stream: { write(text: string): unknown }, text: string): void {
  try {
    stream.write(text);
  } catch {
    // nobody reads it any more
  }
}

/** What a log line tells of the session of `ctx` (none for lines outside a session). */
function sessionOf(ctx: SmtpdContext | null): LogLineSession | null {
  return ctx ? { sessionId: ctx.sessionId, remoteIp: ctx.server.remoteIp } : null;
}

/** What {@link devServer} is wired to. */
interface DevServerParts {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  transport: Transport;
  maildir: Maildir;
  /** Where the envelope files go (`--envelope-dir`), if anywhere. */
  envelopes: EnvelopeDir | undefined;
  /** A certificate to use instead of a self-signed one. */
  tlsCertificate: PemCertificate | undefined;
}

/**
 * The server with the dev server's hooks: log lines, AUTH against the
 * configured users, Maildir delivery (and the envelope file).
 */
function devServer(config: DevServerConfig, parts: DevServerParts): MidiSmtpServer {
  const { stdout, stderr, transport, maildir, envelopes, tlsCertificate } = parts;
  const passwords = new Map(config.authUsers.map(({ user, password }) => [user, password]));
  const inProgress = new Set<Promise<unknown>>();
  const stats = new DevServerStats();
  const format = config.logFormat;
  const server = new MidiSmtpServer({
    ...serverOptions(config),
    ...(tlsCertificate ? { tlsCert: tlsCertificate.cert, tlsKey: tlsCertificate.key } : {}),
    transport,
    onLoggingEvent(ctx, severity, msg) {
      write(stderr, logLine(format, severity, msg, sessionOf(ctx)));
    },
    onConnectEvent() {
      stats.connections++;
    },
    onDisconnectEvent(ctx) {
      stats.errorReplies += ctx.server.exceptions;
    },
    onAuthEvent(ctx, authorizationId, authenticationId, _authentication, credentials) {
      if (checkCredentials(passwords, authorizationId, authenticationId, credentials)) return;
      // The user name is client-given (sanitised); the password is never printed.
      const user = sanitizeHeaderValue(authenticationId, { utf8: true });
      const msg = `AUTH ${credentials.mechanism} failed for "${user}" from ${clientName(ctx.server)}`;
      write(stderr, logLine(format, "warn", msg, sessionOf(ctx)));
      throw new Smtpd535Exception();
    },
    async onMessageDataEvent(ctx) {
      const { server: conn, envelope, message } = ctx;
      const id = randomBytes(6).toString("hex").toUpperCase();
      const receivedAt = message.delivered ?? new Date();
      // After PROXY or XCLIENT these are the client they named: the header shows that one, as Postfix's does.
      const headers = traceHeaders({
        from: envelope.from,
        to: envelope.to,
        helo: conn.helo,
        heloMode: conn.heloMode,
        remoteHost: conn.remoteHost,
        remoteIp: conn.remoteIp || null,
        localHost: conn.localHost,
        id,
        date: receivedAt,
        encrypted: conn.encrypted !== null,
        authenticated: conn.authenticated !== null,
        utf8: envelope.encodingUtf8 === "utf8",
        crlf: message.crlf,
      });
      // ctx.signal aborts if the client leaves or the hook times out: nobody
      // would see the 250, so the delivery is cancelled rather than kept.
      const stored = Promise.resolve().then(() => maildir.deliver(message.data, headers, { signal: ctx.signal }));
      // The envelope file only once the message is stored, so that an envelope always has its message.
      const delivery = envelopes
        ? stored.then((path) =>
          writeEnvelope(envelopes, maildir, path, { server: conn, envelope, message }, { id, receivedAt })
        )
        : stored;
      inProgress.add(delivery);
      let path: string;
      try {
        // Awaited on purpose: the 250 goes out only once the file is durably in new/.
        path = await delivery;
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        write(stderr, logLine(format, "error", `message ${id} not stored: ${reason}`, sessionOf(ctx)));
        throw new Smtpd451Exception(`message ${id} not stored: ${reason}`);
      } finally {
        inProgress.delete(delivery);
      }
      stats.messages++;
      if (!config.quiet) {
        // Addresses are client-given: sanitised so they cannot drive the terminal (JSON escapes them instead).
        const clean = (address: string) => sanitizeHeaderValue(address, { utf8: true });
        const { from, to } = envelope;
        write(
          stdout,
          messageLine(format, { sessionId: ctx.sessionId, from, to, size: message.bytesize, file: path }, clean),
        );
      }
    },
  });
  deliveries.set(server, inProgress);
  counts.set(server, stats);
  return server;
}

/**
 * Runs the command line `argv` (without the program name) and ends the
 * process: exits 2 on a bad option, 1 if the server cannot start within
 * {@link START_TIMEOUT_SECONDS}; once running, SIGINT or SIGTERM stops it
 * with {@link stopDevServer} and exits 0 (1 if a delivery was cut off). The
 * program's entry point; tests run it in a child process with their own `io`.
 *
 * @example
 * ```ts
 * await runCli(["--ports", "2525", "--maildir", "./mail"]); // runs until SIGINT or SIGTERM
 * ```
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
  // The supervisor and each of its workers run this same command line: runWorkers tells them apart.
  // Loaded only here: it imports this module, and a single process needs none of it.
  if (command.config.workers > 0) return await (await import("./workers.ts")).runDevServerWorkers(command.config, io);

  // Signal handlers go in before the server starts: whoever reads the
  // "listening on" line may signal at once, and must not kill us unhandled.
  const stdout = io.stdout ?? process.stdout;
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
    stopAndExit(server, stdout);
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
  // This process runs this one server: the process-wide refusal channel is its own.
  devServerStats(server)!.countRefusals();
  if (io.report !== false) write(stdout, `${STOP_HINT}\n`);
}

/**
 * Stops gracefully (messages in progress are stored first), prints the final
 * line with the counts, then exits 0, or 1 if a delivery was cut off.
 */
function stopAndExit(server: MidiSmtpServer, stdout: { write(text: string): unknown }): void {
  const finalLine = () => write(stdout, `midi-smtp-server ${devServerStats(server)!.summary()}\n`);
  // stopDevServer() is bounded; this is in case a transport never settles a close.
  const hardStop = setTimeout(() => {
    process.stderr.write("midi-smtp-server: the stop did not finish in time, exiting\n");
    exitDespiteStuckIo(1);
  }, (STOP_TIMEOUT_SECONDS + 15) * 1000);
  stopDevServer(server).then(
    (finished) => {
      clearTimeout(hardStop);
      finalLine();
      if (finished) exitProcess(0);
      const left = deliveryCount(deliveriesInProgress(server));
      process.stderr.write(`midi-smtp-server: stopped with ${left} unfinished after ${STOP_TIMEOUT_SECONDS} s\n`);
      // What did not finish may be stuck in the kernel.
      exitDespiteStuckIo(1);
    },
    (err) => {
      clearTimeout(hardStop);
      finalLine();
      process.stderr.write(`midi-smtp-server: stop failed: ${err instanceof Error ? err.message : String(err)}\n`);
      exitProcess(1);
    },
  );
}
