/**
 * A real Postfix (Debian's `postfix` package) as a client of test servers,
 * for interop tests: mail submitted to a private Postfix instance is relayed
 * to the server by Postfix's own SMTP client (`mode: "smtp"`, through
 * `relayhost`), or delivered by its LMTP client (`mode: "lmtp"`, through
 * `default_transport`).
 *
 * Each instance lives in a scratch folder: its own config directory (main.cf
 * and master.cf written here), queue and data directories and maillog file.
 * Postfix's master runs in the foreground (`master -c <dir> -d`) as a child
 * process of the test (in a process group of its own), so the test owns it:
 * no `postfix start`, no `alternate_config_directories` in a system-wide
 * main.cf, no `postmulti`. Stopping it (SIGTERM) stops its daemons.
 * `postfix -c <dir> check` (run as root, it needs no system-wide main.cf)
 * first creates the queue directories with their owners and modes.
 * `postqueue -c <dir>` flushes and lists the queue.
 *
 * The instance listens only on 127.0.0.1 (an smtpd on a free port, for
 * {@link RunningPostfix.submit}), does no DNS and retries deferred mail
 * within 1-3 seconds.
 *
 * Needs root (the master starts as root and runs its daemons as `postfix`).
 * A missing Postfix makes the tests skip outside CI and fail under CI (which
 * installs it): see {@link postfixMissing}.
 */
import { execFile } from "node:child_process";
import { Buffer } from "node:buffer";
import { chmodSync, existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import process from "node:process";
import { listensOnLoopback, startDaemon } from "./daemon.ts";
import { RawClient, type Reply } from "./helpers.ts";
import { type Scratch, scratchFolder } from "./scratch.ts";
import { freePort } from "./ports.ts";

/** Postfix's master daemon (`daemon_directory` of Debian's package). */
export const POSTFIX_MASTER = "/usr/lib/postfix/sbin/master";
/** The `postfix` command (used for `postfix -c <dir> check`). */
export const POSTFIX = "/usr/sbin/postfix";
/** The `postqueue` command (flush and list the queue). */
export const POSTQUEUE = "/usr/sbin/postqueue";

const INSTALL = "`apt-get install --no-install-recommends postfix` (with debconf's " +
  "postfix/main_mailer_type set to `No configuration`; CI does)";

/** Why Postfix cannot run here (a binary missing, or not root), `undefined` when it can. */
function whyNot(): string | undefined {
  for (const bin of [POSTFIX_MASTER, POSTFIX, POSTQUEUE]) {
    if (!existsSync(bin)) return `${bin} not found: ${INSTALL} to run the Postfix tests`;
  }
  // The master must start as root: it binds, then runs its daemons as mail_owner.
  if (typeof process.getuid === "function" && process.getuid() !== 0) {
    return "the Postfix tests run Postfix's master, which needs root";
  }
  return undefined;
}

/**
 * Why the Postfix tests cannot run on this machine, or `false` when they can.
 * Under CI (the `CI` variable set) a missing Postfix throws instead: CI
 * installs it, so there they must run, never skip. Elsewhere (a machine with
 * only Node.js and npm, as the README's quick start promises) they are
 * reported as skipped, naming the package to install.
 */
export function postfixMissing(): string | false {
  const why = whyNot();
  if (why === undefined) return false;
  if (process.env.CI) assertPostfixInstalled();
  return why;
}

/** Throws, saying how to install it, when Postfix is missing (or cannot run here). */
export function assertPostfixInstalled(): void {
  const why = whyNot();
  if (why !== undefined) throw new Error(`Postfix interop tests: ${why}`);
}

/** How Postfix hands mail to the server. */
export type PostfixMode = "smtp" | "lmtp";

/**
 * Where the server listens: a TCP port on 127.0.0.1 (`host` another loopback
 * address), or, for LMTP only, a Unix socket. Postfix's LMTP client runs as
 * `postfix`: {@link startPostfix} makes an existing socket world-writable,
 * and its folder must be searchable (see {@link postfixSocketPath}).
 */
export type PostfixTarget = { port: number; host?: string } | { path: string };

/** What {@link startPostfix} runs. */
export interface PostfixOptions {
  /** `"smtp"` (default): `relayhost = [host]:port`. `"lmtp"`: `default_transport = lmtp:inet:host:port` or `lmtp:unix:path`. */
  mode?: PostfixMode;
  /** The server Postfix delivers to. */
  target: PostfixTarget;
  /**
   * Extra main.cf lines (`name = value`), replacing the harness's value of the
   * same name, e.g. `"smtp_send_xforward_command = yes"`,
   * `"lmtp_send_xforward_command = yes"`, `"smtp_tls_security_level = encrypt"`.
   */
  mainCf?: string[];
  /** Extra master.cf lines, appended (e.g. another smtpd listener with `-o` overrides). */
  masterCf?: string[];
  /** Postfix's `myhostname` (its HELO/LHLO name and the host in its Received and Message-ID). Default `postfix.test`. */
  myhostname?: string;
}

/** A DSN `NOTIFY` word (RFC 3461). */
export type DsnNotifyWord = "NEVER" | "SUCCESS" | "FAILURE" | "DELAY";

/** A recipient for {@link RunningPostfix.submit}, with its DSN parameters. */
export interface SubmitRecipient {
  /** The address without angle brackets. */
  address: string;
  /** `NOTIFY=` (joined with commas); overrides {@link SubmitOptions.notify}. */
  notify?: DsnNotifyWord[];
  /** `ORCPT=` value as sent, e.g. `"rfc822;b@example.com"` (xtext-encode with {@link xtext} where needed). */
  orcpt?: string;
}

/** MAIL and RCPT parameters for {@link RunningPostfix.submit}. */
export interface SubmitOptions {
  /** DSN `RET=`. */
  ret?: "FULL" | "HDRS";
  /** DSN `ENVID=` as sent (xtext-encode with {@link xtext} where needed). */
  envid?: string;
  /** DSN `NOTIFY=` for every recipient without its own. */
  notify?: DsnNotifyWord[];
  /** `BODY=` on MAIL (Postfix's smtpd accepts `7BIT` and `8BITMIME`). */
  body?: "7BIT" | "8BITMIME";
  /** `SMTPUTF8` on MAIL: needed for non-ASCII addresses. */
  smtputf8?: boolean;
  /** EHLO name. Default `submitter.test`. */
  ehlo?: string;
}

/** What Postfix's smtpd said to a submission. */
export interface Submitted {
  /** The queue id from `250 2.0.0 Ok: queued as <id>`: its maillog lines start with `<id>: `. */
  queueId: string;
  /** The replies to MAIL, each RCPT and the end of data, in order. */
  replies: Reply[];
}

/** One message in Postfix's queue, as `postqueue -j` prints it (see postqueue(1)). */
export interface QueuedMessage {
  /** `"incoming"`, `"active"`, `"deferred"`, `"hold"` or `"maildrop"`. */
  queue_name: string;
  queue_id: string;
  /** Seconds since the epoch. */
  arrival_time: number;
  message_size: number;
  sender: string;
  recipients: Array<{ address: string; delay_reason?: string }>;
}

/** One delivery attempt of one recipient, from a maillog line of the smtp, lmtp, error or bounce agent. */
export interface PostfixDelivery {
  queueId: string;
  /** The delivery agent, e.g. `"smtp"`, `"lmtp"`, `"error"`. */
  agent: string;
  /** The recipient, without angle brackets. */
  to: string;
  /** `relay=` (e.g. `127.0.0.1[127.0.0.1]:2525`, `none`). */
  relay: string;
  /** The enhanced status code Postfix reports (`dsn=`), e.g. `"2.0.0"`, `"5.1.1"`. */
  dsn: string;
  /** `"sent"`, `"bounced"`, `"deferred"`, `"expired"`, ... */
  status: string;
  /** The text in parentheses after the status: the server's reply, or why the attempt failed. */
  detail: string;
  /** The whole maillog line. */
  line: string;
}

/** A running Postfix instance. */
export interface RunningPostfix {
  /** Port of its smtpd on 127.0.0.1 (open relay for 127.0.0.0/8). */
  readonly smtpPort: number;
  /** Its config directory (main.cf, master.cf). */
  readonly configDir: string;
  /** The main.cf text. */
  readonly mainCf: string;
  /** The master.cf text. */
  readonly masterCf: string;
  /**
   * Submits a message to its smtpd (EHLO, MAIL, RCPT per recipient, DATA) and
   * resolves with the queue id; rejects with the transcript on any non-2xx/3xx
   * reply. `message` is the header and body: a string is sent as UTF-8 with
   * bare LFs made CRLF, bytes are sent as they are; lines starting with a dot
   * are dot-stuffed here.
   */
  submit(
    from: string,
    to: Array<string | SubmitRecipient>,
    message: string | Uint8Array,
    options?: SubmitOptions,
  ): Promise<Submitted>;
  /**
   * `postqueue -f`: asks the queue manager to retry every queued message now.
   * A message whose last delivery agent has not let go of it yet is skipped
   * ("skipped, still being delivered") and put off for 60 s: when the maillog
   * shows that within 300 ms, this flushes again (up to 5 times).
   */
  flush(): Promise<void>;
  /** What is still queued (`postqueue -j`). */
  queue(): Promise<QueuedMessage[]>;
  /** The maillog text so far (`""` before the first line). */
  log(): string;
  /** Delivery attempts read from the maillog, oldest first; only those of `queueId` when given. */
  deliveries(queueId?: string): PostfixDelivery[];
  /**
   * Waits (up to `ms`, default 10 s) until the maillog shows a delivery
   * attempt of `queueId` to `to` with `status`; resolves with it. Rejects with
   * the message's maillog lines on time-out.
   */
  waitForDelivery(queueId: string, to: string, status: string, ms?: number): Promise<PostfixDelivery>;
  /** Waits (up to `ms`, default 10 s) until a maillog line matches `pattern`; resolves with that line. */
  waitForLog(pattern: RegExp, ms?: number): Promise<string>;
  /** Waits (up to `ms`, default 10 s) until the queue is empty. */
  waitForEmptyQueue(ms?: number): Promise<void>;
  /** Stops the master (SIGTERM: it stops its daemons; SIGKILL after 5 s) and waits for it; safe to call twice. */
  stop(): Promise<void>;
}

/** xtext (RFC 3461 4): `+` and `=`, controls, space and non-ASCII as `+XX`, for ENVID and ORCPT values. */
export function xtext(text: string): string {
  let out = "";
  for (const byte of Buffer.from(text, "utf8")) {
    out += byte < 33 || byte > 126 || byte === 0x2b || byte === 0x3d
      ? "+" + byte.toString(16).toUpperCase().padStart(2, "0")
      : String.fromCharCode(byte);
  }
  return out;
}

let scratch: Scratch | undefined;
let instances = 0;

/**
 * The scratch folder of this test file's instances. Made when this module
 * loads (its clean-up is an `after` hook of the importing test file, which
 * must be registered at the top level, not from inside a hook). Searchable by
 * all: Postfix's daemons run as `postfix`, and an LMTP socket may live here.
 */
function scratchDir(): Scratch {
  if (!scratch) {
    scratch = scratchFolder("postfix");
    chmodSync(scratch.dir, 0o755);
  }
  return scratch;
}
// Not where Postfix cannot run: the file then skips or fails at load, and a folder made now could outlive it.
if (whyNot() === undefined) scratchDir();

/**
 * A path for a Unix socket the server listens on for `mode: "lmtp"` with
 * `target: { path }`, in a folder Postfix's LMTP client (running as
 * `postfix`) can reach.
 */
export function postfixSocketPath(name: string): string {
  return scratchDir().path(name);
}

/** Runs `file` with `args`; resolves with stdout, rejects with stderr and the exit status. */
function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { encoding: "utf8", timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(" ")} failed: ${err.message}\n${stderr}${stdout}`));
      else resolve(stdout);
    });
  });
}

/** main.cf and master.cf values are one line each; a newline would start another parameter. */
function oneLine(what: string, text: string): string {
  if (/[\r\n]/.test(text)) throw new TypeError(`${what} must be one line, got ${JSON.stringify(text)}`);
  return text;
}

/** The main.cf parameters of an instance in `dir`, before the caller's lines. */
function mainCfDefaults(dir: string, options: PostfixOptions): Map<string, string> {
  const mode = options.mode ?? "smtp";
  const target = options.target;
  let relayhost = "";
  let defaultTransport = "smtp";
  if ("path" in target) {
    if (mode !== "lmtp") throw new TypeError("target.path (a Unix socket) needs mode lmtp");
    defaultTransport = `lmtp:unix:${target.path}`;
  } else {
    const host = target.host ?? "127.0.0.1";
    if (net.isIPv4(host) === false) throw new TypeError(`target.host must be an IPv4 address, got ${host}`);
    if (mode === "lmtp") defaultTransport = `lmtp:inet:${host}:${target.port}`;
    // Brackets: the host itself, no MX lookup.
    else relayhost = `[${host}]:${target.port}`;
  }
  return new Map([
    // Current defaults, without the compatibility warnings.
    ["compatibility_level", "3.6"],
    ["queue_directory", `${dir}/queue`],
    ["data_directory", `${dir}/data`],
    ["mail_owner", "postfix"],
    ["setgid_group", "postdrop"],
    ["myhostname", options.myhostname ?? "postfix.test"],
    ["myorigin", "$myhostname"],
    // Nothing is delivered locally: every address goes to the server, bounces to the sender included.
    ["mydestination", ""],
    ["local_recipient_maps", ""],
    ["alias_maps", ""],
    ["alias_database", ""],
    ["inet_interfaces", "127.0.0.1"],
    ["inet_protocols", "ipv4"],
    ["mynetworks", "127.0.0.0/8"],
    ["relayhost", relayhost],
    ["default_transport", defaultTransport],
    // No DNS anywhere: targets are IP literals, and the machine may have no resolver.
    ["smtp_dns_support_level", "disabled"],
    ["lmtp_dns_support_level", "disabled"],
    ["smtp_host_lookup", "native"],
    ["lmtp_host_lookup", "native"],
    ["smtpd_peername_lookup", "no"],
    // A deferred message is retried within 1-3 s, not minutes. Not a 1 s backoff: retry times are whole
    // seconds, so the next scan could pick the message up at once, while the delivery agent that just
    // deferred it still holds its lock; the queue manager then logs "skipped, still being delivered" and
    // puts it off for 60 s.
    ["queue_run_delay", "1s"],
    ["minimal_backoff_time", "2s"],
    ["maximal_backoff_time", "4s"],
    ["smtp_connect_timeout", "5s"],
    ["lmtp_connect_timeout", "5s"],
    // Submissions are not slowed down while the queue is busy.
    ["in_flow_delay", "0"],
    ["biff", "no"],
    // Logs to a file of this instance (through postlogd), not syslog: the machine may have none.
    ["maillog_file", `${dir}/maillog`],
    ["maillog_file_prefixes", dir],
  ]);
}

/** The master.cf text: one smtpd on 127.0.0.1:`smtpPort`, the services a relay needs, none chrooted. */
function masterCfText(smtpPort: number, extra: string[]): string {
  const services = [
    `127.0.0.1:${smtpPort} inet n - n - - smtpd`,
    "pickup    unix  n - n 60 1 pickup",
    "cleanup   unix  n - n - 0 cleanup",
    "qmgr      unix  n - n 300 1 qmgr",
    "tlsmgr    unix  - - n 1000? 1 tlsmgr",
    "rewrite   unix  - - n - - trivial-rewrite",
    "bounce    unix  - - n - 0 bounce",
    "defer     unix  - - n - 0 bounce",
    "trace     unix  - - n - 0 bounce",
    "verify    unix  - - n - 1 verify",
    "flush     unix  n - n 1000? 0 flush",
    "proxymap  unix  - - n - - proxymap",
    "proxywrite unix - - n - 1 proxymap",
    "smtp      unix  - - n - - smtp",
    "relay     unix  - - n - - smtp",
    "showq     unix  n - n - - showq",
    "error     unix  - - n - - error",
    "retry     unix  - - n - - error",
    "discard   unix  - - n - - discard",
    "lmtp      unix  - - n - - lmtp",
    "anvil     unix  - - n - 1 anvil",
    "scache    unix  - - n - 1 scache",
    "postlog   unix-dgram n - n - 1 postlogd",
  ];
  return ["# written by tests/postfix.ts", ...services, ...extra.map((l) => oneLine("a master.cf line", l)), ""]
    .join("\n");
}

const MAIN_CF_LINE = /^\s*([a-z0-9_]+)\s*=\s*(.*?)\s*$/;
// Any syslog_name (a caller may set one), short or long queue ids (enable_long_queue_ids).
const DELIVERY =
  /\/([a-z]+)\[\d+\]: ([0-9A-Za-z]+): to=<([^>]*)>,(?: orig_to=<[^>]*>,)? relay=([^,]+), .*?dsn=([0-9.]+), status=([a-z]+) \((.*)\)$/;
const READY_DEADLINE_MS = 10_000;
const STOP_GRACE_MS = 5_000;

/** Polls `check` every 25 ms until it returns something, or rejects with `what()` after `ms`. */
async function poll<T>(
  check: () => T | undefined | Promise<T | undefined>,
  ms: number,
  what: () => string,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = await check();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** `message` as the DATA payload: CRLF line ends, dots stuffed, ending with CRLF . CRLF; latin1, one char per byte. */
function dataPayload(message: string | Uint8Array): string {
  let text = typeof message === "string"
    ? Buffer.from(message.replace(/\r?\n/g, "\r\n"), "utf8").toString("latin1")
    : Buffer.from(message).toString("latin1");
  if (text.length > 0 && !text.endsWith("\r\n")) text += "\r\n";
  return text.replace(/^\./gm, "..") + ".\r\n";
}

/** A command line as latin1 (one char per byte), so that UTF-8 addresses go out as UTF-8. */
function latin1(line: string): string {
  return Buffer.from(line, "utf8").toString("latin1");
}

/**
 * Writes an instance's config into a new folder of the scratch folder, runs
 * `postfix check` (creates the queue directories), starts the master in the
 * foreground and resolves once its smtpd listens (at most 10 s). Rejects with
 * the config and whatever Postfix said if it fails to start.
 */
export async function startPostfix(options: PostfixOptions): Promise<RunningPostfix> {
  assertPostfixInstalled();
  const dir = scratchDir().path(`instance-${++instances}`);
  const configDir = `${dir}/etc`;
  mkdirSync(configDir, { recursive: true });
  // `postfix check` chdirs into the queue directory first; it creates the rest (data_directory too).
  mkdirSync(`${dir}/queue`);
  const smtpPort = await freePort();

  const params = mainCfDefaults(dir, options);
  for (const line of options.mainCf ?? []) {
    const m = MAIN_CF_LINE.exec(oneLine("a main.cf line", line));
    if (!m) throw new TypeError(`a main.cf line is "name = value", got ${JSON.stringify(line)}`);
    params.set(m[1], m[2]);
  }
  const mainCf = ["# written by tests/postfix.ts", ...[...params].map(([k, v]) => `${k} = ${v}`), ""].join("\n");
  const masterCf = masterCfText(smtpPort, options.masterCf ?? []);
  writeFileSync(`${configDir}/main.cf`, mainCf);
  writeFileSync(`${configDir}/master.cf`, masterCf);
  // Postfix re-reads a config file every 300 ms until its mtime is over a second old (it might still be
  // being edited): dated back a minute, it is read once, which saves two seconds per start.
  const past = new Date(Date.now() - 60_000);
  for (const file of ["main.cf", "master.cf"]) utimesSync(`${configDir}/${file}`, past, past);
  // Postfix's LMTP client runs as `postfix`; connecting to a Unix socket needs write permission on it.
  if ("path" in options.target && existsSync(options.target.path)) chmodSync(options.target.path, 0o666);

  const maillog = `${dir}/maillog`;
  const log = () => existsSync(maillog) ? readFileSync(maillog, "utf8") : "";
  const failure = (why: string, output = "") =>
    new Error(
      `Postfix ${why}\n--- ${configDir}/main.cf ---\n${mainCf}\n--- master.cf ---\n${masterCf}` +
        `\n--- output ---\n${output}\n--- maillog ---\n${log()}`,
    );

  // Creates queue/ and its subfolders with Postfix's owners and modes, and reports config errors on stderr
  // (the master itself logs them to syslog, which may be missing, before it reads maillog_file).
  try {
    await run(POSTFIX, ["-c", configDir, "check"]);
  } catch (err) {
    throw failure("check failed", (err as Error).message);
  }

  // -d: keep stdout and stderr for diagnostics (the master never forks: it stays the child). With -d the master
  // skips its setsid(), so `detached` makes it a process group leader: on SIGTERM it kills its group (its
  // daemons), which would fail ("kill process group: No such process") in the test runner's group.
  const master = startDaemon(POSTFIX_MASTER, ["-c", configDir, "-d"], {
    detached: true,
    graceMs: STOP_GRACE_MS,
    // A runner that ends the process early must not leave Postfix behind. SIGTERM, not SIGKILL: the master
    // then stops its daemons too (they also exit on their own once the master is gone).
    exitSignal: "SIGTERM",
  });
  const { stop, output } = master;

  try {
    await poll(
      () => {
        const spawnError = master.spawnError();
        if (spawnError) throw failure(`master could not be started: ${spawnError.message}`, output());
        const exited = master.exited();
        if (exited) throw failure(`master exited early (code ${exited.code}, signal ${exited.signal})`, output());
        // The master holds the smtpd's listening socket (its smtpd processes inherit it).
        return listensOnLoopback(master.child.pid, smtpPort) || undefined;
      },
      READY_DEADLINE_MS,
      () => `Postfix's smtpd not listening on 127.0.0.1:${smtpPort}`,
    );
  } catch (err) {
    await stop();
    throw err instanceof Error && err.message.startsWith("Postfix") ? err : failure((err as Error).message, output());
  }

  const deliveries = (queueId?: string): PostfixDelivery[] => {
    const found: PostfixDelivery[] = [];
    for (const line of log().split("\n")) {
      const m = DELIVERY.exec(line);
      if (!m || (queueId !== undefined && m[2] !== queueId)) continue;
      found.push({ agent: m[1], queueId: m[2], to: m[3], relay: m[4], dsn: m[5], status: m[6], detail: m[7], line });
    }
    return found;
  };
  const linesOf = (queueId: string) => log().split("\n").filter((l) => l.includes(`: ${queueId}: `)).join("\n");
  const queue = async (): Promise<QueuedMessage[]> =>
    (await run(POSTQUEUE, ["-c", configDir, "-j"])).split("\n").filter((l) => l.trim() !== "").map((l) =>
      JSON.parse(l) as QueuedMessage
    );

  const submit = async (
    from: string,
    to: Array<string | SubmitRecipient>,
    message: string | Uint8Array,
    opts: SubmitOptions = {},
  ): Promise<Submitted> => {
    const client = await RawClient.connect(smtpPort);
    let transcript = "";
    const replies: Reply[] = [];
    /** Sends `line` and checks the reply's class: 2xx, or 3xx for DATA. */
    const step = async (line: string, want: 2 | 3 = 2, keep = true): Promise<Reply> => {
      transcript += `C: ${line}\n`;
      const r = await client.command(latin1(line));
      transcript += r.raw.replace(/^/gm, "S: ").replace(/\r\n(S: )?$/, "\n").replace(/\r\n/g, "\n");
      if (Math.floor(r.code / 100) !== want) throw new Error(`Postfix's smtpd refused ${line}:\n${transcript}`);
      if (keep) replies.push(r);
      return r;
    };
    try {
      const greeting = await client.expect(220);
      transcript += `S: ${greeting.raw}`;
      await step(`EHLO ${opts.ehlo ?? "submitter.test"}`, 2, false);
      let mail = `MAIL FROM:<${from}>`;
      if (opts.body) mail += ` BODY=${opts.body}`;
      if (opts.smtputf8) mail += " SMTPUTF8";
      if (opts.ret) mail += ` RET=${opts.ret}`;
      if (opts.envid !== undefined) mail += ` ENVID=${opts.envid}`;
      await step(mail);
      for (const rcpt of to) {
        const r: SubmitRecipient = typeof rcpt === "string" ? { address: rcpt } : rcpt;
        let line = `RCPT TO:<${r.address}>`;
        const notify = r.notify ?? opts.notify;
        if (notify) line += ` NOTIFY=${notify.join(",")}`;
        if (r.orcpt !== undefined) line += ` ORCPT=${r.orcpt}`;
        await step(line);
      }
      await step("DATA", 3, false);
      transcript += "C: <message>\nC: .\n";
      await client.send(dataPayload(message));
      const done = await client.reply(10_000);
      transcript += `S: ${done.raw}`;
      if (done.code !== 250) throw new Error(`Postfix's smtpd refused the message:\n${transcript}`);
      replies.push(done);
      const queued = /queued as ([0-9A-Za-z]+)/.exec(done.raw);
      if (!queued) throw new Error(`no queue id in ${JSON.stringify(done.raw)}`);
      await client.command("QUIT").catch(() => undefined);
      return { queueId: queued[1], replies };
    } finally {
      client.close();
    }
  };

  return {
    smtpPort,
    configDir,
    mainCf,
    masterCf,
    submit,
    async flush() {
      const skipped = () => log().split("\n").filter((l) => l.endsWith(": skipped, still being delivered")).length;
      for (let attempt = 1;; attempt++) {
        const before = skipped();
        await run(POSTQUEUE, ["-c", configDir, "-f"]);
        await new Promise((r) => setTimeout(r, 300));
        if (skipped() === before || attempt === 5) return;
      }
    },
    queue,
    log,
    deliveries,
    waitForDelivery: (queueId, to, status, ms = 10_000) =>
      poll(
        () => deliveries(queueId).find((d) => d.to === to && d.status === status),
        ms,
        () => `Postfix: no status=${status} for ${queueId} to <${to}>; its maillog lines:\n${linesOf(queueId)}`,
      ),
    waitForLog: (pattern, ms = 10_000) =>
      poll(
        () => log().split("\n").find((l) => pattern.test(l)),
        ms,
        () => `no maillog line matches ${pattern}; maillog:\n${log()}`,
      ),
    async waitForEmptyQueue(ms = 10_000) {
      let last: QueuedMessage[] = [];
      await poll(
        async () => {
          last = await queue();
          return last.length === 0 || undefined;
        },
        ms,
        () => `Postfix's queue is not empty: ${JSON.stringify(last)}`,
      );
    },
    stop,
  };
}
