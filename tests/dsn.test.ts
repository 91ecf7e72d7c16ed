/**
 * DSN (RFC 3461) in the session, over real sockets with every transport of
 * the running runtime: the EHLO keyword, RET/ENVID on MAIL and NOTIFY/ORCPT
 * on RCPT as Python's smtplib, nodemailer and a raw client send them, their
 * decoded values in `ctx.envelope`, and the refusals (Postfix's 501 texts,
 * 555 when DSN is not offered).
 *
 *   deno test -A tests/dsn.test.ts
 *   bun test ./tests/dsn.test.ts
 *   node --import tsx --test tests/dsn.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import process from "node:process";
import {
  type DsnNotify,
  type EsmtpParamValue,
  type MidiSmtpServerOptions,
  Smtpd550Exception,
  type SmtpdContext,
} from "../mod.ts";
import type { Transport } from "../src/transport/types.ts";
import { RawClient, type RunningServer, startServer, TRANSPORTS, withMailer, withTimeout } from "./helpers.ts";

/** Per-test limit for the runner; every wait inside a test has its own, shorter limit. */
const TEST = { timeout: 30_000 };

/** What the message hook saw of one transaction (copied: the session replaces the envelope afterwards). */
interface SeenEnvelope {
  from: string;
  to: string[];
  dsn: { ret: "FULL" | "HDRS" | null; envid: string | null };
  mailParams: Record<string, EsmtpParamValue>;
  recipients: Array<{
    address: string;
    params: Record<string, EsmtpParamValue>;
    notify: DsnNotify[] | null;
    orcpt: { type: string; address: string } | null;
  }>;
}

/** A started server and the envelopes its message hook saw. */
interface DsnServer extends RunningServer {
  seen: SeenEnvelope[];
}

/** Copies what a test looks at out of `ctx.envelope`. */
function snapshot(ctx: SmtpdContext): SeenEnvelope {
  const e = ctx.envelope;
  return structuredClone({
    from: e.from,
    to: e.to,
    dsn: e.dsn,
    mailParams: e.mailParams,
    recipients: e.recipients.map(({ address, params, notify, orcpt }) => ({ address, params, notify, orcpt })),
  });
}

/**
 * Runs `body` with a server that records each message's envelope and refuses
 * recipients whose local part starts with `refused` (550); always stops it.
 * Error throttling is off: the refusal tests send many bad commands on one
 * connection, and neither the tarpit nor `maxBadCommands` is under test here.
 */
async function withServer(
  transport: Transport,
  options: MidiSmtpServerOptions,
  body: (srv: DsnServer) => Promise<void>,
): Promise<void> {
  const seen: SeenEnvelope[] = [];
  const running = await startServer(transport, {
    softErrorLimit: null,
    maxBadCommands: 1000,
    onRcptToEvent(_ctx, to) {
      if (to.startsWith("<refused")) throw new Smtpd550Exception(undefined, "No such user here");
    },
    onMessageDataEvent(ctx) {
      seen.push(snapshot(ctx));
    },
    ...options,
  });
  try {
    await withTimeout(body({ ...running, seen }), 25_000, "test body");
  } finally {
    await withTimeout(running.close(), 5000, "server.stop()");
  }
}

/** Connects, reads the 220, sends EHLO; returns the client and the keywords. */
async function connect(port: number): Promise<{ client: RawClient; keywords: string[] }> {
  const client = await RawClient.connect(port);
  try {
    await client.expect(220);
    return { client, keywords: await client.ehlo() };
  } catch (err) {
    client.close();
    throw err;
  }
}

/** Sends `line` and asserts the exact reply. */
async function exchange(client: RawClient, line: string, expected: string): Promise<void> {
  const r = await client.command(line);
  assert.equal(r.raw, expected + "\r\n", line);
}

/** DATA with a short message; asserts the 354 and the 250. */
async function sendData(client: RawClient): Promise<void> {
  await exchange(client, "DATA", '354 Enter message, ending with "." on a line by itself');
  await exchange(client, "Subject: dsn\r\n\r\nbody\r\n.", "250 2.0.0 Requested mail action okay, completed");
}

const OK_MAIL = "250 2.1.0 OK";
const OK_RCPT = "250 2.1.5 OK";
const BAD_RET = "501 5.5.4 Bad RET parameter syntax";
const BAD_ENVID = "501 5.5.4 Bad ENVID parameter syntax";
const BAD_NOTIFY = "501 5.5.4 Error: Bad NOTIFY parameter syntax";
const BAD_ORCPT = "501 5.5.4 Error: Bad ORCPT parameter syntax";

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

/** smtplib's sendmail with the DSN options from RFC 3461's examples; prints the EHLO features and the result. */
const PY_DSN = `
import json, smtplib, sys
host, port = sys.argv[1], int(sys.argv[2])
out = {}
s = smtplib.SMTP(host, port, local_hostname="python.example", timeout=10)
try:
    s.ehlo()
    out["dsn"] = s.has_extn("dsn")
    out["refused"] = s.sendmail(
        "py@example.com",
        ["user@example.com", "other@example.com"],
        b"Subject: dsn\\r\\n\\r\\nfrom smtplib\\r\\n",
        mail_options=["RET=HDRS", "ENVID=QQ314159+2B1"],
        rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;user+40example.com"],
    )
finally:
    out["quit"] = s.quit()[0]
print(json.dumps(out))
`;

/** Runs python with `args`; resolves with the exit code and output (never rejects). */
function runPython(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(PYTHON!, args, { timeout: 15_000, encoding: "utf8" }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

for (const transport of TRANSPORTS) {
  describe(`DSN (${transport.name} transport)`, () => {
    it("EHLO lists DSN with dsnExtension, and not without it", TEST, async () => {
      await withServer(transport, { dsnExtension: true }, async (s) => {
        const { client, keywords } = await connect(s.port);
        client.close();
        assert.deepEqual(keywords, ["SIZE 26214400", "ENHANCEDSTATUSCODES", "DSN"]);
      });
      await withServer(transport, {}, async (s) => {
        const { client, keywords } = await connect(s.port);
        client.close();
        assert.ok(!keywords.includes("DSN"), keywords.join("|"));
      });
    });

    it(
      "python smtplib: RET/ENVID and NOTIFY/ORCPT arrive decoded in the envelope",
      { ...TEST, skip: PYTHON ? false : "python3 not found on PATH (set PYTHON to run this test)" },
      async () => {
        await withServer(transport, { dsnExtension: true }, async (s) => {
          const result = await runPython(["-c", PY_DSN, s.host, String(s.port)]);
          assert.equal(result.code, 0, `python failed: ${result.stderr}`);
          const out = JSON.parse(result.stdout);
          assert.deepEqual(out, { dsn: true, refused: {}, quit: 221 });
          assert.equal(s.seen.length, 1);
          const [e] = s.seen;
          assert.equal(e.from, "<py@example.com>");
          assert.deepEqual(e.to, ["<user@example.com>", "<other@example.com>"]);
          // As sent (xtext) in mailParams, decoded in dsn.
          assert.equal(e.mailParams.RET, "HDRS");
          assert.equal(e.mailParams.ENVID, "QQ314159+2B1");
          assert.deepEqual(e.dsn, { ret: "HDRS", envid: "QQ314159+1" });
          // smtplib sends the same rcpt_options with every RCPT.
          for (const [i, address] of ["<user@example.com>", "<other@example.com>"].entries()) {
            assert.deepEqual(e.recipients[i], {
              address,
              params: { NOTIFY: "SUCCESS,FAILURE", ORCPT: "rfc822;user+40example.com" },
              notify: ["SUCCESS", "FAILURE"],
              orcpt: { type: "rfc822", address: "user@example.com" },
            });
          }
        });
      },
    );

    it("nodemailer's dsn option: sent because DSN is offered, decoded in the envelope", TEST, async () => {
      await withServer(transport, { dsnExtension: true }, async (s) => {
        await withMailer(s.port, {}, async (mailer) => {
          const info = await mailer.sendMail({
            envelope: { from: "nm@example.com", to: ["user@example.com", "second@example.com"] },
            raw: "Subject: dsn\r\n\r\nfrom nodemailer\r\n",
            // "QQ314159+1" goes out xtext-encoded as ENVID=QQ314159+2B1; "headers" becomes RET=HDRS.
            dsn: { id: "QQ314159+1", return: "headers", notify: ["success", "delay"], recipient: "user+x@example.com" },
          });
          assert.deepEqual(info.rejected, []);
        });
        assert.equal(s.seen.length, 1);
        const [e] = s.seen;
        assert.equal(e.mailParams.ENVID, "QQ314159+2B1");
        assert.deepEqual(e.dsn, { ret: "HDRS", envid: "QQ314159+1" });
        assert.deepEqual(e.recipients.map((r) => r.address), ["<user@example.com>", "<second@example.com>"]);
        for (const r of e.recipients) {
          assert.deepEqual(r.notify, ["SUCCESS", "DELAY"]);
          // nodemailer xtext-encodes the whole "rfc822;user+x@example.com": the "+" travels as +2B.
          assert.equal(r.params.ORCPT, "rfc822;user+2Bx@example.com");
          assert.deepEqual(r.orcpt, { type: "rfc822", address: "user+x@example.com" });
        }
      });
    });

    it("nodemailer leaves the dsn option out when the server does not offer DSN", TEST, async () => {
      await withServer(transport, {}, async (s) => {
        await withMailer(s.port, {}, async (mailer) => {
          await mailer.sendMail({
            envelope: { from: "nm@example.com", to: ["user@example.com"] },
            raw: "Subject: dsn\r\n\r\nno DSN\r\n",
            dsn: { id: "abc", return: "full", notify: "success", recipient: "user@example.com" },
          });
        });
        assert.equal(s.seen.length, 1);
        const [e] = s.seen;
        assert.deepEqual(e.dsn, { ret: null, envid: null });
        assert.deepEqual(e.recipients, [{ address: "<user@example.com>", params: {}, notify: null, orcpt: null }]);
      });
    });

    it("raw client: keywords and words in any case; ORCPT type lower-cased; NOTIFY=NEVER alone", TEST, async () => {
      await withServer(transport, { dsnExtension: true }, async (s) => {
        const { client } = await connect(s.port);
        try {
          await exchange(client, "MAIL FROM:<a@example.com> ret=full envid=<id+2Fone@client.example>", OK_MAIL);
          await exchange(client, "RCPT TO:<b@example.com> notify=never orcpt=RFC822;b@example.com", OK_RCPT);
          await sendData(client);
        } finally {
          client.close();
        }
        const [e] = s.seen;
        assert.deepEqual(e.dsn, { ret: "FULL", envid: "<id/one@client.example>" });
        assert.deepEqual(e.recipients[0].notify, ["NEVER"]);
        assert.deepEqual(e.recipients[0].orcpt, { type: "rfc822", address: "b@example.com" });
      });
    });

    it("raw client: bad values get 501 with Postfix's texts, and the session goes on", TEST, async () => {
      await withServer(transport, { dsnExtension: true }, async (s) => {
        const { client } = await connect(s.port);
        try {
          const badMail: Array<[string, string]> = [
            ["RET=PARTIAL", BAD_RET],
            ["RET", BAD_RET],
            ["RET=FULL,HDRS", BAD_RET],
            ["ENVID", BAD_ENVID],
            ["ENVID=a+ZZ", BAD_ENVID],
            ["ENVID=a+", BAD_ENVID],
            ["ENVID=" + "x".repeat(101), BAD_ENVID],
            // A header or log injection, xtext-encoded: refused once decoded.
            ["ENVID=x+0D+0AReceived:+20forged", BAD_ENVID],
            ["ENVID=x+0D+0AReceived", BAD_ENVID],
            ["ENVID=x+00y", BAD_ENVID],
            ["ENVID=a+20b", BAD_ENVID],
          ];
          for (const [param, reply] of badMail) await exchange(client, `MAIL FROM:<a@example.com> ${param}`, reply);
          // Each refusal left the session without a sender: MAIL is still accepted.
          await exchange(client, "MAIL FROM:<a@example.com>", OK_MAIL);
          const badRcpt: Array<[string, string]> = [
            ["NOTIFY=SOMETIMES", BAD_NOTIFY],
            ["NOTIFY", BAD_NOTIFY],
            // An empty value is no esmtp-value (RFC 5321 4.1.2): the parameter syntax check refuses it first.
            ["NOTIFY=", '501 5.5.4 Syntax error in parameter "NOTIFY="'],
            ["NOTIFY=NEVER,SUCCESS", BAD_NOTIFY],
            ["NOTIFY=SUCCESS,NEVER", BAD_NOTIFY],
            ["NOTIFY=SUCCESS,SUCCESS", BAD_NOTIFY],
            ["NOTIFY=SUCCESS,,FAILURE", BAD_NOTIFY],
            ["ORCPT=b@example.com", BAD_ORCPT],
            ["ORCPT", BAD_ORCPT],
            ["ORCPT=rfc822;", BAD_ORCPT],
            ["ORCPT=rfc822;b+ZZ@example.com", BAD_ORCPT],
            ["ORCPT=rfc822;b@example.com+0D+0AX-Injected:+20yes", BAD_ORCPT],
            ["ORCPT=rfc822;" + "x".repeat(500), BAD_ORCPT],
          ];
          for (const [param, reply] of badRcpt) await exchange(client, `RCPT TO:<b@example.com> ${param}`, reply);
          await exchange(client, "RCPT TO:<b@example.com> NOTIFY=FAILURE", OK_RCPT);
          await sendData(client);
        } finally {
          client.close();
        }
        // None of the refused commands left anything behind.
        assert.equal(s.seen.length, 1);
        const [e] = s.seen;
        assert.deepEqual(e.dsn, { ret: null, envid: null });
        assert.deepEqual(e.mailParams, {});
        assert.deepEqual(e.recipients, [{
          address: "<b@example.com>",
          params: { NOTIFY: "FAILURE" },
          notify: ["FAILURE"],
          orcpt: null,
        }]);
      });
    });

    it("raw client: a parameter twice in one command gets 501", TEST, async () => {
      await withServer(transport, { dsnExtension: true }, async (s) => {
        const { client } = await connect(s.port);
        try {
          await exchange(client, "MAIL FROM:<a@example.com> RET=FULL RET=HDRS", "501 5.5.4 Duplicate parameter RET");
          await exchange(
            client,
            "MAIL FROM:<a@example.com> ENVID=a ret=full ENVID=a",
            "501 5.5.4 Duplicate parameter ENVID",
          );
          await exchange(client, "MAIL FROM:<a@example.com> ENVID=one", OK_MAIL);
          await exchange(
            client,
            "RCPT TO:<b@example.com> NOTIFY=SUCCESS notify=FAILURE",
            "501 5.5.4 Duplicate parameter NOTIFY",
          );
          await exchange(
            client,
            "RCPT TO:<b@example.com> ORCPT=rfc822;b@example.com ORCPT=rfc822;c@example.com",
            "501 5.5.4 Duplicate parameter ORCPT",
          );
          await exchange(client, "RCPT TO:<c@example.com>", OK_RCPT);
          await sendData(client);
        } finally {
          client.close();
        }
        const [e] = s.seen;
        assert.deepEqual(e.dsn, { ret: null, envid: "one" });
        assert.deepEqual(e.recipients, [{ address: "<c@example.com>", params: {}, notify: null, orcpt: null }]);
      });
    });

    it("raw client: DSN parameters without dsnExtension get 555 5.5.4 Unsupported parameter", TEST, async () => {
      await withServer(transport, {}, async (s) => {
        const { client } = await connect(s.port);
        try {
          await exchange(client, "MAIL FROM:<a@example.com> RET=FULL", "555 5.5.4 Unsupported parameter RET");
          await exchange(client, "MAIL FROM:<a@example.com> envid=QQ1", "555 5.5.4 Unsupported parameter ENVID");
          // Refused as unsupported even with a value that would not parse: it is never looked at.
          await exchange(client, "MAIL FROM:<a@example.com> RET=PARTIAL", "555 5.5.4 Unsupported parameter RET");
          await exchange(client, "MAIL FROM:<a@example.com>", OK_MAIL);
          await exchange(client, "RCPT TO:<b@example.com> NOTIFY=SUCCESS", "555 5.5.4 Unsupported parameter NOTIFY");
          await exchange(
            client,
            "RCPT TO:<b@example.com> ORCPT=rfc822;b@example.com",
            "555 5.5.4 Unsupported parameter ORCPT",
          );
          await exchange(client, "RCPT TO:<b@example.com>", OK_RCPT);
          await sendData(client);
        } finally {
          client.close();
        }
        const [e] = s.seen;
        assert.deepEqual(e.dsn, { ret: null, envid: null });
        assert.deepEqual(e.recipients, [{ address: "<b@example.com>", params: {}, notify: null, orcpt: null }]);
      });
    });

    it(
      "several recipients keep their own NOTIFY/ORCPT in RCPT order; a refused RCPT leaves no entry",
      TEST,
      async () => {
        await withServer(transport, { dsnExtension: true }, async (s) => {
          const { client } = await connect(s.port);
          try {
            await exchange(client, "MAIL FROM:<a@example.com> RET=HDRS ENVID=T1", OK_MAIL);
            await exchange(
              client,
              "RCPT TO:<one@example.com> NOTIFY=SUCCESS ORCPT=rfc822;one+2Borig@example.com",
              OK_RCPT,
            );
            // Refused by the hook after its parameters parsed: nothing of it may stay.
            await exchange(client, "RCPT TO:<refused@example.com> NOTIFY=DELAY", "550 5.1.1 No such user here");
            await exchange(client, "RCPT TO:<two@example.com> NOTIFY=NEVER", OK_RCPT);
            // Refused for its parameter.
            await exchange(client, "RCPT TO:<bad@example.com> NOTIFY=ALWAYS", BAD_NOTIFY);
            await exchange(client, "RCPT TO:<three@example.com>", OK_RCPT);
            await exchange(client, "RCPT TO:<four@example.com> NOTIFY=DELAY,FAILURE", OK_RCPT);
            await sendData(client);
            // The next transaction starts without the last one's DSN values.
            await exchange(client, "MAIL FROM:<a@example.com>", OK_MAIL);
            await exchange(client, "RCPT TO:<five@example.com>", OK_RCPT);
            await sendData(client);
          } finally {
            client.close();
          }
          assert.equal(s.seen.length, 2);
          const [first, second] = s.seen;
          assert.deepEqual(first.dsn, { ret: "HDRS", envid: "T1" });
          assert.deepEqual(first.to, [
            "<one@example.com>",
            "<two@example.com>",
            "<three@example.com>",
            "<four@example.com>",
          ]);
          assert.deepEqual(first.recipients.map((r) => [r.address, r.notify, r.orcpt]), [
            ["<one@example.com>", ["SUCCESS"], { type: "rfc822", address: "one+orig@example.com" }],
            ["<two@example.com>", ["NEVER"], null],
            ["<three@example.com>", null, null],
            ["<four@example.com>", ["DELAY", "FAILURE"], null],
          ]);
          assert.deepEqual(second.dsn, { ret: null, envid: null });
          assert.deepEqual(second.recipients, [{
            address: "<five@example.com>",
            params: {},
            notify: null,
            orcpt: null,
          }]);
        });
      },
    );
  });
}
