/**
 * A real RabbitMQ broker (Debian's `rabbitmq-server` package) for the tests of
 * examples/rabbitmq: one private node per test file, on loopback, with all its
 * state in a scratch folder, so that runs share nothing with each other or
 * with a system broker (the package's own service may even be running: this
 * node has its own name, ports, data and cookie).
 *
 * It is started as the package documents, `rabbitmq-server -detached`, and
 * waited for with `rabbitmqctl await_startup`; `rabbitmqctl stop` ends it. The
 * scripts are run from /usr/lib/rabbitmq/bin, not through the /usr/sbin
 * wrappers: as root those switch to the `rabbitmq` user with
 * HOME=/var/lib/rabbitmq (the system node's cookie, files the scratch folder
 * would have to give to that user), while the scripts themselves run as the
 * caller with the environment given here: root or not, the node's files are
 * the caller's.
 *
 * The environment that makes the node private:
 * - `RABBITMQ_NODENAME` `midi-test-<pid>@localhost`, `RABBITMQ_NODE_PORT` and
 *   `RABBITMQ_DIST_PORT` free ports, `RABBITMQ_NODE_IP_ADDRESS=127.0.0.1` and
 *   the distribution port on 127.0.0.1 too;
 * - `RABBITMQ_MNESIA_BASE`, `RABBITMQ_LOG_BASE`, `RABBITMQ_PID_FILE`,
 *   `RABBITMQ_ENABLED_PLUGINS_FILE` and the config files in the scratch folder
 *   (none of /etc/rabbitmq is read);
 * - `HOME` the scratch folder: Erlang makes its cookie there, and
 *   `rabbitmqctl` (given the same HOME) reads it.
 *
 * Erlang's port mapper (epmd, on 127.0.0.1:4369 via `ERL_EPMD_ADDRESS`) is
 * shared by all nodes of the machine; if the node started it, `epmd -kill`
 * stops it again after the node (epmd refuses while any node is registered).
 *
 * A missing package makes the tests skip outside CI and fail under CI (which
 * installs it): see {@link rabbitmqMissing}.
 */
import { execFile, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import process from "node:process";
import { scratchFolder } from "./scratch.ts";
import { freePort } from "./ports.ts";

/** The package's server script (what /usr/sbin/rabbitmq-server runs). */
export const RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server";
/** The package's control script (what /usr/sbin/rabbitmqctl runs). */
export const RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl";
/** Erlang's port mapper (package erlang-base, a dependency of rabbitmq-server). */
export const EPMD = "/usr/bin/epmd";

/**
 * Why the RabbitMQ tests cannot run on this machine, or `false` when they
 * can. Under CI (the `CI` variable set) a missing broker throws instead: CI
 * installs it, so there they must run, never skip. Elsewhere (a machine with
 * only Node.js and npm, as the README's quick start promises) they are
 * reported as skipped, naming the package to install.
 */
export function rabbitmqMissing(): string | false {
  for (const bin of [RABBITMQ_SERVER, RABBITMQCTL, EPMD]) {
    if (!existsSync(bin)) {
      const why = `${bin} not found: \`apt-get install --no-install-recommends rabbitmq-server\` ` +
        "to run the RabbitMQ tests (CI does)";
      if (process.env.CI) throw new Error(`RabbitMQ tests: ${why}`);
      return why;
    }
  }
  return false;
}

/** A running private broker. */
export interface RunningRabbitmq {
  /** `amqp://guest:guest@127.0.0.1:<port>` (guest may log in from loopback only, which this is). */
  readonly url: string;
  /** The AMQP port on 127.0.0.1. */
  readonly port: number;
  /** The node name, e.g. `midi-test-1234@localhost`. */
  readonly node: string;
  /** Milliseconds from `rabbitmq-server -detached` until `await_startup` returned. */
  readonly startupMs: number;
  /** Runs `rabbitmqctl -n <node> ...args` and resolves with its stdout (rejects with its output on failure). */
  ctl(...args: string[]): Promise<string>;
  /** `rabbitmqctl stop` (waits for the node's process to end), then epmd if this started it; safe to call twice. */
  stop(): Promise<void>;
  /** The node's log so far. */
  log(): string;
}

/** Runs `file` with `args`; resolves with stdout, rejects with everything it printed. */
function run(file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, timeout: timeoutMs, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(" ")}: ${err.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Whether epmd answers (exit 0 of `epmd -names`). */
async function epmdRunning(): Promise<boolean> {
  try {
    await run(EPMD, ["-names"], process.env, 5_000);
    return true;
  } catch {
    return false;
  }
}

/**
 * Stops epmd once `node` is gone from it. The node deregisters when its
 * connection to epmd closes, which epmd may notice a moment after the node's
 * process ended; `epmd -kill` refuses while any node is registered (prints
 * "Killing not allowed", exit 0), so wait for the name to go first, and leave
 * epmd running if other nodes remain.
 */
async function killEpmd(node: string): Promise<void> {
  const name = node.split("@")[0];
  const deadline = Date.now() + 5_000;
  for (;;) {
    const names = await run(EPMD, ["-names"], process.env, 5_000).catch(() => "");
    if (names === "") return; // not running any more
    const others = names.split("\n").filter((l) => l.startsWith("name ") && !l.startsWith(`name ${name} `));
    if (others.length > 0) return; // another node uses it
    if (!names.includes(`name ${name} `)) break;
    if (Date.now() > deadline) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  await run(EPMD, ["-kill"], process.env, 5_000).catch(() => {});
}

let scratch: ReturnType<typeof scratchFolder> | undefined;

/**
 * The scratch folder, made when this module loads: its clean-up is an
 * `after` hook of the importing test file, which must be registered at the
 * top level, not from inside a hook.
 */
function scratchDir(): ReturnType<typeof scratchFolder> {
  scratch ??= scratchFolder("rabbitmq");
  return scratch;
}
if (!rabbitmqMissing()) scratchDir();

/** Starts a private node and resolves once it takes AMQP connections (at most 90 s). */
export async function startRabbitmq(): Promise<RunningRabbitmq> {
  const dir = scratchDir();
  const port = await freePort();
  let distPort = await freePort();
  while (distPort === port) distPort = await freePort();
  const node = `midi-test-${process.pid}@localhost`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: dir.dir,
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_IP_ADDRESS: "127.0.0.1",
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    // Erlang distribution (rabbitmqctl talks to the node through it) on loopback only.
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: "-kernel inet_dist_use_interface {127,0,0,1}",
    ERL_EPMD_ADDRESS: "127.0.0.1",
    RABBITMQ_MNESIA_BASE: dir.path("mnesia"),
    RABBITMQ_LOG_BASE: dir.path("log"),
    RABBITMQ_PID_FILE: dir.path("rabbitmq.pid"),
    RABBITMQ_ENABLED_PLUGINS_FILE: dir.path("enabled_plugins"),
    // Files that do not exist: nothing of /etc/rabbitmq applies.
    RABBITMQ_CONFIG_FILE: dir.path("rabbitmq"),
    RABBITMQ_ADVANCED_CONFIG_FILE: dir.path("advanced.config"),
    RABBITMQ_CONF_ENV_FILE: dir.path("rabbitmq-env.conf"),
  };
  const pidFile = env.RABBITMQ_PID_FILE!;
  const logFile = dir.path(`log/${node}.log`);
  const log = () => existsSync(logFile) ? readFileSync(logFile, "utf8") : "";
  const ctl = (...args: string[]) => run(RABBITMQCTL, ["-n", node, ...args], env);
  const startedEpmd = !(await epmdRunning());

  // A runner that ends the process early must not leave the node behind. SIGTERM
  // makes the Erlang VM halt cleanly; this hook cannot wait for it.
  const killOnExit = () => {
    try {
      process.kill(Number(readFileSync(pidFile, "utf8").trim()), "SIGTERM");
    } catch {
      // not running
    }
  };
  process.once("exit", killOnExit);

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      // With the pid file, `stop` returns only once the node's OS process has ended.
      await ctl("stop", pidFile).catch(() => killOnExit());
      process.removeListener("exit", killOnExit);
      if (startedEpmd) await killEpmd(node);
    })();
    return stopped;
  };

  const t0 = Date.now();
  try {
    // -detached: the script returns at once, the node runs on as a daemon.
    await new Promise<void>((resolve, reject) => {
      const child = spawn(RABBITMQ_SERVER, ["-detached"], { env, stdio: "ignore" });
      child.once("error", reject);
      child.once(
        "exit",
        (code) => code === 0 ? resolve() : reject(new Error(`rabbitmq-server -detached exited ${code}`)),
      );
    });
    // await_startup fails at once while the node is not yet known to epmd: retry
    // until it is (about a second), then it waits for the boot itself.
    const deadline = t0 + 90_000;
    for (;;) {
      try {
        await ctl("await_startup", "--timeout", "90");
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  } catch (err) {
    await stop();
    throw new Error(`RabbitMQ did not start: ${(err as Error).message}\n--- node log ---\n${log()}`);
  }
  return { url: `amqp://guest:guest@127.0.0.1:${port}`, port, node, startupMs: Date.now() - t0, ctl, stop, log };
}
