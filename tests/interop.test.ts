/**
 * Interoperability tests with real SMTP clients over real sockets, run under
 * all three runtimes and with every transport of the runtime:
 *
 *   deno test -A tests/interop.test.ts
 *   bun test ./tests/interop.test.ts
 *   node --import tsx --test tests/interop.test.ts
 *
 * Clients: nodemailer (in process), Python's smtplib and swaks (child
 * processes; swaks is skipped when it is not installed), plus raw node:net
 * sockets for the connection-limit and vanishing-client cases.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { type MidiSmtpServerOptions, Smtpd550Exception, Smtpd552Exception, type SmtpdContext } from "../mod.ts";
import type { Transport } from "../src/transport/types.ts";
import {
  createMailer,
  delay,
  ehloClient,
  type Mailer,
  RawClient,
  type RunningServer,
  startServer,
  TRANSPORTS,
  withMailer,
} from "./helpers.ts";

/** Per-test limit for the runner; every test body has its own, shorter limit. */
const TEST = { timeout: 30_000 };
const BODY_MS = 20_000;
const CRLF = "\r\n";
const enc = new TextEncoder();

// ---------------------------------------------------------------------------
// helpers

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `done` until it holds or `ms` passes (then throws with `what`). */
async function until(done: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(10);
  }
}

/** What a server saw of one accepted message. */
interface Received {
  from: string;
  to: string[];
  data: Uint8Array;
  helo: string;
  remotePort: number;
  encodingBody: string;
  encodingUtf8: string;
  mailParams: Record<string, string | true>;
}

/** Records connects, disconnects and accepted messages of one server. */
class Recorder {
  messages: Received[] = [];
  connects: number[] = [];
  disconnects: number[] = [];
  dataEvents = 0;

  /** Hooks that record; `extra` may add or replace hooks (call `record` yourself then). */
  hooks(extra: MidiSmtpServerOptions = {}): MidiSmtpServerOptions {
    return {
      onConnectEvent: (ctx) => {
        this.connects.push(ctx.server.remotePort);
      },
      onDisconnectEvent: (ctx) => {
        this.disconnects.push(ctx.server.remotePort);
      },
      onMessageDataEvent: (ctx) => {
        this.record(ctx);
      },
      ...extra,
    };
  }

  record(ctx: SmtpdContext): void {
    this.dataEvents++;
    const e = ctx.envelope;
    this.messages.push({
      from: e.from,
      to: [...e.to],
      data: ctx.message.data.slice(),
      helo: ctx.server.helo,
      remotePort: ctx.server.remotePort,
      encodingBody: e.encodingBody,
      encodingUtf8: e.encodingUtf8,
      mailParams: { ...e.mailParams },
    });
  }
}

/** Runs `body` with a fresh server and always stops it. */
async function withServer(
  transport: Transport,
  options: MidiSmtpServerOptions,
  body: (srv: RunningServer) => Promise<void>,
  ms = BODY_MS,
): Promise<void> {
  const srv = await startServer(transport, options);
  try {
    await withTimeout(body(srv), ms, "test body");
  } finally {
    await withTimeout(srv.close(), 5000, "server.stop()");
  }
}

/** nodemailer options for plain text: no STARTTLS even if offered. */
const PLAIN = { secure: false, ignoreTLS: true };

/** A plain-text nodemailer transport to `srv`. */
function mailer(srv: RunningServer, extra: Record<string, unknown> = {}): Mailer {
  return createMailer(srv.port, { ...PLAIN, ...extra });
}

/** Runs `body` with a plain-text nodemailer transport to `srv` and always closes it. */
function withPlainMailer(
  srv: RunningServer,
  extra: Record<string, unknown>,
  body: (m: Mailer) => Promise<void>,
): Promise<void> {
  return withMailer(srv.port, { ...PLAIN, ...extra }, body);
}

/** An error as nodemailer reports it. */
interface SmtpError extends Error {
  code?: string;
  responseCode?: number;
  response?: string;
  rejected?: string[];
  rejectedErrors?: SmtpError[];
}

/** Awaits a promise that must reject; returns its error. */
async function rejection(promise: Promise<unknown>, what: string): Promise<SmtpError> {
  try {
    await promise;
  } catch (err) {
    return err as SmtpError;
  }
  throw new assert.AssertionError({ message: `${what} should have failed but succeeded` });
}

/** Byte-exact comparison with a readable message (no multi-megabyte diffs). */
function assertBytes(actual: Uint8Array, expected: Uint8Array | string, what = "message data"): void {
  const exp = typeof expected === "string" ? enc.encode(expected) : expected;
  const a = Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength);
  const e = Buffer.from(exp.buffer, exp.byteOffset, exp.byteLength);
  if (a.equals(e)) return;
  let i = 0;
  while (i < a.length && i < e.length && a[i] === e[i]) i++;
  const show = (b: Buffer) => JSON.stringify(b.subarray(Math.max(0, i - 40), i + 40).toString("latin1"));
  assert.fail(
    `${what} differs: ${a.length} bytes received, ${e.length} expected, first difference at byte ${i}:\n` +
      `  received ${show(a)}\n  expected ${show(e)}`,
  );
}

/** Runs a program; resolves with its exit code and output (never rejects on a non-zero exit). */
function run(
  file: string,
  args: string[],
  timeoutMs = 15_000,
): Promise<{ code: number | null; stdout: string; stderr: string; error?: Error }> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { timeout: timeoutMs, encoding: "utf8", maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error
          ? (typeof (error as { code?: unknown }).code === "number" ? (error as { code: number }).code : null)
          : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr), error: error ?? undefined });
      },
    );
  });
}

/** The path of `program` on PATH, or undefined. */
function which(program: string): string | undefined {
  try {
    const path = execFileSync("which", [program], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    return path || undefined;
  } catch {
    return undefined;
  }
}

const PYTHON = process.env.PYTHON ?? which("python3");
const SWAKS = which("swaks");

/**
 * A TCP proxy in front of the server that records each chunk the client
 * sends, to see whether commands arrived pipelined (in one segment).
 */
async function recordingProxy(
  target: RunningServer,
): Promise<{ port: number; chunks: string[]; close(): Promise<void> }> {
  const chunks: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: target.host, port: target.port });
    sockets.add(client).add(upstream);
    client.on("data", (d: Buffer) => {
      chunks.push(d.toString("latin1"));
      upstream.write(d);
    });
    upstream.on("data", (d: Buffer) => client.write(d));
    client.on("end", () => upstream.end());
    upstream.on("end", () => client.end());
    for (const s of [client, upstream]) {
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
      s.on("close", () => sockets.delete(s));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    chunks,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A message with everything that trips up DATA handling: dot lines, an empty line, 8-bit UTF-8. */
const RAW_LINES = [
  "From: Sender <sender@example.com>",
  "To: rcpt1@example.com, rcpt2@example.com",
  "Subject: interop test",
  "MIME-Version: 1.0",
  "Content-Type: text/plain; charset=utf-8",
  "Content-Transfer-Encoding: 8bit",
  "",
  "first body line",
  ".one leading dot",
  "..two leading dots",
  ".",
  "..",
  "",
  "a line . with dots . inside.",
  "Grüße aus Köln, 日本語のテキスト, emoji 🎉",
  "last line",
];
const RAW = RAW_LINES.join(CRLF) + CRLF;

/** A message of at least `size` bytes with distinct 78-byte lines, some starting with dots. */
function bigMessage(size: number): string {
  const lines = ["From: big@example.com", "To: rcpt@example.com", "Subject: big", ""];
  let total = lines.join(CRLF).length + 2;
  for (let i = 0; total < size; i++) {
    const prefix = i % 7 === 0 ? "." : i % 11 === 0 ? ".." : "";
    const line = (prefix + `line ${i} `).padEnd(76, String.fromCharCode(97 + (i % 26)));
    lines.push(line);
    total += line.length + 2;
  }
  return lines.join(CRLF) + CRLF;
}

/**
 * The message swaks sent, from its transcript: the ` -> ` lines between the
 * 354 and the final dot, dot-stuffing undone, each line ended with CRLF.
 */
function swaksSentData(transcript: string): string {
  const lines = transcript.split("\n");
  const start = lines.findIndex((l) => l.startsWith("<-  354"));
  const end = lines.findIndex((l, i) => i > start && l.replace(/\r$/, "") === " -> .");
  assert.ok(start >= 0 && end > start, `no DATA section in the swaks transcript:\n${transcript}`);
  return lines.slice(start + 1, end).map((l) => {
    assert.ok(l.startsWith(" -> "), `unexpected transcript line ${JSON.stringify(l)}`);
    const line = l.slice(4).replace(/\r$/, "");
    return (line.startsWith(".") ? line.slice(1) : line) + CRLF;
  }).join("");
}

const PY_SCRIPT = `
import json, smtplib, sys
host, port, sender, rcpts, msg = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4]), sys.argv[5]
out = {}
s = smtplib.SMTP(host, port, local_hostname="python.example", timeout=10)
try:
    code, text = s.ehlo()
    out["ehlo"] = code
    out["features"] = sorted(s.esmtp_features.keys())
    opts = ["BODY=8BITMIME"] if s.has_extn("8bitmime") else []
    out["refused"] = s.sendmail(sender, rcpts, msg.encode("utf-8"), mail_options=opts)
    out["noop"] = s.noop()[0]
finally:
    out["quit"] = s.quit()[0]
print(json.dumps(out))
`;

// ---------------------------------------------------------------------------
// tests

for (const transport of TRANSPORTS) {
  describe(`interop over the ${transport.name} transport`, () => {
    // ---- the common case behind every client below ----------------------------------------

    it("raw: commands sent one per segment, each shorter than the one before, are all answered", TEST, async () => {
      await withServer(transport, {}, async (srv) => {
        const client = await ehloClient(srv.port, srv.host, "client.example");
        try {
          // Every client in this file waits for each reply before sending the next command,
          // so each command arrives in its own segment; a shorter one must not get stuck.
          const steps: Array<[string, number]> = [
            ["MAIL FROM:<a-rather-long-sender-address@example.com>", 250],
            ["RCPT TO:<r@example.com>", 250],
            ["NOOP", 250],
            ["RSET", 250],
            ["QUIT", 221],
          ];
          for (const [line, code] of steps) {
            const reply = await client.command(line, 2000).catch((err) => {
              throw new Error(`no reply to ${JSON.stringify(line)}: ${(err as Error).message}`);
            });
            assert.equal(reply.code, code, `${line} -> ${reply.raw}`);
          }
          await client.waitClosed();
        } finally {
          client.close();
        }
      });
    });

    // ---- nodemailer ----------------------------------------------------------------------

    it("nodemailer: a raw message arrives byte-exact (dot-stuffing undone, final CRLF kept)", TEST, async () => {
      const rec = new Recorder();
      await withServer(transport, rec.hooks(), async (srv) => {
        await withPlainMailer(srv, {}, async (m) => {
          const info = await m.sendMail({
            envelope: { from: "sender@example.com", to: ["rcpt1@example.com", "rcpt2@example.com"] },
            raw: RAW,
          });
          assert.deepEqual(info.accepted, ["rcpt1@example.com", "rcpt2@example.com"]);
          assert.deepEqual(info.rejected, []);
          assert.match(String(info.response), /^250 /);
          // Without the final CRLF nodemailer adds one; the server keeps it.
          const unterminated = RAW.slice(0, -2);
          await m.sendMail({ envelope: { from: "sender@example.com", to: ["rcpt1@example.com"] }, raw: unterminated });
        });
        assert.equal(rec.messages.length, 2);
        const [first, second] = rec.messages;
        assert.equal(first.from, "<sender@example.com>");
        assert.deepEqual(first.to, ["<rcpt1@example.com>", "<rcpt2@example.com>"]);
        assert.equal(first.helo, "nodemailer.example");
        assertBytes(first.data, RAW);
        assert.equal(second.from, "<sender@example.com>");
        assert.deepEqual(second.to, ["<rcpt1@example.com>"]);
        assertBytes(second.data, RAW);
      });
    });

    it("nodemailer: 10 messages over one pooled connection", TEST, async () => {
      const rec = new Recorder();
      await withServer(transport, rec.hooks(), async (srv) => {
        await withPlainMailer(srv, { pool: true, maxConnections: 1, maxMessages: 10 }, async (m) => {
          const sent = Array.from({ length: 10 }, (_, i) =>
            m.sendMail({
              envelope: { from: `pool${i}@example.com`, to: [`rcpt${i}@example.com`] },
              raw: `Subject: pooled ${i}\r\n\r\nmessage number ${i}\r\n.dot line ${i}\r\n`,
            }));
          const infos = await Promise.all(sent);
          for (const [i, info] of infos.entries()) assert.deepEqual(info.accepted, [`rcpt${i}@example.com`]);
        });
        assert.equal(rec.messages.length, 10);
        assert.equal(rec.connects.length, 1, "all 10 messages must use one connection");
        const ports = new Set(rec.messages.map((r) => r.remotePort));
        assert.equal(ports.size, 1);
        for (let i = 0; i < 10; i++) {
          const r = rec.messages.find((x) => x.from === `<pool${i}@example.com>`);
          assert.ok(r, `message ${i} missing`);
          assert.deepEqual(r.to, [`<rcpt${i}@example.com>`]);
          assertBytes(r.data, `Subject: pooled ${i}\r\n\r\nmessage number ${i}\r\n.dot line ${i}\r\n`);
        }
        await until(() => rec.disconnects.length === 1, "the pooled connection to close");
      });
    });

    it("nodemailer: multiple recipients, one rejected with 550 by a hook", TEST, async () => {
      const rec = new Recorder();
      const hooks = rec.hooks({
        onRcptToEvent(_ctx, rcpt) {
          if (rcpt.startsWith("<reject")) throw new Smtpd550Exception();
        },
      });
      await withServer(transport, hooks, async (srv) => {
        await withPlainMailer(srv, {}, async (m) => {
          const to = ["a@example.com", "reject1@example.com", "b@example.com", "c@example.com"];
          const info = await m.sendMail({ envelope: { from: "sender@example.com", to }, raw: RAW });
          assert.deepEqual(info.accepted, ["a@example.com", "b@example.com", "c@example.com"]);
          assert.deepEqual(info.rejected, ["reject1@example.com"]);
          const rejectedErrors = (info as unknown as { rejectedErrors?: SmtpError[] }).rejectedErrors;
          assert.equal(rejectedErrors?.length, 1);
          assert.equal(rejectedErrors?.[0].responseCode, 550);
          assert.match(String(rejectedErrors?.[0].response), /^550 5\.1\.1 /);

          const err = await rejection(
            m.sendMail({
              envelope: { from: "sender@example.com", to: ["reject1@example.com", "reject2@example.com"] },
              raw: RAW,
            }),
            "sending to rejected recipients only",
          );
          const codes = [err.responseCode, ...(err.rejectedErrors ?? []).map((e) => e.responseCode)];
          assert.ok(codes.includes(550), `expected a 550 in ${JSON.stringify(codes)}: ${err.message}`);
          assert.deepEqual(err.rejected, ["reject1@example.com", "reject2@example.com"]);
        });
        assert.equal(rec.messages.length, 1, "the all-rejected message must not reach onMessageDataEvent");
        assert.deepEqual(rec.messages[0].to, ["<a@example.com>", "<b@example.com>", "<c@example.com>"]);
        assertBytes(rec.messages[0].data, RAW);
      });
    });

    it("nodemailer: onMessageDataEvent throwing Smtpd552Exception -> 552, a plain Error -> 451", TEST, async () => {
      let calls = 0;
      const hooks: MidiSmtpServerOptions = {
        onMessageDataEvent(ctx) {
          calls++;
          const text = new TextDecoder().decode(ctx.message.data);
          if (text.includes("please 552")) throw new Smtpd552Exception();
          if (text.includes("please crash")) throw new Error("application bug");
        },
      };
      await withServer(transport, hooks, async (srv) => {
        // pooled, so the same session goes on after each refusal
        await withPlainMailer(srv, { pool: true, maxConnections: 1 }, async (m) => {
          const envelope = { from: "sender@example.com", to: ["rcpt@example.com"] };
          const e552 = await rejection(
            m.sendMail({ envelope, raw: "Subject: x\r\n\r\nplease 552\r\n" }),
            "552 message",
          );
          assert.equal(e552.responseCode, 552, e552.message);
          assert.match(String(e552.response), /^552 5\.3\.4 /);
          const e451 = await rejection(
            m.sendMail({ envelope, raw: "Subject: x\r\n\r\nplease crash\r\n" }),
            "crash message",
          );
          assert.equal(e451.responseCode, 451, e451.message);
          assert.match(String(e451.response), /^451 4\.3\.0 /);
          const ok = await m.sendMail({ envelope, raw: "Subject: x\r\n\r\nall good\r\n" });
          assert.match(String(ok.response), /^250 /);
        });
      });
      assert.equal(calls, 3);
    });

    it("nodemailer: with PIPELINING the envelope goes out in one batch and works", TEST, async () => {
      const rec = new Recorder();
      const hooks = rec.hooks({
        onRcptToEvent(_ctx, rcpt) {
          if (rcpt === "<nobody@example.com>") throw new Smtpd550Exception();
        },
      });
      await withServer(transport, { pipeliningExtension: true, ...hooks }, async (srv) => {
        const proxy = await recordingProxy(srv);
        try {
          await withPlainMailer({ ...srv, port: proxy.port }, { pool: true, maxConnections: 1 }, async (m) => {
            for (let i = 0; i < 3; i++) {
              const info = await m.sendMail({
                envelope: {
                  from: `pipe${i}@example.com`,
                  to: ["x@example.com", "nobody@example.com", "y@example.com"],
                },
                raw: RAW,
              });
              assert.deepEqual(info.accepted, ["x@example.com", "y@example.com"]);
              assert.deepEqual(info.rejected, ["nobody@example.com"]);
            }
          });
        } finally {
          await proxy.close();
        }
        const batched = proxy.chunks.filter((c) =>
          /^MAIL FROM:.*\r\nRCPT TO:.*\r\nRCPT TO:.*\r\nRCPT TO:.*\r\nDATA\r\n$/s.test(c)
        );
        assert.ok(
          batched.length >= 1,
          `no pipelined MAIL..DATA batch seen; chunks: ${JSON.stringify(proxy.chunks.slice(0, 8))}`,
        );
        assert.equal(rec.messages.length, 3);
        for (const [i, r] of rec.messages.entries()) {
          assert.equal(r.from, `<pipe${i}@example.com>`);
          assert.deepEqual(r.to, ["<x@example.com>", "<y@example.com>"]);
          assertBytes(r.data, RAW);
        }
      });
    });

    it("nodemailer: SMTPUTF8 addresses are accepted and stored as given", TEST, async () => {
      const rec = new Recorder();
      const hooks = { internationalizationExtensions: true, ...rec.hooks() };
      await withServer(transport, hooks, async (srv) => {
        const raw = "From: 用户@例子.example\r\nTo: 收件人@例子.example\r\nSubject: utf8\r\n\r\n你好\r\n";
        await withPlainMailer(srv, {}, async (m) => {
          const info = await m.sendMail({ envelope: { from: "用户@例子.example", to: ["收件人@例子.example"] }, raw });
          assert.equal(info.rejected.length, 0);
        });
        assert.equal(rec.messages.length, 1);
        const [r] = rec.messages;
        assert.equal(r.encodingUtf8, "utf8");
        assert.equal(r.mailParams.SMTPUTF8, true);
        assert.equal(r.from, "<用户@例子.example>");
        assert.deepEqual(r.to, ["<收件人@例子.example>"]);
        assertBytes(r.data, raw);
      });
    });

    it("nodemailer: an 8BITMIME body arrives byte-exact with BODY=8BITMIME", TEST, async () => {
      const rec = new Recorder();
      await withServer(transport, { internationalizationExtensions: true, ...rec.hooks() }, async (srv) => {
        const latin1Bytes = Buffer.from("Subject: 8bit\r\n\r\nbytes: \xe4\xf6\xfc\xff\x80\x81\r\n", "latin1");
        await withPlainMailer(srv, {}, async (m) => {
          await m.sendMail({
            envelope: { from: "s@example.com", to: ["r@example.com"], use8BitMime: true },
            raw: RAW,
          });
          // not valid UTF-8: the server must keep the bytes, not decode them
          await m.sendMail({
            envelope: { from: "s@example.com", to: ["r@example.com"], use8BitMime: true },
            raw: latin1Bytes,
          });
        });
        assert.equal(rec.messages.length, 2);
        assert.equal(rec.messages[0].encodingBody, "8bitmime");
        assert.equal(rec.messages[0].mailParams.BODY, "8BITMIME");
        assertBytes(rec.messages[0].data, RAW);
        assert.equal(rec.messages[1].encodingBody, "8bitmime");
        assertBytes(rec.messages[1].data, latin1Bytes);
      });
    });

    it("nodemailer: a 1 MiB message arrives byte-exact", TEST, async () => {
      const rec = new Recorder();
      const big = bigMessage(1024 * 1024);
      assert.ok(big.length >= 1024 * 1024);
      await withServer(transport, rec.hooks(), async (srv) => {
        await withPlainMailer(srv, {}, async (m) => {
          await m.sendMail({ envelope: { from: "big@example.com", to: ["rcpt@example.com"] }, raw: big });
        });
        assert.equal(rec.messages.length, 1);
        assertBytes(rec.messages[0].data, big);
      });
    });

    it("nodemailer: a message over maxMessageSize is refused with 552 and never reaches the hook", TEST, async () => {
      const rec = new Recorder();
      await withServer(transport, { maxMessageSize: 1000, ...rec.hooks() }, async (srv) => {
        const raw = bigMessage(5000);
        await withPlainMailer(srv, {}, async (m) => {
          // No size known in advance: the server counts while reading and answers the final dot with 552.
          const streamed = await rejection(
            m.sendMail({ envelope: { from: "s@example.com", to: ["r@example.com"] }, raw }),
            "oversized message",
          );
          assert.equal(streamed.responseCode, 552, streamed.message);
          // Size announced: nodemailer (which saw "SIZE 1000" in EHLO) refuses it itself, or the server does at MAIL.
          const announced = await rejection(
            m.sendMail({ envelope: { from: "s@example.com", to: ["r@example.com"], size: raw.length }, raw }),
            "oversized message with SIZE",
          );
          assert.ok(
            announced.responseCode === 552 || /size/i.test(announced.message),
            `expected 552 or a size error, got ${announced.responseCode}: ${announced.message}`,
          );
          // the session still works for a small message
          await m.sendMail({
            envelope: { from: "s@example.com", to: ["r@example.com"] },
            raw: "Subject: ok\r\n\r\nsmall\r\n",
          });
        });
        assert.equal(rec.dataEvents, 1, "only the small message may reach onMessageDataEvent");
        assertBytes(rec.messages[0].data, "Subject: ok\r\n\r\nsmall\r\n");
      });
    });

    // ---- Python smtplib ------------------------------------------------------------------

    it(
      "python smtplib: ehlo, sendmail with dot lines, quit; byte-exact",
      { ...TEST, skip: PYTHON ? false : "python3 not found on PATH (set PYTHON to run this test)" },
      async () => {
        const rec = new Recorder();
        await withServer(transport, { internationalizationExtensions: true, ...rec.hooks() }, async (srv) => {
          const to = ["py1@example.com", "py2@example.com"];
          const result = await run(PYTHON!, [
            "-c",
            PY_SCRIPT,
            srv.host,
            String(srv.port),
            "py@example.com",
            JSON.stringify(to),
            RAW,
          ]);
          assert.equal(result.code, 0, `python failed (${result.error?.message}): ${result.stderr}`);
          const out = JSON.parse(result.stdout);
          assert.equal(out.ehlo, 250);
          assert.ok(out.features.includes("size") && out.features.includes("8bitmime"), JSON.stringify(out.features));
          assert.deepEqual(out.refused, {});
          assert.equal(out.noop, 250);
          assert.equal(out.quit, 221);
          assert.equal(rec.messages.length, 1);
          const [r] = rec.messages;
          assert.equal(r.helo, "python.example");
          assert.equal(r.from, "<py@example.com>");
          assert.deepEqual(r.to, ["<py1@example.com>", "<py2@example.com>"]);
          assert.equal(r.encodingBody, "8bitmime");
          assert.equal(r.mailParams.SIZE, String(Buffer.byteLength(RAW)));
          assertBytes(r.data, RAW);
          await until(() => rec.disconnects.length === 1, "python's session to end");
        });
      },
    );

    // ---- swaks ---------------------------------------------------------------------------

    it(
      "swaks: --body and --data messages arrive intact",
      { ...TEST, skip: SWAKS ? false : "swaks not found on PATH (install it, e.g. apt-get install swaks)" },
      async () => {
        const rec = new Recorder();
        const dir = mkdtempSync(join(tmpdir(), "interop-swaks-"));
        try {
          await withServer(transport, rec.hooks(), async (srv) => {
            const server = `${srv.host}:${srv.port}`;
            const common = ["--server", server, "--helo", "swaks.example", "--timeout", "10"];
            const body = "hello from swaks\n.dotted line\n..two dots\nbye";
            const first = await run(SWAKS!, [
              ...common,
              "--to",
              "a@b.example",
              "--from",
              "c@d.example",
              "--body",
              body,
            ]);
            assert.equal(first.code, 0, `swaks failed: ${first.stdout}\n${first.stderr}`);
            assert.equal(rec.messages.length, 1);
            const r = rec.messages[0];
            assert.equal(r.from, "<c@d.example>");
            assert.deepEqual(r.to, ["<a@b.example>"]);
            assert.equal(r.helo, "swaks.example");
            const text = Buffer.from(r.data).toString("utf8");
            assert.match(text, /^Date: .*\r\nTo: a@b\.example\r\nFrom: c@d\.example\r\nSubject: test /);
            assert.match(text, /\r\n\r\nhello from swaks\r\n\.dotted line\r\n\.\.two dots\r\nbye\r\n/);
            // byte-exact against what swaks logged as sent (its template has a Date and a Message-Id)
            assertBytes(r.data, swaksSentData(first.stdout));

            // --data: the message as given (LF lines become CRLF, leading dots stuffed by swaks, unstuffed by us)
            const file = join(dir, "message.eml");
            const lines = [
              "From: c@d.example",
              "To: a@b.example",
              "Subject: swaks data",
              "",
              "x",
              ".y",
              "..z",
              ".",
              "end",
            ];
            writeFileSync(file, lines.join("\n"));
            const second = await run(SWAKS!, [
              ...common,
              "--to",
              "a@b.example,e@f.example",
              "--from",
              "c@d.example",
              "--data",
              "@" + file,
            ]);
            assert.equal(second.code, 0, `swaks --data failed: ${second.stdout}\n${second.stderr}`);
            assert.equal(rec.messages.length, 2);
            assert.deepEqual(rec.messages[1].to, ["<a@b.example>", "<e@f.example>"]);
            assertBytes(rec.messages[1].data, lines.join(CRLF) + CRLF);
            assertBytes(rec.messages[1].data, swaksSentData(second.stdout));
          });
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    );

    // ---- concurrency ---------------------------------------------------------------------

    it("50 concurrent nodemailer sessions with async hooks: no context leaks", TEST, async () => {
      const N = 50;
      const mismatches: string[] = [];
      const received = new Set<number>();
      const randomDelay = () => delay(Math.floor(Math.random() * 15));
      const hooks: MidiSmtpServerOptions = {
        async onHeloEvent() {
          await randomDelay();
        },
        async onMailFromEvent() {
          await randomDelay();
        },
        async onRcptToEvent() {
          await randomDelay();
        },
        async onMessageDataEvent(ctx) {
          await randomDelay();
          const text = new TextDecoder().decode(ctx.message.data);
          const m = /MARKER-(\d+)-END/.exec(text);
          const i = m ? Number(m[1]) : -1;
          if (ctx.envelope.from !== `<sender${i}@example.com>` || ctx.envelope.to.join() !== `<rcpt${i}@example.com>`) {
            mismatches.push(`marker ${i}: from ${ctx.envelope.from} to ${ctx.envelope.to.join()}`);
          }
          if (ctx.server.helo !== `client${i}.example`) mismatches.push(`marker ${i}: helo ${ctx.server.helo}`);
          received.add(i);
        },
      };
      await withServer(transport, hooks, async (srv) => {
        const mailers = Array.from({ length: N }, (_, i) => mailer(srv, { name: `client${i}.example` }));
        try {
          const results = await Promise.allSettled(mailers.map((m, i) =>
            m.sendMail({
              envelope: { from: `sender${i}@example.com`, to: [`rcpt${i}@example.com`] },
              raw: `Subject: concurrent ${i}\r\n\r\nMARKER-${i}-END\r\n${"x".repeat(i * 100)}\r\n`,
            })
          ));
          const failed = results.flatMap((r, i) => r.status === "rejected" ? [`${i}: ${r.reason}`] : []);
          assert.deepEqual(failed, []);
        } finally {
          for (const m of mailers) m.close();
        }
      });
      assert.deepEqual(mismatches, []);
      assert.equal(received.size, N);
    });

    it("maxProcessings 1 + maxConnections 2: the 2nd client waits silently, the 3rd gets 421", TEST, async () => {
      await withServer(transport, { maxProcessings: 1, maxConnections: 2 }, async (srv) => {
        const clients: RawClient[] = [];
        try {
          const first = await RawClient.connect(srv.port, srv.host);
          clients.push(first);
          await first.expect(220);
          const second = await RawClient.connect(srv.port, srv.host);
          clients.push(second);
          await until(() => srv.server.connections() === 2, "the 2nd connection to be accepted");
          const third = await RawClient.connect(srv.port, srv.host);
          clients.push(third);
          const refused = await third.reply();
          assert.equal(refused.code, 421, refused.raw);
          await third.waitClosed();
          // the 2nd client still got nothing, and is still connected
          await delay(200);
          assert.equal(second.pending, "");
          assert.equal(second.closed, false);
          assert.equal(srv.server.processings(), 1);
          // the 1st session goes on normally meanwhile
          assert.equal((await first.command("EHLO first.example")).code, 250);
          assert.equal((await first.command("QUIT")).code, 221);
          await first.waitClosed();
          // now the 2nd one is served
          await second.expect(220);
          assert.equal((await second.command("EHLO second.example")).code, 250);
          assert.equal((await second.command("QUIT")).code, 221);
          await second.waitClosed();
        } finally {
          for (const c of clients) c.close();
        }
      });
    });

    // ---- vanishing clients -----------------------------------------------------------------

    for (const how of ["close", "reset"] as const) {
      it(`a client that vanishes mid-DATA (${how}) drops its message; a parallel session completes`, TEST, async () => {
        const rec = new Recorder();
        await withServer(transport, rec.hooks(), async (srv) => {
          const clients: RawClient[] = [];
          try {
            // a steady session, halfway through its own message
            const steady = await ehloClient(srv.port, srv.host, "steady.example");
            clients.push(steady);
            assert.equal((await steady.command("MAIL FROM:<steady@example.com>")).code, 250);
            assert.equal((await steady.command("RCPT TO:<rcpt@example.com>")).code, 250);
            assert.equal((await steady.command("DATA")).code, 354);
            await steady.send("Subject: steady\r\n\r\nfirst half\r\n");

            // the vanishing one
            const gone = await ehloClient(srv.port, srv.host, "gone.example");
            clients.push(gone);
            assert.equal((await gone.command("MAIL FROM:<gone@example.com>")).code, 250);
            assert.equal((await gone.command("RCPT TO:<rcpt@example.com>")).code, 250);
            assert.equal((await gone.command("DATA")).code, 354);
            await gone.send("Subject: gone\r\n\r\nhalf a mess");
            await delay(50);
            await until(() => rec.connects.length === 2, "both connections to be seen");
            const gonePort = rec.connects[1];
            if (how === "reset") gone.reset();
            else gone.close();
            await until(() => rec.disconnects.includes(gonePort), "onDisconnectEvent for the vanished client");

            // the steady session finishes normally
            await steady.send("second half\r\n.\r\n");
            assert.equal((await steady.reply()).code, 250);
            assert.equal((await steady.command("QUIT")).code, 221);
            await steady.waitClosed();

            // and a new client is served as usual
            await withPlainMailer(srv, {}, async (m) => {
              await m.sendMail({ envelope: { from: "after@example.com", to: ["rcpt@example.com"] }, raw: RAW });
            });
            await until(() => rec.disconnects.length === 3, "all three sessions to end");
            await delay(100);
            assert.equal(rec.disconnects.filter((p) => p === gonePort).length, 1, "onDisconnectEvent exactly once");
            assert.equal(rec.disconnects.length, 3);
            assert.deepEqual(rec.messages.map((r) => r.from), ["<steady@example.com>", "<after@example.com>"]);
            assertBytes(rec.messages[0].data, "Subject: steady\r\n\r\nfirst half\r\nsecond half\r\n");
            assertBytes(rec.messages[1].data, RAW);
          } finally {
            for (const c of clients) c.close();
          }
        });
      });
    }
  });
}
