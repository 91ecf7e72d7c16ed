/**
 * Message throughput over TLS, per runtime, next to the same traffic in
 * plaintext: how much STARTTLS and implicit TLS (RFC 8314) cost the server on
 * Deno, Bun and Node.
 *
 *   node_modules/.bin/deno run -A scripts/bench/tls_throughput.ts [--quick] [options]
 *   (or: node --import tsx scripts/bench/tls_throughput.ts ...; bun scripts/bench/tls_throughput.ts ...)
 *
 * What it does:
 * - makes one self-signed certificate with the openssl CLI in a temporary
 *   directory (P-256 by default, `--key-type rsa` for RSA 2048), removed at the end;
 * - for each runtime and mode starts a fresh `tls_target.ts` (a
 *   discarding sink), sends one warm-up round (not counted, so the JIT and the
 *   TLS code paths are hot), then measures `--runs` rounds;
 * - a round is one client process (always Node, this file with `--client`, so
 *   the client side is identical for every server runtime) running `--sessions`
 *   concurrent SMTP sessions that together send `--messages` messages of
 *   `--size` bytes, with PIPELINING (MAIL, RCPT, DATA in one write), over
 *   STARTTLS, implicit TLS or plaintext; every reply code is checked and the
 *   server certificate is verified against the generated one;
 * - reports MB/s (payload, 10^6 bytes/s), messages/s, server CPU seconds
 *   (utime + stime of /proc/PID/stat, all threads) and peak RSS (VmHWM, reset
 *   through /proc/PID/clear_refs before each round), the median of the rounds,
 *   each metric on its own.
 *
 * The elapsed time of a round runs from the first connect to the last `221`,
 * so it includes the TCP and TLS handshakes; with 10 sessions carrying 100 MiB
 * they are a negligible share. Client and server share the machine's cores:
 * on a small machine the client's own encryption limits the TLS figures too
 * (its CPU seconds are logged per round on stderr).
 *
 * Output: progress on stderr, the machine and one markdown table (mode x
 * runtime) on stdout. Exit code 1 if any round failed.
 *
 * @module
 */
import process from "node:process";
import { Buffer } from "node:buffer";
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import os from "node:os";
import { dirname, join } from "node:path";
import * as tls from "node:tls";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const SELF = fileURLToPath(import.meta.url);
const REPO = join(dirname(SELF), "..", "..");
const TARGET = join(REPO, "scripts", "bench", "tls_target.ts");
const HOST = "127.0.0.1";

/** How the client reaches TLS (or not). */
type Mode = "starttls" | "implicit" | "plain";
/** A runtime the target runs on. */
type Runtime = "deno" | "bun" | "node";

const MODES: readonly Mode[] = ["starttls", "implicit", "plain"];
const RUNTIMES: readonly Runtime[] = ["deno", "bun", "node"];
const MODE_LABEL: Record<Mode, string> = { starttls: "STARTTLS", implicit: "implicit TLS", plain: "plaintext" };

/** What one client process is asked to do (passed as JSON on its command line). */
interface ClientJob {
  readonly port: number;
  readonly mode: Mode;
  readonly sessions: number;
  readonly messages: number;
  readonly size: number;
  /** PEM file of the (self-signed) server certificate, trusted as the only CA. */
  readonly caPath: string;
  /** The round fails after this long, so a stuck server cannot stall the whole benchmark. */
  readonly timeoutMs: number;
}

/** What one client process reports back (one `RESULT {...}` line on stdout). */
interface ClientResult {
  readonly seconds: number;
  readonly messages: number;
  readonly payloadBytes: number;
  /** CPU seconds of the client process during the round. */
  readonly clientCpu: number;
  /** CPU seconds the whole machine spent during the round (/proc/stat), to tell how busy other processes kept it. */
  readonly machineCpu?: number;
  /** Negotiated protocol and cipher (from the first session), `undefined` in plaintext. */
  readonly tls?: string;
}

/** Clock ticks per second of /proc times (`getconf CLK_TCK`; 100 on every usual Linux). */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Busy CPU seconds of the whole machine since boot (all but idle and iowait in /proc/stat); `undefined` off Linux. */
function machineBusySeconds(): number | undefined {
  try {
    const [user, nice, system, , , irq, softirq, steal] = readFileSync("/proc/stat", "latin1").split("\n")[0]
      .trim().split(/\s+/).slice(1).map(Number);
    return (user + nice + system + irq + softirq + steal) / CLK_TCK;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// client side: runs in a Node child process

/** One SMTP reply: its code and all its lines. */
interface Reply {
  readonly code: number;
  readonly lines: readonly string[];
}

/**
 * Reads SMTP replies off a socket. Replies are tiny next to the messages, so
 * a latin1 string buffer is simpler than scanning bytes and costs nothing.
 */
class ReplyReader {
  #buffer = "";
  #lines: string[] = [];
  #replies: Reply[] = [];
  #waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void } | undefined;
  #failure: Error | undefined;
  readonly #socket: net.Socket;
  readonly #onData = (chunk: Buffer) => this.#parse(chunk.toString("latin1"));
  readonly #onError = (err: Error) => this.#fail(err);
  readonly #onClose = () => this.#fail(new Error("connection closed by the server"));

  constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on("data", this.#onData).on("error", this.#onError).on("close", this.#onClose);
  }

  /** Stops reading (before STARTTLS hands the socket to TLS). */
  detach(): void {
    this.#socket.off("data", this.#onData).off("error", this.#onError).off("close", this.#onClose);
    if (this.#buffer !== "" || this.#replies.length > 0) throw new Error("server sent data after the STARTTLS 220");
  }

  /** The next reply, which must have code `code`; `what` names it in the error. */
  async expect(code: number, what: string): Promise<Reply> {
    const reply = await this.#next();
    if (reply.code !== code) {
      throw new Error(`${what}: expected ${code}, got ${JSON.stringify(reply.lines.join(" | "))}`);
    }
    return reply;
  }

  #next(): Promise<Reply> {
    const ready = this.#replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => this.#waiting = { resolve, reject });
  }

  #parse(text: string): void {
    this.#buffer += text;
    let end: number;
    while ((end = this.#buffer.indexOf("\r\n")) >= 0) {
      const line = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(end + 2);
      this.#lines.push(line);
      // "250-..." continues a reply, "250 ..." (or a bare "250") ends it.
      if (line.length > 3 && line[3] === "-") continue;
      const reply = { code: Number(line.slice(0, 3)), lines: this.#lines };
      this.#lines = [];
      const waiting = this.#waiting;
      this.#waiting = undefined;
      if (waiting) waiting.resolve(reply);
      else this.#replies.push(reply);
    }
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.reject(err);
  }
}

/**
 * The message, exactly `size` bytes: headers and a base64-looking body in
 * 76-byte CRLF lines (no line starts with a dot, so nothing needs stuffing),
 * then the `.` line. Built once; every message is the same bytes, so the
 * client spends its CPU on the socket, not on making mail.
 */
function buildMessage(size: number): Buffer {
  const headers = "From: <bench@client.test>\r\nTo: <sink@server.test>\r\nSubject: TLS throughput\r\n" +
    "MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n";
  const filler = randomBytes(size).toString("base64");
  const lines: string[] = [];
  let left = size - headers.length;
  let at = 0;
  while (left > 0) {
    // 74 characters + CRLF; the last line takes what is left, and the one before it leaves at least "x\r\n".
    const length = left <= 76 ? left - 2 : left - 76 < 3 ? left - 5 : 74;
    lines.push(filler.slice(at, at + length) + "\r\n");
    at += length;
    left -= length + 2;
  }
  const message = Buffer.from(headers + lines.join("") + ".\r\n", "latin1");
  if (message.length !== size + 3) throw new Error(`built a message of ${message.length - 3} bytes, not ${size}`);
  return message;
}

/** Opens a TLS connection on `socket` (STARTTLS) or to the port (implicit), verifying the server certificate. */
function connectTls(job: ClientJob, ca: string, socket?: net.Socket): tls.TLSSocket {
  // `host` (an IP, so no SNI is sent) is what the certificate's subjectAltName IP:127.0.0.1 is checked against.
  const options: tls.ConnectionOptions = { host: HOST, ca, rejectUnauthorized: true };
  return socket ? tls.connect({ ...options, socket }) : tls.connect({ ...options, port: job.port });
}

/** One SMTP session that sends `count` messages; returns the negotiated TLS protocol and cipher, if any. */
async function clientSession(job: ClientJob, ca: string, count: number, message: Buffer): Promise<string | undefined> {
  let socket: net.Socket = job.mode === "implicit" ? connectTls(job, ca) : net.connect({ host: HOST, port: job.port });
  socket.setNoDelay(true);
  let reader = new ReplyReader(socket);
  await reader.expect(220, "greeting");
  socket.write("EHLO client.test\r\n");
  let ehlo = await reader.expect(250, "EHLO");
  if (job.mode === "starttls") {
    if (!ehlo.lines.some((l) => /^250[ -]STARTTLS$/i.test(l))) throw new Error("STARTTLS is not advertised");
    socket.write("STARTTLS\r\n");
    await reader.expect(220, "STARTTLS");
    reader.detach();
    socket = connectTls(job, ca, socket);
    reader = new ReplyReader(socket);
    await new Promise<void>((resolve, reject) => socket.once("secureConnect", resolve).once("error", reject));
    // RFC 3207: the session starts over after the handshake.
    socket.write("EHLO client.test\r\n");
    ehlo = await reader.expect(250, "EHLO after STARTTLS");
  }
  if (!ehlo.lines.some((l) => /^250[ -]PIPELINING$/i.test(l))) throw new Error("PIPELINING is not advertised");
  const group = "MAIL FROM:<bench@client.test>\r\nRCPT TO:<sink@server.test>\r\nDATA\r\n";
  for (let i = 0; i < count; i++) {
    socket.write(group);
    await reader.expect(250, "MAIL FROM");
    await reader.expect(250, "RCPT TO");
    await reader.expect(354, "DATA");
    // One write: Node buffers what the kernel does not take yet; the 250 comes only after the last byte anyway.
    socket.write(message);
    await reader.expect(250, `end of message ${i + 1}`);
  }
  socket.write("QUIT\r\n");
  await reader.expect(221, "QUIT");
  const tlsInfo = socket instanceof tls.TLSSocket
    ? `${socket.getProtocol()} ${socket.getCipher().standardName}`
    : undefined;
  socket.end();
  return tlsInfo;
}

/** Runs one round: every session at once, timed from the first connect to the last `221`. */
async function runClient(job: ClientJob): Promise<ClientResult> {
  const ca = readFileSync(job.caPath, "utf8");
  const message = buildMessage(job.size);
  // Messages spread as evenly as they go; sessions left with none are not opened.
  const counts = Array.from(
    { length: job.sessions },
    (_, i) => Math.floor(job.messages / job.sessions) + (i < job.messages % job.sessions ? 1 : 0),
  ).filter((n) => n > 0);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`round not done after ${job.timeoutMs} ms`)), job.timeoutMs);
  });
  const cpu0 = process.cpuUsage();
  const machine0 = machineBusySeconds();
  const t0 = performance.now();
  const tlsInfos = await Promise.race([
    Promise.all(counts.map((n) => clientSession(job, ca, n, message))),
    timeout,
  ]).finally(() => clearTimeout(timer));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const machine1 = machineBusySeconds();
  return {
    seconds,
    messages: job.messages,
    payloadBytes: job.messages * job.size,
    clientCpu: (cpu.user + cpu.system) / 1e6,
    machineCpu: machine0 === undefined || machine1 === undefined ? undefined : machine1 - machine0,
    tls: tlsInfos[0],
  };
}

// ---------------------------------------------------------------------------
// orchestrator side

/** CPU seconds (user + system, all threads) process `pid` has used so far. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  // The command name (field 2) may hold spaces: count fields after its closing parenthesis (utime, stime are 14, 15).
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Peak resident memory (VmHWM) of `pid`, bytes. */
function peakRss(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "latin1"));
  if (!m) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** Resets VmHWM to the current RSS, so each round's peak is its own; false if the kernel refuses. */
function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** A child process with its output collected (the last 16 KiB of each stream, for error messages). */
interface Child {
  readonly pid: number;
  readonly exited: Promise<number>;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first stdout line starting with `prefix`; rejects on exit or after `timeoutMs`. */
  line(prefix: string, timeoutMs: number): Promise<string>;
  /** SIGTERM, then SIGKILL after 3 s; resolves once it has exited. */
  stop(): Promise<void>;
}

function startChild(command: string, args: readonly string[]): Child {
  const proc = spawn(command, args, { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  let wake: () => void = () => {};
  proc.stdout!.on("data", (chunk: Buffer) => {
    out = (out + chunk.toString("utf8")).slice(-16384);
    wake();
  });
  proc.stderr!.on("data", (chunk: Buffer) => err = (err + chunk.toString("utf8")).slice(-16384));
  let done = false;
  const exited = new Promise<number>((resolve) => {
    proc.on("error", (e) => {
      err += `\nspawn ${command} failed: ${e.message}`;
      done = true;
      resolve(-1);
      wake();
    });
    // 'close' rather than 'exit': by then stdout and stderr are read to the end.
    proc.on("close", (code) => {
      done = true;
      resolve(code ?? -1);
      wake();
    });
  });
  return {
    pid: proc.pid ?? -1,
    exited,
    stdout: () => out,
    stderr: () => err,
    line(prefix, timeoutMs) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          wake = () => {};
          reject(new Error(`no "${prefix}" line after ${timeoutMs} ms`));
        }, timeoutMs);
        wake = () => {
          const found = out.split("\n").find((l, i, all) => l.startsWith(prefix) && i < all.length - 1);
          if (found === undefined && !done) return;
          clearTimeout(timer);
          wake = () => {};
          if (found !== undefined) resolve(found);
          else reject(new Error(`exited before printing "${prefix}"`));
        };
        wake();
      });
    },
    async stop() {
      if (done) return;
      proc.kill("SIGTERM");
      const kill = setTimeout(() => proc.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(kill);
    },
  };
}

/** The command line that runs `script` on `runtime`. */
function command(runtime: Runtime, script: string, args: readonly string[]): [string, string[]] {
  switch (runtime) {
    case "deno":
      return [join(REPO, "node_modules", ".bin", "deno"), ["run", "-A", script, ...args]];
    case "bun":
      return [join(REPO, "node_modules", ".bin", "bun"), [script, ...args]];
    case "node":
      // `--import tsx` compiles in-process, so the child's pid is the server's own (the tsx CLI would fork).
      return ["node", ["--import", "tsx", script, ...args]];
  }
}

/** Runs one client process (Node) against `job`; rejects with its stderr when it fails. */
async function round(job: ClientJob): Promise<ClientResult> {
  const [cmd, args] = command("node", SELF, ["--client", JSON.stringify(job)]);
  const client = startChild(cmd, args);
  try {
    // The client enforces job.timeoutMs itself; the extra 30 s cover its start-up and a client that hangs anyway.
    const line = await client.line("RESULT ", job.timeoutMs + 30_000);
    return JSON.parse(line.slice("RESULT ".length)) as ClientResult;
  } catch (err) {
    await client.exited.catch(() => {});
    throw new Error(
      `client failed (${(err as Error).message}): ${client.stderr().trim().split("\n").pop()}`,
    );
  } finally {
    await client.stop();
  }
}

/** One measured round as the table sees it. */
interface Sample {
  readonly mbps: number;
  readonly msgps: number;
  readonly serverCpu: number;
  readonly peakRss: number;
}

/** A table cell: the medians, or why there are none. */
type Cell = {
  readonly ok: true;
  readonly median: Sample;
  readonly tls?: string;
  /** Per round: cores that processes other than this server and client kept busy (a noisy machine shows here). */
  readonly otherCores: readonly number[];
} | {
  readonly ok: false;
  readonly error: string;
};

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

interface Config {
  readonly sessions: number;
  readonly messages: number;
  readonly size: number;
  readonly runs: number;
  readonly warmup: number;
  readonly runtimes: readonly Runtime[];
  readonly modes: readonly Mode[];
  readonly keyType: "ec" | "rsa";
  readonly timeoutMs: number;
}

function log(text: string): void {
  process.stderr.write(`${text}\n`);
}

/** Measures one runtime in one mode, on a fresh server so that no mode inherits another's heap. */
async function measure(config: Config, runtime: Runtime, mode: Mode, certPath: string, keyPath: string): Promise<Cell> {
  const [cmd, args] = command(runtime, TARGET, ["--cert", certPath, "--key", keyPath]);
  const server = startChild(cmd, args);
  try {
    // Generous: the first start of a runtime may compile or cache (tsx, Deno's module graph).
    const ready = await server.line("READY ", 60_000).catch((err: Error) => {
      throw new Error(`${runtime} target did not start (${err.message}): ${server.stderr().trim().slice(-500)}`);
    });
    const [plainPort, tlsPort] = ready.split(" ").slice(1).map(Number);
    const job = (messages: number): ClientJob => ({
      port: mode === "implicit" ? tlsPort : plainPort,
      mode,
      sessions: config.sessions,
      messages,
      size: config.size,
      caPath: certPath,
      timeoutMs: config.timeoutMs,
    });
    if (config.warmup > 0) await round(job(config.warmup));
    const samples: Sample[] = [];
    let tlsInfo: string | undefined;
    const otherCores: number[] = [];
    for (let run = 1; run <= config.runs; run++) {
      const resetOk = resetPeakRss(server.pid);
      const cpu0 = cpuSeconds(server.pid);
      const result = await round(job(config.messages));
      const serverCpu = cpuSeconds(server.pid) - cpu0;
      const sample = {
        mbps: result.payloadBytes / result.seconds / 1e6,
        msgps: result.messages / result.seconds,
        serverCpu,
        peakRss: peakRss(server.pid),
      };
      samples.push(sample);
      tlsInfo ??= result.tls;
      // The server used next to nothing outside the client's window, so its whole delta can be subtracted.
      const other = result.machineCpu === undefined
        ? undefined
        : Math.max(0, result.machineCpu - result.clientCpu - serverCpu) / result.seconds;
      if (other !== undefined) otherCores.push(other);
      log(
        `  ${runtime.padEnd(4)} ${mode.padEnd(8)} run ${run}/${config.runs}: ${sample.mbps.toFixed(1)} MB/s, ` +
          `${sample.msgps.toFixed(1)} msg/s, server CPU ${serverCpu.toFixed(2)} s, client CPU ` +
          `${result.clientCpu.toFixed(2)} s, peak RSS ${(sample.peakRss / 2 ** 20).toFixed(0)} MiB` +
          `${resetOk ? "" : " (since start: clear_refs refused)"}` +
          `${other === undefined ? "" : `, other processes ${other.toFixed(2)} cores`}${
            result.tls ? `, ${result.tls}` : ""
          }`,
      );
    }
    return {
      ok: true,
      tls: tlsInfo,
      otherCores,
      median: {
        mbps: median(samples.map((s) => s.mbps)),
        msgps: median(samples.map((s) => s.msgps)),
        serverCpu: median(samples.map((s) => s.serverCpu)),
        peakRss: median(samples.map((s) => s.peakRss)),
      },
    };
  } catch (err) {
    const error = (err as Error).message;
    log(`  ${runtime} ${mode}: FAILED: ${error}`);
    return { ok: false, error };
  } finally {
    await server.stop();
  }
}

/** Makes the self-signed certificate the servers present and the client trusts; returns [cert, key] paths. */
function makeCertificate(dir: string, keyType: "ec" | "rsa"): [string, string] {
  const certPath = join(dir, "cert.pem");
  const keyPath = join(dir, "key.pem");
  const newkey = keyType === "ec" ? ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] : ["-newkey", "rsa:2048"];
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      ...newkey,
      "-nodes",
      "-keyout",
      keyPath,
      "-out",
      certPath,
      "-days",
      "2",
      "-subj",
      "/CN=localhost",
      "-addext",
      `subjectAltName=IP:${HOST},DNS:localhost`,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  return [certPath, keyPath];
}

function version(runtime: Runtime): string {
  const [cmd] = command(runtime, "", []);
  try {
    const out = execFileSync(cmd, ["--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    return out.trim().split("\n")[0].replace(/^deno\s+/, "").replace(/\s*\(.*\)$/, "");
  } catch {
    return "n/a";
  }
}

function machineLines(config: Config): string[] {
  let cpuModel = os.cpus()[0]?.model ?? "unknown";
  try {
    cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? cpuModel;
  } catch {
    // not Linux: keep what os.cpus() says
  }
  const versions = config.runtimes.map((r) => `${r} ${version(r)}`).join(", ");
  const openssl = (() => {
    try {
      return execFileSync("openssl", ["version"], { encoding: "utf8" }).trim().split(" ").slice(0, 2).join(" ");
    } catch {
      return "openssl n/a";
    }
  })();
  return [
    `Machine: ${os.cpus().length} CPUs (${cpuModel}), ${
      (os.totalmem() / 2 ** 30).toFixed(1)
    } GiB, Linux ${os.release()}`,
    `Runtimes: ${versions}; client: Node ${version("node")}; certificate: ${
      config.keyType === "ec" ? "EC P-256" : "RSA 2048"
    } (${openssl})`,
    `Load: ${config.sessions} concurrent sessions, ${config.messages} messages of ${config.size} bytes per round ` +
    `(PIPELINING), ${config.warmup} warm-up messages, median of ${config.runs} round${config.runs === 1 ? "" : "s"}`,
  ];
}

function table(config: Config, cells: Map<string, Cell>): string[] {
  const rows = [
    `| mode | ${config.runtimes.join(" | ")} |`,
    `| --- | ${config.runtimes.map(() => "---").join(" | ")} |`,
  ];
  for (const mode of config.modes) {
    const row = config.runtimes.map((runtime) => {
      const cell = cells.get(`${runtime}/${mode}`)!;
      if (!cell.ok) return "failed";
      const m = cell.median;
      return `${m.mbps.toFixed(1)} MB/s · ${m.msgps.toFixed(1)} msg/s · ${m.serverCpu.toFixed(2)} s CPU · ` +
        `${(m.peakRss / 2 ** 20).toFixed(0)} MiB`;
    });
    rows.push(`| ${MODE_LABEL[mode]} | ${row.join(" | ")} |`);
  }
  return rows;
}

const HELP = `Usage: deno run -A scripts/bench/tls_throughput.ts [options]

  --sessions N     concurrent SMTP sessions per round (default 10)
  --messages N     messages per round, over all sessions (default 100; --quick: 20)
  --size BYTES     message size (default 1048576)
  --runs N         measured rounds per cell; the table shows the medians (default 3; --quick: 1)
  --warmup N       messages sent before measuring, not counted (default: --sessions)
  --runtimes LIST  comma-separated of deno,bun,node (default all)
  --modes LIST     comma-separated of starttls,implicit,plain (default all)
  --key-type T     ec (P-256, default) or rsa (2048)
  --timeout S      seconds a round may take before it fails (default 120)
  --quick          a fast smoke run: 20 messages, 1 round
`;

function listOption<T extends string>(value: string | undefined, all: readonly T[], name: string): readonly T[] {
  if (value === undefined) return all;
  const items = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const item of items) {
    if (!all.includes(item as T)) throw new Error(`--${name}: unknown "${item}" (one of ${all.join(", ")})`);
  }
  return items as T[];
}

function intOption(value: string | undefined, fallback: number, name: string, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got "${value}"`);
  return n;
}

function parseConfig(argv: string[]): Config | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      sessions: { type: "string" },
      messages: { type: "string" },
      size: { type: "string" },
      runs: { type: "string" },
      warmup: { type: "string" },
      runtimes: { type: "string" },
      modes: { type: "string" },
      "key-type": { type: "string" },
      timeout: { type: "string" },
      quick: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) return undefined;
  const keyType = values["key-type"] ?? "ec";
  if (keyType !== "ec" && keyType !== "rsa") throw new Error(`--key-type must be ec or rsa, got "${keyType}"`);
  const sessions = intOption(values.sessions, 10, "sessions", 1);
  return {
    sessions,
    messages: intOption(values.messages, values.quick ? 20 : 100, "messages", 1),
    // Room for the headers and at least one body line.
    size: intOption(values.size, 1048576, "size", 1024),
    runs: intOption(values.runs, values.quick ? 1 : 3, "runs", 1),
    warmup: intOption(values.warmup, sessions, "warmup", 0),
    runtimes: listOption(values.runtimes, RUNTIMES, "runtimes"),
    modes: listOption(values.modes, MODES, "modes"),
    keyType,
    timeoutMs: intOption(values.timeout, 120, "timeout", 1) * 1000,
  };
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv[0] === "--client") {
    try {
      const result = await runClient(JSON.parse(argv[1]) as ClientJob);
      process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
      return 0;
    } catch (err) {
      // One line, the last of stderr: the orchestrator quotes it in the failed cell's message.
      process.stderr.write(`client: ${(err as Error).message}\n`);
      return 1;
    }
  }
  const config = parseConfig(argv);
  if (!config) {
    process.stdout.write(HELP);
    return 0;
  }
  const started = performance.now();
  const dir = mkdtempSync(join(os.tmpdir(), "midi-smtp-tls-bench-"));
  try {
    const [certPath, keyPath] = makeCertificate(dir, config.keyType);
    const cells = new Map<string, Cell>();
    for (const runtime of config.runtimes) {
      for (const mode of config.modes) {
        log(`${runtime} / ${MODE_LABEL[mode]}`);
        cells.set(`${runtime}/${mode}`, await measure(config, runtime, mode, certPath, keyPath));
      }
    }
    const tlsUsed = config.runtimes.flatMap((runtime) => {
      const cell = [...config.modes].filter((m) => m !== "plain").map((m) => cells.get(`${runtime}/${m}`)!)
        .find((c) => c.ok && c.tls);
      return cell?.ok && cell.tls ? [`${runtime} ${cell.tls}`] : [];
    });
    const others = [...cells.values()].flatMap((c) => c.ok ? c.otherCores : []);
    const lines = [
      ...machineLines(config),
      ...(tlsUsed.length ? [`Negotiated: ${tlsUsed.join("; ")}`] : []),
      ...(others.length
        ? [
          `Other processes kept a median ${median(others).toFixed(2)} (max ${Math.max(...others).toFixed(2)}) of ` +
          `${os.cpus().length} cores busy during the rounds${
            median(others) > 0.2 ? ": the machine was not quiet" : ""
          }`,
        ]
        : []),
      "",
      "Each cell: payload MB/s (10^6 bytes/s) · messages/s · server CPU seconds per round · server peak RSS.",
      "",
      ...table(config, cells),
      "",
      `Total time ${((performance.now() - started) / 1000).toFixed(0)} s.`,
    ];
    process.stdout.write(lines.join("\n") + "\n");
    return [...cells.values()].every((c) => c.ok) ? 0 : 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then((code) => process.exit(code), (err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
