/**
 * The dev server as worker processes (`--workers N`): one supervisor and N
 * dev servers on the same ports, through `runWorkers`. The supervisor prints
 * the start-up report once every worker listens; each worker stores into the
 * same Maildir (its file names carry the pid, so they stay unique across
 * processes) and prints its own line per message.
 *
 * When they stop, each worker prints its own final line with its counts
 * (`midi-smtp-server worker 2 stopped after ...`), and the supervisor one for
 * the whole: the workers have no channel to report counts to it (the IPC
 * channel of `runWorkers` is its own), and a line each tells as much.
 *
 * With TLS on and no `--tls-cert`, the supervisor makes the self-signed
 * certificate and hands it to every worker (in an environment variable only
 * they get), so that all of them present the one fingerprint it prints.
 *
 * @module
 */
import process from "node:process";
import { MidiSmtpServer } from "../server.ts";
import type { PemCertificate } from "../options.ts";
import { resolveHost } from "../addresses.ts";
import { generateSelfSignedCertificate } from "../tls/certificates.ts";
import { loadTransport } from "../transport/detect.ts";
import { runWorkers } from "../workers.ts";
import type { WorkerSupervisor } from "../workers/types.ts";
import type { DevServerConfig } from "./args.ts";
import { serverOptions } from "./config.ts";
import { exitProcess } from "./process_exit.ts";
import {
  type DevServerIo,
  devServerStats,
  runDevServer,
  START_TIMEOUT_SECONDS,
  STOP_HINT,
  STOP_TIMEOUT_SECONDS,
  stopDevServer,
} from "./run.ts";
import { authWarnings, describeServer, describeWorkers } from "./startup_report.ts";
import { formatUptime } from "./stats.ts";

/** Where the supervisor puts the self-signed certificate for its workers (JSON `{ cert, key }`). */
export const CERTIFICATE_ENV = "MIDI_SMTP_SERVER_DEV_TLS";
/** Seconds a worker still alive after its graceful stop's wait gets before SIGKILL (as runCli's own hard stop). */
const KILL_MARGIN_SECONDS = 15;

/**
 * Runs `config` (with `workers` > 0) as a supervisor and its workers: this
 * one function runs in both, `runWorkers` tells them apart. The supervisor
 * returns once every worker listens (it ends the process itself on
 * SIGINT/SIGTERM: 0 if every worker stopped cleanly, else 1); if a worker
 * cannot start it says why and exits 1. A worker returns once it listens.
 */
export async function runDevServerWorkers(config: DevServerConfig, io: DevServerIo = {}): Promise<void> {
  const stderr = io.stderr ?? process.stderr;
  // In a worker: the supervisor's certificate. In the supervisor: made here, once, for all.
  const certificate = io.tlsCertificate ?? takeCertificate() ?? await selfSignedIfNeeded(config);
  let pool;
  try {
    pool = await runWorkers({
      workers: config.workers,
      stopTimeout: STOP_TIMEOUT_SECONDS,
      killTimeout: STOP_TIMEOUT_SECONDS + KILL_MARGIN_SECONDS,
      startTimeout: (io.startTimeout ?? START_TIMEOUT_SECONDS) + KILL_MARGIN_SECONDS,
      env: certificate ? { [CERTIFICATE_ENV]: JSON.stringify({ cert: certificate.cert, key: certificate.key }) } : {},
      log: (line) => write(stderr, `midi-smtp-server: ${line}\n`),
      start: async () => {
        const server = await runDevServer(config, { ...io, report: false, tlsCertificate: certificate });
        // A worker process runs this one server: the process-wide refusal channel is its own.
        devServerStats(server)?.countRefusals();
        return server;
      },
      stop: async (server, worker) => {
        const finished = await stopDevServer(server);
        const stats = devServerStats(server);
        if (stats) write(io.stdout ?? process.stdout, `midi-smtp-server worker ${worker.id} ${stats.summary()}\n`);
        return finished;
      },
    });
  } catch (err) {
    // Only the supervisor gets here: a worker that cannot start says so and exits by itself.
    write(stderr, `midi-smtp-server: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    exitProcess(1);
  }
  if (pool.role !== "supervisor") return;
  await report(config, io, pool);
  const stdout = io.stdout ?? process.stdout;
  write(stdout, `${STOP_HINT}\n`);
  const since = Date.now();
  // Registered before any signal: runs before runWorkers' own handler exits the process on the same promise.
  void pool.stopped.then(() => {
    const workers = `${config.workers} worker${config.workers === 1 ? "" : "s"}`;
    write(stdout, `midi-smtp-server stopped after ${formatUptime(Date.now() - since)}: ${workers}, counts above\n`);
  });
}

/** The start-up report, as a single dev server prints it, plus the line about the workers. */
async function report(config: DevServerConfig, io: DevServerIo, pool: WorkerSupervisor): Promise<void> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const workers = pool.status();
  const first = workers[0];
  // The workers run this runtime's transport (or io's): the supervisor loads it only for its name.
  const transport = io.transport ?? await loadTransport();
  write(
    stdout,
    `midi-smtp-server listening on ${first.addresses.join(", ")} (${transport.name} transport), ` +
      `storing mail in ${config.maildir}\n`,
  );
  write(stdout, `${describeWorkers(pool.mechanism, workers.map((w) => w.pid), process.pid)}\n`);
  // Constructing a server binds nothing: it gives the options as every worker resolved them.
  const options = new MidiSmtpServer(serverOptions(config)).options;
  const described = {
    tlsFingerprint: first.tlsFingerprint,
    tlsAddresses: first.tlsAddresses,
    socketPaths: [],
    options,
  };
  for (const line of describeServer(config, described)) write(stdout, `${line}\n`);
  for (const warning of authWarnings(config)) write(stderr, `midi-smtp-server: warning: ${warning}\n`);
}

/**
 * The certificate a worker's supervisor left in {@link CERTIFICATE_ENV}, if
 * any; the variable is removed, so nothing the worker starts inherits the key.
 */
export function takeCertificate(): PemCertificate | undefined {
  const value = process.env[CERTIFICATE_ENV];
  if (value === undefined) return undefined;
  try {
    delete process.env[CERTIFICATE_ENV];
  } catch {
    // Deno without --allow-env: it stays
  }
  try {
    const { cert, key } = JSON.parse(value) as Partial<PemCertificate>;
    return typeof cert === "string" && typeof key === "string" ? { cert, key } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The self-signed certificate the server would make at start (TLS on, no
 * `--tls-cert`), for the same names and addresses; `undefined` when none is
 * needed.
 */
export async function selfSignedIfNeeded(config: DevServerConfig): Promise<PemCertificate | undefined> {
  const tlsOn = config.tlsMode !== "TLS_FORBIDDEN" || config.tlsPorts.length > 0;
  if (!tlsOn || config.tlsCert !== undefined) return undefined;
  const { options } = new MidiSmtpServer(serverOptions(config));
  const ips = (await Promise.all(options.hosts.map(resolveHost))).flat();
  const names = options.hosts.filter((host) => host !== "*");
  const { cert, key } = await generateSelfSignedCertificate({
    commonName: options.tlsCertCn,
    altNames: [...options.tlsCertSan],
    hosts: [...new Set([...names, ...ips])],
  });
  return { cert, key };
}

/** Writes to stdout or stderr; a closed one (e.g. `| head`) must not fail anything. */
function write(stream: { write(text: string): unknown }, text: string): void {
  try {
    stream.write(text);
  } catch {
    // nobody reads it any more
  }
}
