/**
 * The soak's client populations. Each is a function that runs one client
 * session (a connection, or a few for the flood) and returns when it has
 * ended; the load generator runs each population's workers in a loop until
 * the load phase is over. Every reply is checked against what the step
 * allows ({@link Dialog}); every message a well-behaved client sends carries
 * an id, and only a `250` after its final dot makes the client record it.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { buildMessage, dotStuff } from "../bench/lib/message.ts";
import { type Endpoint, SmtpConn } from "./conn.ts";
import { bump, CLOSED, Dialog, type Tally } from "./tally.ts";
import {
  AUTH_PASSWORD,
  AUTH_USER,
  CLAIMED_IP_HEADER,
  DELAY_HEADER,
  type HookMode,
  ID_HEADER,
  MODE_HEADER,
  PROXIED_V4,
  PROXIED_V6,
  SOURCES,
} from "./plan.ts";

/** Shared state of one load-generator run. */
export interface Run {
  /** The plain listener. */
  readonly host: string;
  readonly port: number;
  /** The listener that requires PROXY headers. */
  readonly proxyPort: number;
  readonly tally: Tally;
  /** Prefix of every message id of this run (phase and a nonce). */
  readonly idPrefix: string;
  /** When the run started (Date.now()). */
  readonly startedAt: number;
  /** Whether the load phase is over (workers finish their session and stop). */
  stopping(): boolean;
  /** Records how long a well-behaved client waited from connecting to its greeting. */
  greeted(ms: number): void;
  /** Records a message the server acknowledged with 250. */
  ack(pop: string, id: string): void;
  /** Every connection open now (destroyed at the hard stop). */
  readonly open: Set<SmtpConn>;
}

const CONNECT_TIMEOUT_MS = 10_000;
/** A greeting may wait for a slot (queueTimeout 5 s) plus the greeting delay, on a busy machine. */
const GREETING_MS = 20_000;
/** A command reply: hooks (hookTimeout 2 s), the tarpit (2 s at most per reply), a busy machine. */
const REPLY_MS = 15_000;
/** Idle or trickling clients: the server must close them within its timeouts (5 and 10 s) plus this slack. */
const SERVER_CLOSES_MS = 20_000;

const rand = (n: number) => Math.floor(Math.random() * n);
const pick = <T>(list: readonly T[]): T => list[rand(list.length)];
const chance = (p: number) => Math.random() < p;
const b64 = (s: string) => Buffer.from(s, "latin1").toString("base64");

let seq = 0;
function newId(run: Run, pop: string): string {
  return `${run.idPrefix}${pop}-${++seq}`;
}

/** Opens a connection from `localAddress` to `port`; on failure counts it and returns undefined. */
async function open(run: Run, pop: string, localAddress: string, port = run.port): Promise<Dialog | undefined> {
  const endpoint: Endpoint = { host: run.host, port, localAddress };
  const conn = await SmtpConn.open(endpoint, CONNECT_TIMEOUT_MS);
  if (typeof conn === "string") {
    bump(run.tally.connectErrors, `${pop} ${conn}`);
    return undefined;
  }
  run.open.add(conn);
  return new Dialog(run.tally, pop, conn);
}

function done(run: Run, d: Dialog): void {
  d.close();
  run.open.delete(d.conn);
}

// ---- messages ------------------------------------------------------------------------------

const bodies = new Map<number, Buffer>();
/** A dot-stuffed message body of `size` bytes (the benchmark's generator), cached per size. */
function body(size: number): Buffer {
  let b = bodies.get(size);
  if (!b) {
    b = Buffer.from(dotStuff(buildMessage(size)));
    bodies.set(size, b);
  }
  return b;
}

const SIZES = [600, 600, 2000, 2000, 2000, 8000, 8000, 30_000, 120_000, 500_000];

/** The bytes of a message and its terminating dot. */
function messageBytes(
  id: string,
  mode: HookMode,
  opts: { size?: number; delayMs?: number; claimedIp?: string } = {},
): Buffer {
  const lines = [`${ID_HEADER}: ${id}`, `${MODE_HEADER}: ${mode}`];
  if (opts.delayMs !== undefined) lines.push(`${DELAY_HEADER}: ${opts.delayMs}`);
  if (opts.claimedIp !== undefined) lines.push(`${CLAIMED_IP_HEADER}: ${opts.claimedIp}`);
  return Buffer.concat([
    Buffer.from(lines.join("\r\n") + "\r\n", "latin1"),
    body(opts.size ?? pick(SIZES)),
    Buffer.from(".\r\n", "latin1"),
  ]);
}

/** A hook mode for a well-behaved client's message: mostly accepted, some slow, a few failing or hanging. */
function goodMode(): { mode: HookMode; delayMs?: number } {
  const x = Math.random();
  if (x < 0.84) return { mode: "ok" };
  if (x < 0.92) return { mode: "slow", delayMs: 200 + rand(800) };
  if (x < 0.94) return { mode: "fail" };
  if (x < 0.96) return { mode: "fail-async" };
  if (x < 0.98) return { mode: "hang" };
  return { mode: "hang-signal" };
}

/** The reply the final dot must get for each mode. */
const DOT_REPLY: Record<HookMode, number> = {
  "ok": 250,
  "slow": 250,
  "fail": 451,
  "fail-async": 451,
  "hang": 421,
  "hang-signal": 421,
};

// ---- well-behaved senders ------------------------------------------------------------------

/** A message waiting to be sent, with its attempts so far (a retry keeps the id, as an MTA's queue does). */
interface Pending {
  readonly id: string;
  attempts: number;
}

/** Messages of one well-behaved worker: new ones, and the ones to retry after a temporary failure. */
export class Outbox {
  #retry: Pending[] = [];
  constructor(readonly run: Run, readonly pop: string) {}

  next(): Pending {
    return this.#retry.shift() ?? { id: newId(this.run, this.pop), attempts: 0 };
  }

  /** A temporary failure (or an unknown outcome): try again later, up to 5 attempts. */
  retry(m: Pending): void {
    if (++m.attempts < 5) this.#retry.push(m);
    else bump(this.run.tally.givenUp, this.pop);
  }
}

/** What a well-behaved session does. */
export interface GoodPlan {
  readonly pop: string;
  readonly source: string;
  readonly outbox: Outbox;
  /** Messages per connection. */
  readonly batch: number;
  /** Send MAIL, the RCPTs and DATA in one write. */
  readonly pipelined: boolean;
  /** Authenticate first (PLAIN or LOGIN). */
  readonly auth: boolean;
  /** Seconds to wait before each command (a slow but legitimate client). */
  readonly thinkMs?: number;
  /** Only `ok` messages. */
  readonly onlyOk?: boolean;
  /** The proxy listener: this header first, and the client address it claims. */
  readonly proxy?: { header: Buffer; claimedIp: string };
}

/** One well-behaved session; returns whether the server refused the client (421 at greeting, 450 at MAIL). */
export async function goodSession(run: Run, plan: GoodPlan): Promise<"ok" | "refused"> {
  const began = performance.now();
  const d = await open(run, plan.pop, plan.source, plan.proxy ? run.proxyPort : run.port);
  if (!d) return "refused";
  const think = () => plan.thinkMs ? sleep(plan.thinkMs) : Promise.resolve();
  try {
    if (plan.proxy) d.conn.write(plan.proxy.header);
    const greeting = await d.expect("greeting", [220, 421], GREETING_MS);
    if (greeting?.code !== 220) return "refused";
    run.greeted(performance.now() - began);
    await think();
    d.conn.write("EHLO good.example\r\n");
    if ((await d.expect("ehlo", [250, 421]))?.code !== 250) return "ok";
    if (plan.auth && !(await authenticate(d))) return "ok";
    for (let i = 0; i < plan.batch; i++) {
      if (i > 0 && run.stopping()) break;
      const m = plan.outbox.next();
      const outcome = await transaction(d, plan, m);
      if (outcome === "delivered") run.ack(plan.pop, m.id);
      else plan.outbox.retry(m);
      if (outcome === "closed") return "ok";
      if (outcome === "refused") {
        d.conn.write("QUIT\r\n");
        await d.expect("quit", [221, 421]);
        return "refused";
      }
    }
    await think();
    d.conn.write("QUIT\r\n");
    await d.expect("quit", [221, 421]);
    return "ok";
  } finally {
    done(run, d);
  }
}

async function authenticate(d: Dialog): Promise<boolean> {
  if (chance(0.5)) {
    d.conn.write(`AUTH PLAIN ${b64(`\0${AUTH_USER}\0${AUTH_PASSWORD}`)}\r\n`);
    return (await d.expect("auth", [235, 421]))?.code === 235;
  }
  d.conn.write("AUTH LOGIN\r\n");
  if ((await d.expect("auth", [334, 421]))?.code !== 334) return false;
  d.conn.write(`${b64(AUTH_USER)}\r\n`);
  if ((await d.expect("auth-user", [334, 421]))?.code !== 334) return false;
  d.conn.write(`${b64(AUTH_PASSWORD)}\r\n`);
  return (await d.expect("auth-pass", [235, 421]))?.code === 235;
}

/**
 * One transaction. "delivered" only on the 250 after the dot; "temporary"
 * for the 451 of a failing hook (the session goes on, the message is
 * retried); "refused" for the message rate limit (450: the client backs
 * off); "closed" for anything else (a 421, a close, an unexpected reply):
 * the session ends and the message is retried. When that happens after the
 * dot the outcome is unknown to the client: the server must then not have
 * kept the message, or its id shows up twice.
 */
async function transaction(
  d: Dialog,
  plan: GoodPlan,
  m: Pending,
): Promise<"delivered" | "temporary" | "refused" | "closed"> {
  const rcpts = 1 + rand(3);
  const { mode, delayMs } = plan.onlyOk ? { mode: "ok" as const, delayMs: undefined } : goodMode();
  const mail = `MAIL FROM:<sender@good.example>\r\n`;
  const rcptLines = Array.from({ length: rcpts }, (_, i) => `RCPT TO:<rcpt${i}@soak.example>\r\n`);
  const think = () => plan.thinkMs ? sleep(plan.thinkMs) : undefined;
  // 450: the message rate limit; 421: the server closes (overload timeout, shedding, too many errors).
  const mailCodes = [250, 450, 421];
  if (plan.pipelined) {
    d.conn.write(mail + rcptLines.join("") + "DATA\r\n");
    const mailReply = await d.expect("mail", mailCodes);
    if (mailReply === null || mailReply.code === 421) return "closed";
    const accepted = mailReply.code === 250;
    // After a refused MAIL the pipelined RCPTs and DATA get 503.
    for (let i = 0; i < rcpts; i++) {
      const r = await d.expect("rcpt", accepted ? [250, 421] : [503, 421]);
      if (r === null || r.code === 421) return "closed";
    }
    const data = await d.expect("data", accepted ? [354, 421] : [503, 421]);
    if (data === null || data.code === 421) return "closed";
    if (!accepted) return "refused";
  } else {
    await think();
    d.conn.write(mail);
    const mailReply = await d.expect("mail", mailCodes);
    if (mailReply?.code === 450) return "refused";
    if (mailReply?.code !== 250) return "closed";
    for (const line of rcptLines) {
      await think();
      d.conn.write(line);
      if ((await d.expect("rcpt", [250, 421]))?.code !== 250) return "closed";
    }
    await think();
    d.conn.write("DATA\r\n");
    if ((await d.expect("data", [354, 421]))?.code !== 354) return "closed";
  }
  d.conn.write(messageBytes(m.id, mode, { delayMs, claimedIp: plan.proxy?.claimedIp }));
  const end = await d.expect(`dot(${mode})`, [DOT_REPLY[mode]], REPLY_MS);
  if (end?.code === 250) return "delivered";
  return end?.code === 451 ? "temporary" : "closed";
}

// ---- a connection flood from one address ---------------------------------------------------

/** One flood connection: read the first reply and leave; some leave at once without reading. */
export async function floodOne(run: Run): Promise<void> {
  const d = await open(run, "flood", SOURCES.flood[0]);
  if (!d) return;
  try {
    if (chance(0.2)) {
      // A port scanner: connect and close (half of them with a reset).
      if (chance(0.5)) d.conn.reset();
      return;
    }
    const r = await d.expect("greeting", [220, 421], GREETING_MS);
    if (r?.code === 220) {
      d.conn.write("QUIT\r\n");
      await d.expect("quit", [221, 421]);
    }
  } finally {
    done(run, d);
  }
}

/** A client that opens a connection and holds it idle until the server closes it. */
export async function holdIdle(run: Run, pop: string, source: string): Promise<"held" | "refused"> {
  const d = await open(run, pop, source);
  if (!d) return "refused";
  try {
    const r = await d.expect("greeting", [220, 421], GREETING_MS);
    if (r?.code !== 220) return "refused";
    // Idle: the greeting timeout (5 s, 2 s when overloaded) or overload shedding must end it.
    await d.expect("idle", [421], SERVER_CLOSES_MS);
    return "held";
  } finally {
    done(run, d);
  }
}

// ---- slow clients --------------------------------------------------------------------------

/** Trickling and idle clients, and one slow but legitimate sender. */
export async function slowSession(run: Run, source: string, outbox: Outbox): Promise<void> {
  const kind = pick(["trickle-command", "idle-after-ehlo", "trickle-data", "slow-legit"] as const);
  if (kind === "slow-legit") {
    await goodSession(run, {
      pop: "slow-legit",
      source,
      outbox,
      batch: 1,
      pipelined: false,
      auth: false,
      thinkMs: 1000,
      onlyOk: true,
    });
    return;
  }
  const pop = `slow-${kind}`;
  const d = await open(run, pop, source);
  if (!d) return;
  try {
    if ((await d.expect("greeting", [220, 421], GREETING_MS))?.code !== 220) return;
    if (kind === "trickle-command") {
      // One byte every 400 ms: trickling does not extend the 5 s command timeout.
      const line = "EHLO trickle.example\r\n";
      for (let i = 0; i < line.length && !d.conn.closed; i++) {
        d.conn.write(line[i]);
        await sleep(400);
        if (d.conn.hasInput) break;
      }
      await d.expect("trickled-command", [421], SERVER_CLOSES_MS);
      return;
    }
    d.conn.write("EHLO slow.example\r\n");
    if ((await d.expect("ehlo", [250, 421]))?.code !== 250) return;
    if (kind === "idle-after-ehlo") {
      await d.expect("idle", [421], SERVER_CLOSES_MS);
      return;
    }
    d.conn.write("MAIL FROM:<slow@slow.example>\r\n");
    if ((await d.expect("mail", [250, 421, 450]))?.code !== 250) return;
    d.conn.write("RCPT TO:<rcpt@soak.example>\r\n");
    if ((await d.expect("rcpt", [250, 421]))?.code !== 250) return;
    d.conn.write("DATA\r\n");
    if ((await d.expect("data", [354, 421]))?.code !== 354) return;
    // A line every 1.5 s: the whole message has 10 s (ioDataTimeout); never finished, never kept.
    const bytes = messageBytes(newId(run, "slowdata"), "ok", { size: 2000 });
    for (let pos = 0; pos < bytes.length - 3 && !d.conn.closed; pos += 80) {
      d.conn.write(bytes.subarray(pos, Math.min(pos + 80, bytes.length - 3)));
      await sleep(1500);
      if (d.conn.hasInput) break;
    }
    await d.expect("trickled-data", [421], SERVER_CLOSES_MS);
  } finally {
    done(run, d);
  }
}

// ---- garbage -------------------------------------------------------------------------------

const BIG = 1100 * 1024;

/** Random bytes, HTTP, early talkers, huge and long lines, bad commands, oversize mail, smuggling. */
export async function garbageSession(run: Run, source: string): Promise<void> {
  const kind = pick(
    [
      "random-bytes",
      "http",
      "early-talker",
      "early-http",
      "huge-line",
      "long-line",
      "bad-commands",
      "null-byte",
      "oversize",
      "smuggling",
      "pipelined-junk",
    ] as const,
  );
  const pop = `garbage-${kind}`;
  const d = await open(run, pop, source);
  if (!d) return;
  try {
    if (kind === "early-talker" || kind === "early-http") {
      // Talk before the greeting (it comes after 0.2 s): refused with 554.
      d.conn.write(kind === "early-talker" ? "EHLO early.example\r\n" : "GET / HTTP/1.1\r\nHost: soak\r\n\r\n");
      await d.expect("early", [554, 421], GREETING_MS);
      return;
    }
    if ((await d.expect("greeting", [220, 421], GREETING_MS))?.code !== 220) return;
    switch (kind) {
      case "random-bytes": {
        const junk = Buffer.alloc(256 + rand(4096));
        for (let i = 0; i < junk.length; i++) junk[i] = rand(256);
        d.conn.write(junk);
        // Anything may come back (500s, a 221 for a line that looks like a header), then the close.
        await d.untilClosed("junk", [214, 221, 250, 252, 421, 500, 501, 502, 503, 504, 555], 40_000);
        return;
      }
      case "http":
        d.conn.write(
          pick(["GET / HTTP/1.1\r\nHost: soak\r\n\r\n", "POST /x HTTP/1.0\r\n\r\n", "CONNECT a:25 HTTP/1.1\r\n"]),
        );
        await d.expect("http", [221]);
        return;
      case "huge-line":
        // 100 KiB without a line break: past ioBufferMaxSize (64 KiB), 421 and close (or a reset while we write).
        d.conn.write(Buffer.alloc(100 * 1024, 0x41));
        await d.expect("huge-line", [421, CLOSED]);
        return;
      case "long-line":
        // 20 KiB with a line break: longer than maxCommandLineLength, 500, and the session goes on.
        d.conn.write(`EHLO ${"a".repeat(20 * 1024)}\r\n`);
        if ((await d.expect("long-line", [500]))?.code !== 500) return;
        break;
      case "bad-commands": {
        // Unknown commands one at a time: 500s, slower and slower (the tarpit), then 421 at maxBadCommands.
        for (let i = 0; i < 12 && !d.conn.closed; i++) {
          d.conn.write(`XYZZY${i}\r\n`);
          const r = await d.expect("bad-command", [500, 421]);
          if (r?.code !== 500) return;
        }
        d.unexpected("bad-command", "12 bad commands without a 421");
        return;
      }
      case "null-byte":
        d.conn.write("EHLO junk.example\r\n");
        if ((await d.expect("ehlo", [250]))?.code !== 250) return;
        d.conn.write("MAIL FROM:<a\0b@junk.example>\r\n");
        if ((await d.expect("null-byte", [501]))?.code !== 501) return;
        break;
      case "oversize": {
        d.conn.write("EHLO big.example\r\n");
        if ((await d.expect("ehlo", [250]))?.code !== 250) return;
        d.conn.write("MAIL FROM:<big@big.example> SIZE=2000000\r\n");
        if ((await d.expect("size", [552]))?.code !== 552) return;
        d.conn.write("MAIL FROM:<big@big.example>\r\nRCPT TO:<rcpt@soak.example>\r\nDATA\r\n");
        if ((await d.expect("mail", [250, 450]))?.code !== 250) return;
        if ((await d.expect("rcpt", [250]))?.code !== 250) return;
        if ((await d.expect("data", [354]))?.code !== 354) return;
        // Over maxMessageSize: read to its end and refused, never kept.
        d.conn.write(messageBytes(newId(run, "big"), "ok", { size: BIG }));
        if ((await d.expect("oversize", [552]))?.code !== 552) return;
        break;
      }
      case "smuggling": {
        d.conn.write("EHLO smuggler.example\r\n");
        if ((await d.expect("ehlo", [250]))?.code !== 250) return;
        d.conn.write("MAIL FROM:<s@smuggler.example>\r\nRCPT TO:<rcpt@soak.example>\r\nDATA\r\n");
        if ((await d.expect("mail", [250, 450]))?.code !== 250) return;
        if ((await d.expect("rcpt", [250]))?.code !== 250) return;
        if ((await d.expect("data", [354]))?.code !== 354) return;
        // Only <CRLF>.<CRLF> ends a message: the fake end and the smuggled message are part of this one.
        const id = newId(run, "smug");
        const fakeEnd = pick(["\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r\n"]);
        d.conn.write(
          `${ID_HEADER}: ${id}\r\n${MODE_HEADER}: ok\r\n\r\nhello${fakeEnd}MAIL FROM:<evil@smuggler.example>\r\n` +
            `RCPT TO:<victim@soak.example>\r\nDATA\r\n${ID_HEADER}: ${newId(run, "smuggled")}\r\n\r\nevil\r\n.\r\n`,
        );
        if ((await d.expect("smuggling", [250]))?.code !== 250) return;
        run.ack(pop, id);
        break;
      }
      case "pipelined-junk":
        d.conn.write("EHLO junk.example\r\nNOOP\r\nFOO bar\r\nHELP\r\nVRFY x\r\nEXPN x\r\n");
        for (
          const [step, code] of [["ehlo", 250], ["noop", 250], ["foo", 500], ["help", 214], ["vrfy", 252], [
            "expn",
            502,
          ]] as const
        ) {
          if ((await d.expect(step, [code]))?.code !== code) return;
        }
        break;
    }
    d.conn.write("QUIT\r\n");
    await d.expect("quit", [221, 421]);
  } finally {
    done(run, d);
  }
}

// ---- clients that vanish -------------------------------------------------------------------

/** Clients that leave in the middle of DATA (FIN or RST), or while the data hook runs: nothing may be kept. */
export async function vanishSession(run: Run, source: string): Promise<void> {
  const kind = pick(["mid-data-fin", "mid-data-rst", "mid-data-halfclose", "pipelined-rst", "during-hook"] as const);
  const pop = `vanish-${kind}`;
  const d = await open(run, pop, source);
  if (!d) return;
  try {
    if ((await d.expect("greeting", [220, 421], GREETING_MS))?.code !== 220) return;
    d.conn.write("EHLO vanish.example\r\n");
    if ((await d.expect("ehlo", [250, 421]))?.code !== 250) return;
    const id = newId(run, "van");
    const group = "MAIL FROM:<v@vanish.example>\r\nRCPT TO:<rcpt@soak.example>\r\nDATA\r\n";
    if (kind === "during-hook") {
      // The whole message, with a 1 s data hook; the client leaves after 0.3 s. The hook must see
      // ctx.signal aborted (the target then does not keep the message), and no 250 may come.
      d.conn.write(group);
      if ((await d.expect("mail", [250, 450, 421]))?.code !== 250) return;
      if ((await d.expect("rcpt", [250, 421]))?.code !== 250) return;
      if ((await d.expect("data", [354, 421]))?.code !== 354) return;
      d.conn.write(messageBytes(id, "slow", { delayMs: 1000, size: 2000 }));
      await sleep(300);
      if (d.conn.hasInput) d.unexpected("during-hook", "a reply or close before the 1 s hook finished");
      d.conn.destroy();
      return;
    }
    const bytes = messageBytes(id, "ok", { size: pick([2000, 30_000, 120_000]) });
    // Never the whole message: at most up to the last line break before the dot.
    const part = bytes.subarray(0, 1 + rand(bytes.length - 4));
    if (kind === "pipelined-rst") {
      d.conn.write(Buffer.concat([Buffer.from(group, "latin1"), part]));
      await sleep(rand(50));
      d.conn.reset();
      return;
    }
    d.conn.write(group);
    if ((await d.expect("mail", [250, 450, 421]))?.code !== 250) return;
    if ((await d.expect("rcpt", [250, 421]))?.code !== 250) return;
    if ((await d.expect("data", [354, 421]))?.code !== 354) return;
    d.conn.write(part);
    await d.conn.drained();
    await sleep(rand(100));
    if (kind === "mid-data-rst") d.conn.reset();
    else if (kind === "mid-data-fin") d.conn.destroy();
    else {
      // Half-close: the server sees the end of input mid-message and must drop it and close.
      d.conn.end();
      await d.untilClosed("halfclose", [], SERVER_CLOSES_MS);
    }
  } finally {
    done(run, d);
  }
}

// ---- AUTH guessing -------------------------------------------------------------------------

/** Wrong passwords, PLAIN and LOGIN: 535s, 421 after maxAuthFailures, 421 once the address is locked. */
export async function authGuessSession(run: Run, source: string): Promise<void> {
  const d = await open(run, "auth-guess", source);
  if (!d) return;
  try {
    if ((await d.expect("greeting", [220, 421], GREETING_MS))?.code !== 220) return;
    d.conn.write("EHLO guesser.example\r\n");
    if ((await d.expect("ehlo", [250, 421]))?.code !== 250) return;
    for (let i = 0; i < 4 && !d.conn.closed; i++) {
      const guess = `guess${rand(1e6)}`;
      if (chance(0.5)) {
        d.conn.write(`AUTH PLAIN ${b64(`\0${AUTH_USER}\0${guess}`)}\r\n`);
        if ((await d.expect("auth-plain", [535, 421]))?.code !== 535) return;
      } else {
        d.conn.write("AUTH LOGIN\r\n");
        if ((await d.expect("auth-login", [334, 421]))?.code !== 334) return;
        d.conn.write(`${b64(AUTH_USER)}\r\n`);
        if ((await d.expect("auth-login-user", [334]))?.code !== 334) return;
        d.conn.write(`${b64(guess)}\r\n`);
        if ((await d.expect("auth-login-pass", [535, 421]))?.code !== 535) return;
      }
      // The third failure is answered 535 and then 421 (maxAuthFailures 3): read it here.
      if (i === 2) {
        await d.expect("auth-too-many", [421]);
        return;
      }
    }
  } finally {
    done(run, d);
  }
}

// ---- PROXY protocol ------------------------------------------------------------------------

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

function ipv4Bytes(ip: string): number[] {
  return ip.split(".").map(Number);
}

function ipv6Bytes(ip: string): number[] {
  const [head, tail = ""] = ip.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t].map((g) => parseInt(g, 16));
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

/** A PROXY v2 header (TCP over IPv4 or IPv6, or LOCAL). */
function proxyV2(src: string | undefined, srcPort = 40000 + rand(20000)): Buffer {
  if (src === undefined) return Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  const v6 = src.includes(":");
  const addr = v6 ? [...ipv6Bytes(src), ...ipv6Bytes("2001:db8::25")] : [...ipv4Bytes(src), ...ipv4Bytes("192.0.2.25")];
  const ports = [srcPort >> 8, srcPort & 0xff, 0, 25];
  const len = addr.length + 4;
  return Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, v6 ? 0x21 : 0x11, len >> 8, len & 0xff, ...addr, ...ports])]);
}

const MALFORMED_PROXY = [
  "PROXY TCP4 999.1.1.1 192.0.2.25 1234 25\r\n",
  "PROXY TCP5 198.51.100.1 192.0.2.25 1234 25\r\n",
  "PROXY TCP4 198.51.100.1\r\n",
  "PROXY TCP4 198.51.100.1 192.0.2.25 99999 25\r\n",
  `PROXY ${"A".repeat(200)}`,
  "EHLO no-header.example\r\n",
  "GET / HTTP/1.1\r\nHost: soak\r\n\r\n",
].map((s) => Buffer.from(s, "latin1"));

function malformedV2(): Buffer {
  switch (rand(3)) {
    case 0: // version 3
      return Buffer.concat([V2_SIGNATURE, Buffer.from([0x31, 0x11, 0x00, 0x0c]), Buffer.alloc(12)]);
    case 1: // a length past the 4 KiB limit
      return Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0xfd, 0xe8]), Buffer.alloc(64)]);
    default: // TCP4 with too short an address block
      return Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0x00, 0x04, 1, 2, 3, 4])]);
  }
}

/** A client behind a proxy (valid v1/v2 headers, then mail), or a proxy that gets it wrong. */
export async function proxySession(run: Run, outbox: Outbox): Promise<void> {
  const x = Math.random();
  const source = SOURCES.proxy[0];
  if (x < 0.6) {
    // Valid: v1 TCP4, v2 TCP4 or TCP6, v2 LOCAL (health-check style: the socket's own address), v1 UNKNOWN.
    const y = Math.random();
    let header: Buffer;
    let claimedIp: string;
    if (y < 0.4) {
      claimedIp = pick(PROXIED_V4);
      header = Buffer.from(`PROXY TCP4 ${claimedIp} 192.0.2.25 ${40000 + rand(20000)} 25\r\n`, "latin1");
    } else if (y < 0.7) {
      claimedIp = pick(PROXIED_V4);
      header = proxyV2(claimedIp);
    } else if (y < 0.85) {
      claimedIp = pick(PROXIED_V6);
      header = proxyV2(claimedIp);
    } else if (y < 0.93) {
      claimedIp = source;
      header = proxyV2(undefined);
    } else {
      claimedIp = source;
      header = Buffer.from("PROXY UNKNOWN\r\n", "latin1");
    }
    await goodSession(run, {
      pop: "proxy-good",
      source,
      outbox,
      batch: 1 + rand(3),
      pipelined: chance(0.5),
      auth: false,
      proxy: { header, claimedIp },
    });
    return;
  }
  const kind = x < 0.8 ? "malformed" : x < 0.87 ? "incomplete" : x < 0.94 ? "untrusted" : "early";
  const pop = `proxy-${kind}`;
  const d = await open(run, pop, kind === "untrusted" ? SOURCES.proxyUntrusted[0] : source, run.proxyPort);
  if (!d) return;
  try {
    switch (kind) {
      case "malformed":
        // Closed, nothing served, nothing sent.
        d.conn.write(chance(0.6) ? pick(MALFORMED_PROXY) : malformedV2());
        await d.expectSilentClose("malformed", SERVER_CLOSES_MS);
        return;
      case "incomplete":
        // Half a header, then silence: closed after proxyTimeout (3 s).
        d.conn.write("PROXY TCP4 198.51.100.1 ");
        await d.expectSilentClose("incomplete", SERVER_CLOSES_MS);
        return;
      case "untrusted":
        // A valid header from an address not in proxyTrustedSources: closed at once.
        d.conn.write(proxyV2(pick(PROXIED_V4)));
        await d.expectSilentClose("untrusted", SERVER_CLOSES_MS);
        return;
      case "early":
        // A valid header with EHLO right behind it, before the greeting: an early talker (554).
        d.conn.write(Buffer.concat([proxyV2(pick(PROXIED_V4)), Buffer.from("EHLO early.example\r\n", "latin1")]));
        await d.expect("early", [554, 421], GREETING_MS);
        return;
    }
  } finally {
    done(run, d);
  }
}

// ---- probe ---------------------------------------------------------------------------------

/**
 * After the soak, with every client gone: each source address must be let
 * in again (a leaked open-connection count would refuse it with "Too many
 * connections from your address"); a refusal for the per-minute rate is
 * fine. Proxied addresses are checked through the proxy listener.
 */
export async function probe(run: Run, source: string, proxied?: string): Promise<void> {
  const pop = proxied ? "probe-proxy" : "probe";
  run.tally.probes++;
  const d = await open(run, pop, source, proxied ? run.proxyPort : run.port);
  if (!d) {
    run.tally.probeFailures.push(`${proxied ?? source}: could not connect`);
    return;
  }
  try {
    if (proxied) d.conn.write(proxyV2(proxied));
    const r = await d.expect("greeting", [220, 421], GREETING_MS);
    if (r === null) {
      run.tally.probeFailures.push(`${proxied ?? source}: no greeting`);
    } else if (r.code === 421 && !/per minute/.test(r.text)) {
      run.tally.probeFailures.push(
        `${proxied ?? source}: refused after every client left: ${r.code} ${r.enhanced} ${r.text}`,
      );
    } else if (r.code === 220) {
      d.conn.write("QUIT\r\n");
      await d.expect("quit", [221, 421]);
    }
  } finally {
    done(run, d);
  }
}
