/**
 * A real HAProxy (Debian's `haproxy` package, `/usr/sbin/haproxy`) in front of
 * test servers, for the PROXY protocol tests: TCP-mode frontends on loopback,
 * each with one backend whose server lines may send a PROXY header (v1, v2,
 * v2 with the SSL TLV, or none), run health checks and connect from a chosen
 * source address.
 *
 * HAProxy runs in the foreground (`-db`) as a child process, without
 * SO_REUSEPORT (`-dR`: otherwise a port another process listens on is shared
 * silently, and some connections go there); its config is written to a
 * scratch folder, its own log lines (one per connection,
 * `option tcplog`, plus alerts and health-check state changes) go to its
 * stderr and are kept for {@link RunningHaproxy.log}.
 *
 * Missing HAProxy is an error, never a skip: CI installs it with
 * `apt-get install haproxy`.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { listensOnLoopback, startDaemon } from "./daemon.ts";
import { freePort } from "./ports.ts";

/** Debian's HAProxy (2.6 on bookworm). */
export const HAPROXY = "/usr/sbin/haproxy";

/** What a backend server line sends first on each connection to it. */
export type SendProxy = "v1" | "v2" | "v2-ssl" | "none";

/** One `server` line of a backend. */
export interface HaproxyServerLine {
  /** Address of the server (an IP: no resolver is configured). */
  host: string;
  port: number;
  /** `send-proxy`, `send-proxy-v2`, `send-proxy-v2-ssl`, or nothing. */
  sendProxy: SendProxy;
  /** Health checks on (plain TCP connect; with a PROXY header when `sendProxy` is not `"none"`). */
  check?: boolean;
  /** Milliseconds between health checks (`inter`); default HAProxy's 2000. */
  inter?: number;
  /** Local address HAProxy connects from (`source`), e.g. `"127.0.0.3"`. */
  source?: string;
  /** Extra PROXY v2 TLVs (`proxy-v2-options`), e.g. `["unique-id", "crc32c"]`. */
  proxyV2Options?: string[];
}

/** One TCP-mode frontend and its backend. */
export interface HaproxyFrontend {
  /** Names the frontend (`fe_<name>`), its backend (`be_<name>`) and its entry in {@link RunningHaproxy.ports}. */
  name: string;
  /**
   * Port on 127.0.0.1; 0 or missing: a free one, picked before HAProxy starts
   * (and picked again if another process takes it before HAProxy binds it).
   */
  bindPort?: number;
  /** Only TCP mode is supported. */
  mode?: "tcp";
  /** `unique-id-format` (a log-format string, e.g. `"%ci:%cp"`), for the `unique-id` TLV. */
  uniqueIdFormat?: string;
  backend: {
    servers: HaproxyServerLine[];
    /** `option smtpchk HELO haproxy.test`: checks (on servers with `check`) wait for a 2xx greeting and HELO. */
    smtpCheck?: boolean;
  };
}

/** What {@link startHaproxy} runs. */
export interface HaproxyConfig {
  frontends: HaproxyFrontend[];
  /**
   * Run this config file as it is instead of a generated one (such as
   * examples/haproxy.cfg): `frontends` then only name its frontends and their
   * `bindPort`s, and `env` fills the file's `"${VAR}"`s. No admin socket.
   */
  file?: string;
  /**
   * Environment for HAProxy, on top of this process's; a function gets the
   * frontends' ports (for a `file` whose ports come from the environment).
   */
  env?: Record<string, string> | ((ports: Record<string, number>) => Record<string, string>);
}

/** A running HAProxy. */
export interface RunningHaproxy {
  /** Frontend name to its port on 127.0.0.1. */
  readonly ports: Record<string, number>;
  /** The config file's text. */
  readonly config: string;
  /** Stops HAProxy (SIGTERM, SIGKILL after 5 s) and waits for it to exit; safe to call twice. */
  stop(): Promise<void>;
  /** Everything HAProxy printed so far (stdout and stderr). */
  log(): string;
  /** Runs a command on HAProxy's admin socket (e.g. `"show stat"`) and returns its answer. */
  admin(command: string): Promise<string>;
  /** The server lines' state from `show stat`: status (`"UP"`, `"DOWN"`, ...) and last check status (`"L4OK"`, ...). */
  serverStates(): Promise<Array<{ backend: string; server: string; status: string; checkStatus: string }>>;
}

/**
 * Why the HAProxy tests cannot run on this machine, or `false` when they can.
 * Under CI (the `CI` variable set) a missing HAProxy throws instead: CI
 * installs it, so there they must run, never skip. Elsewhere (a machine with
 * only Node.js and npm, as the README's quick start promises) they are
 * reported as skipped, naming the package to install.
 */
export function haproxyMissing(): string | false {
  if (existsSync(HAPROXY)) return false;
  if (process.env.CI) assertHaproxyInstalled();
  return `${HAPROXY} not found: \`apt-get install haproxy\` to run the HAProxy tests (CI does)`;
}

/** Throws, saying how to install it, when HAProxy is missing. */
export function assertHaproxyInstalled(): void {
  if (!existsSync(HAPROXY)) {
    throw new Error(
      `${HAPROXY} not found: the PROXY protocol integration tests need a real HAProxy. ` +
        "Install it with `apt-get install haproxy` (CI does).",
    );
  }
}

const NAME = /^[A-Za-z0-9_-]+$/;
const SEND_PROXY: Record<SendProxy, string> = {
  "v1": " send-proxy",
  "v2": " send-proxy-v2",
  "v2-ssl": " send-proxy-v2-ssl",
  "none": "",
};

/** Host part of an address in a `server` line or `source`: IPv6 in brackets is not needed, HAProxy takes `ip:port`. */
function checkIp(what: string, ip: string): string {
  if (net.isIP(ip) === 0) throw new TypeError(`${what} must be an IP address, got ${JSON.stringify(ip)}`);
  return ip;
}

/** A log-format string as one config word: spaces escaped, no line breaks. */
function logFormat(format: string): string {
  if (/[\r\n]/.test(format)) throw new TypeError("a log-format string is one line");
  return format.replace(/[\\ ]/g, (c) => "\\" + c);
}

/** The config text for `frontends` whose ports are already known; `adminSocket` is a Unix socket path. */
export function haproxyConfigText(
  frontends: HaproxyFrontend[],
  ports: Record<string, number>,
  adminSocket?: string,
): string {
  const lines = [
    "# written by tests/haproxy.ts",
    "global",
    "  maxconn 2000",
    "  log stderr format raw local0 info",
    ...(adminSocket === undefined ? [] : [`  stats socket ${adminSocket} mode 600 level admin`]),
    "",
    "defaults",
    "  mode tcp",
    "  log global",
    "  option tcplog",
    "  timeout connect 3s",
    "  timeout client 5s",
    "  timeout server 5s",
    "  timeout check 2s",
    "",
  ];
  for (const fe of frontends) {
    lines.push(
      `frontend fe_${fe.name}`,
      `  bind 127.0.0.1:${ports[fe.name]}`,
      "  mode tcp",
      ...(fe.uniqueIdFormat === undefined ? [] : [`  unique-id-format ${logFormat(fe.uniqueIdFormat)}`]),
      `  default_backend be_${fe.name}`,
      "",
      `backend be_${fe.name}`,
      "  mode tcp",
      ...(fe.backend.smtpCheck ? ["  option smtpchk HELO haproxy.test"] : []),
    );
    fe.backend.servers.forEach((s, i) => {
      let line = `  server s${i} ${checkIp("server host", s.host)}:${s.port}${SEND_PROXY[s.sendProxy]}`;
      if (s.source !== undefined) line += ` source ${checkIp("server source", s.source)}`;
      if (s.proxyV2Options?.length) {
        if (!s.sendProxy.startsWith("v2")) throw new TypeError("proxyV2Options need sendProxy v2 or v2-ssl");
        if (s.proxyV2Options.some((o) => !NAME.test(o))) throw new TypeError("proxyV2Options: one word each");
        line += ` proxy-v2-options ${s.proxyV2Options.join(",")}`;
      }
      if (s.check) line += ` check inter ${s.inter ?? 2000}`;
      lines.push(line);
    });
    lines.push("");
  }
  return lines.join("\n");
}

/** Whether a TCP connection to 127.0.0.1:`port` succeeds (closed at once). */
function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** Sends `command` to the admin socket at `path`; resolves with the answer (HAProxy closes after it). */
function adminCommand(path: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let answer = "";
    const socket = net.connect({ path });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`HAProxy admin socket: no answer to ${JSON.stringify(command)} within 5 s`));
    }, 5000);
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => answer += d);
    socket.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(answer);
    });
    socket.once("connect", () => socket.write(command + "\n"));
  });
}

let configs = 0;

/**
 * The folder for config files, one per process. Not a per-file scratch folder
 * (whose `after` hook removes it when the importing file ends): Bun runs every
 * test file in one process, where the first file that imports this module (the
 * CLI tests) would remove it under the HAProxy tests that come later.
 */
const configDir = mkdtempSync(join(tmpdir(), "midi-smtp-haproxy-"));
process.once("exit", () => rmSync(configDir, { recursive: true, force: true }));

function scratchDir(): { path(name: string): string } {
  return { path: (name: string) => join(configDir, name) };
}

const READY_DEADLINE_MS = 10_000;

/** Why a start failed, and whether another set of free ports may succeed. */
class HaproxyStartError extends Error {
  constructor(message: string, readonly portTaken: boolean) {
    super(message);
  }
}

/**
 * Writes a config for `config`, starts HAProxy in the foreground and resolves
 * once every frontend listens (at most 10 s). Rejects with the config and
 * HAProxy's output if it fails to start (a config error makes it exit at once).
 * A port picked here that another process took before HAProxy bound it is
 * picked again (three tries).
 */
export async function startHaproxy(config: HaproxyConfig): Promise<RunningHaproxy> {
  assertHaproxyInstalled();
  const names = new Set<string>();
  for (const fe of config.frontends) {
    if (!NAME.test(fe.name)) throw new TypeError(`frontend name must match ${NAME}, got ${JSON.stringify(fe.name)}`);
    if (names.has(fe.name)) throw new TypeError(`frontend ${fe.name} given twice`);
    if ((fe.mode ?? "tcp") !== "tcp") throw new TypeError("only mode tcp is supported");
    names.add(fe.name);
  }
  const picked = config.frontends.some((fe) => !fe.bindPort);
  for (let attempt = 1;; attempt++) {
    const ports: Record<string, number> = {};
    for (const fe of config.frontends) ports[fe.name] = fe.bindPort ? fe.bindPort : await freePort();
    try {
      return await startWithPorts(config, ports);
    } catch (err) {
      if (!(err instanceof HaproxyStartError && err.portTaken && picked && attempt < 3)) throw err;
    }
  }
}

async function startWithPorts(config: HaproxyConfig, ports: Record<string, number>): Promise<RunningHaproxy> {
  const dir = scratchDir();
  const n = ++configs;
  const socketPath = dir.path(`haproxy-${n}.sock`);
  let file: string;
  let text: string;
  if (config.file) {
    file = config.file;
    text = readFileSync(file, "utf8");
  } else {
    file = dir.path(`haproxy-${n}.cfg`);
    text = haproxyConfigText(config.frontends, ports, socketPath);
    writeFileSync(file, text);
  }

  const daemon = startDaemon(HAPROXY, ["-f", file, "-db", "-dR"], {
    env: typeof config.env === "function" ? config.env(ports) : config.env,
    graceMs: 5000,
    exitSignal: "SIGKILL", // a runner that ends the process early must not leave HAProxy behind
  });
  const { stop, output } = daemon;
  const admin = (command: string) => adminCommand(socketPath, command);
  const serverStates = async () => {
    const csv = (await admin("show stat")).split("\n");
    const columns = csv[0].replace(/^# /, "").split(",");
    const col = (name: string) => columns.indexOf(name);
    return csv.slice(1).map((row) => row.split(",")).filter((f) =>
      f.length === columns.length && !["FRONTEND", "BACKEND"].includes(f[col("svname")])
    ).map((f) => ({
      backend: f[col("pxname")],
      server: f[col("svname")],
      status: f[col("status")],
      // "* " marks a check in progress; the status is the last finished one's.
      checkStatus: f[col("check_status")].replace(/^\* /, ""),
    }));
  };
  const running: RunningHaproxy = { ports, config: text, stop, log: output, admin, serverStates };

  const failure = (why: string) =>
    new HaproxyStartError(
      `HAProxy ${why}\n--- config ${file} ---\n${text}\n--- HAProxy output ---\n${output()}`,
      /cannot bind socket|Address already in use/.test(output()),
    );
  try {
    const deadline = Date.now() + READY_DEADLINE_MS;
    for (const name of Object.keys(ports)) {
      for (;;) {
        const spawnError = daemon.spawnError();
        if (spawnError) throw failure(`could not be started: ${spawnError.message}`);
        const exited = daemon.exited();
        if (exited) {
          await daemon.outputSettled(); // its last words (e.g. "cannot bind socket") decide whether to retry
          throw failure(`exited early (code ${exited.code}, signal ${exited.signal})`);
        }
        const listening = listensOnLoopback(daemon.child.pid, ports[name]) ?? await connects(ports[name]);
        if (listening) break;
        if (Date.now() > deadline) {
          throw failure(`frontend ${name} not listening on 127.0.0.1:${ports[name]} after ${READY_DEADLINE_MS} ms`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return running;
}
