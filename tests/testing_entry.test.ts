/**
 * The testing entry (`midi-smtp-server/testing`, src/testing.ts) as an
 * application's test suite uses it, under all three runtimes:
 *
 *   deno test -A tests/testing_entry.test.ts
 *   bun test ./tests/testing_entry.test.ts
 *   node --import tsx --test tests/testing_entry.test.ts
 *
 * nodemailer sends (plain, STARTTLS and implicit TLS verified against the
 * returned CA, AUTH); waitForMessage with predicates and timeouts; clear and
 * close; options and hooks passed through; the header parser. Last, a scratch
 * project outside the repository runs a test file with this runtime's own
 * runner (`Deno.test` under `deno test`, `bun:test` under `bun test`,
 * `node:test` under `node --test`), importing the entry by file URL and the
 * project's installed nodemailer: nothing is downloaded.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseHeaders, startTestServer, type TestMessage, type TestServer } from "../src/testing.ts";
import { generateSelfSignedCertificate } from "../src/tls/certificates.ts";
import { Smtpd550Exception, Smtpd554Exception } from "../src/exceptions.ts";
import type { MidiSmtpServer } from "../src/server.ts";
import { createMailer, ehloClient, RawClient, runtime, withMailer } from "./helpers.ts";
import { mailTestSource } from "./mail_test_source.ts";

const TEST = { timeout: 30_000 };
const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** A nodemailer message from `from` to `to` with `subject`. */
function mail(subject: string, to: string | string[] = "ann@example.com", extra: Record<string, unknown> = {}) {
  return { from: "app@example.com", to, subject, text: `Body of ${subject}\n`, ...extra };
}

/** Runs `body` with a test server, closed afterwards whatever happens. */
async function withServer(
  options: Parameters<typeof startTestServer>[0],
  body: (server: TestServer) => Promise<void>,
): Promise<void> {
  const server = await startTestServer(options);
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

describe("sending with nodemailer", () => {
  it("a plain message: envelope, data, text, headers and client facts", TEST, async () => {
    await withServer({}, async (server) => {
      assert.equal(server.host, "127.0.0.1");
      assert.equal(typeof server.port, "number");
      assert.ok(server.port > 0);
      assert.equal(server.tlsPort, undefined);
      assert.equal(server.ca, undefined);
      await withMailer(server.port, {}, async (mailer) => {
        await mailer.sendMail(mail("Grüße ✓", ["ann@example.com", "bob@example.com"], { cc: "cat@example.com" }));
      });
      assert.equal(server.messages.length, 1);
      const [m] = server.messages;
      assert.equal(m.mailFrom, "app@example.com");
      assert.deepEqual(m.rcptTo, ["ann@example.com", "bob@example.com", "cat@example.com"]);
      assert.equal(m.envelope.from, "<app@example.com>");
      assert.deepEqual(m.envelope.to, ["<ann@example.com>", "<bob@example.com>", "<cat@example.com>"]);
      assert.ok(m.data instanceof Uint8Array);
      assert.equal(m.text, new TextDecoder().decode(m.data));
      assert.match(m.text, /\r\n\r\nBody of Gr/);
      // nodemailer writes the non-ASCII subject as RFC 2047 encoded words; the lookup decodes them.
      assert.equal(m.headers.get("subject"), "Grüße ✓");
      assert.equal(m.headers.get("SUBJECT"), "Grüße ✓");
      assert.match(m.headers.raw, /^Subject: =\?UTF-8\?/m);
      assert.equal(m.headers.get("to"), "ann@example.com, bob@example.com");
      assert.equal(m.headers.get("Cc"), "cat@example.com");
      assert.equal(m.headers.has("bcc"), false);
      assert.ok(m.text.startsWith(m.headers.raw));
      assert.deepEqual(
        { ...m.client, remotePort: 0 },
        {
          remoteIp: "127.0.0.1",
          remotePort: 0,
          localPort: server.port,
          helo: "nodemailer.example",
          tls: null,
          authenticationId: null,
          authorizationId: null,
        },
      );
      assert.ok(m.receivedAt instanceof Date);
    });
  });

  it("the defaults: PIPELINING, 8BITMIME, SMTPUTF8, CHUNKING and DSN offered", TEST, async () => {
    await withServer({}, async (server) => {
      const client = await RawClient.connect(server.port, server.host);
      try {
        await client.expect(220);
        const keywords = await client.ehlo();
        for (const keyword of ["PIPELINING", "8BITMIME", "SMTPUTF8", "CHUNKING", "DSN"]) {
          assert.ok(keywords.includes(keyword), `${keyword} missing from ${keywords.join(", ")}`);
        }
        assert.ok(!keywords.some((k) => k.startsWith("AUTH") || k === "STARTTLS"), keywords.join(", "));
      } finally {
        client.close();
      }
    });
  });

  it("SMTPUTF8 addresses and DSN parameters reach the envelope", TEST, async () => {
    await withServer({}, async (server) => {
      await withMailer(server.port, {}, async (mailer) => {
        await mailer.sendMail(mail("DSN", "jörg@example.com", {
          dsn: { id: "envelope-7", return: "headers", notify: ["success", "failure"], recipient: "app@example.com" },
        }));
      });
      const m = await server.waitForMessage();
      assert.deepEqual(m.rcptTo, ["jörg@example.com"]);
      assert.equal(m.envelope.encodingUtf8, "utf8");
      assert.deepEqual(m.envelope.dsn, { ret: "HDRS", envid: "envelope-7" });
      assert.deepEqual(m.envelope.recipients[0].notify, ["SUCCESS", "FAILURE"]);
      assert.deepEqual(m.envelope.recipients[0].orcpt, { type: "rfc822", address: "app@example.com" });
    });
  });

  it("STARTTLS verified against the returned CA (rejectUnauthorized: true)", TEST, async () => {
    await withServer({ tls: true }, async (server) => {
      assert.match(server.ca ?? "", /^-----BEGIN CERTIFICATE-----\n/);
      assert.equal(typeof server.tlsPort, "number");
      await withMailer(
        server.port,
        { requireTLS: true, tls: { ca: server.ca, rejectUnauthorized: true } },
        (m) => m.sendMail(mail("over STARTTLS")).then(() => {}),
      );
      const m = await server.waitForMessage((m) => m.headers.get("subject") === "over STARTTLS");
      assert.equal(m.client.localPort, server.port);
      assert.match(m.client.tls?.protocol ?? "", /^TLSv1\.[23]$/);
      assert.notEqual(m.client.tls?.cipher, "");
    });
  });

  it("implicit TLS on tlsPort, verified against the returned CA", TEST, async () => {
    await withServer({ tls: true }, async (server) => {
      await withMailer(
        server.tlsPort!,
        { secure: true, tls: { ca: server.ca, rejectUnauthorized: true } },
        (m) => m.sendMail(mail("over implicit TLS")).then(() => {}),
      );
      const m = await server.waitForMessage();
      assert.equal(m.client.localPort, server.tlsPort);
      assert.notEqual(m.client.tls, null);
    });
  });

  it("a client that does not trust the CA is refused by its own verification", TEST, async () => {
    await withServer({ tls: true }, async (server) => {
      const mailer = createMailer(server.port, { requireTLS: true, tls: { rejectUnauthorized: true } });
      try {
        await assert.rejects(mailer.sendMail(mail("untrusted")), /self[- ]signed|certificate/i);
      } finally {
        mailer.close();
      }
      assert.deepEqual(server.messages, []);
    });
  });

  it(
    "AUTH with users: PLAIN and LOGIN after STARTTLS; a wrong password gets 535 and nothing is kept",
    TEST,
    async () => {
      await withServer({ tls: true, users: { alice: "secret", bob: "hunter2" } }, async (server) => {
        const tls = { ca: server.ca, rejectUnauthorized: true };
        await withMailer(
          server.port,
          { auth: { user: "alice", pass: "secret" }, authMethod: "PLAIN", tls },
          (m) => m.sendMail(mail("as alice")).then(() => {}),
        );
        await withMailer(
          server.port,
          { auth: { user: "bob", pass: "hunter2" }, authMethod: "LOGIN", tls },
          (m) => m.sendMail(mail("as bob")).then(() => {}),
        );
        const alice = await server.waitForMessage((m) => m.headers.get("subject") === "as alice");
        assert.equal(alice.client.authenticationId, "alice");
        assert.equal(alice.client.authorizationId, "alice");
        assert.notEqual(alice.client.tls, null);
        const bob = await server.waitForMessage((m) => m.client.authenticationId === "bob");
        assert.equal(bob.headers.get("subject"), "as bob");

        const wrong = createMailer(server.port, { auth: { user: "alice", pass: "guess" }, tls });
        try {
          await assert.rejects(wrong.sendMail(mail("wrong password")), (err: Error & { responseCode?: number }) => {
            assert.equal(err.responseCode, 535);
            return true;
          });
        } finally {
          wrong.close();
        }
        const unknown = createMailer(server.port, { auth: { user: "mallory", pass: "secret" }, tls });
        try {
          await assert.rejects(unknown.sendMail(mail("unknown user")), /535/);
        } finally {
          unknown.close();
        }
        assert.deepEqual(server.messages.map((m) => m.headers.get("subject")), ["as alice", "as bob"]);
      });
    },
  );

  it("AUTH with users and TLS is not offered before STARTTLS", TEST, async () => {
    await withServer({ tls: true, users: { alice: "secret" } }, async (server) => {
      const client = await RawClient.connect(server.port, server.host);
      try {
        await client.expect(220);
        const plain = await client.ehlo();
        assert.ok(plain.includes("STARTTLS"));
        assert.ok(!plain.some((k) => k.startsWith("AUTH")), plain.join(", "));
        await client.startTls({ ca: server.ca, servername: "localhost" });
        assert.ok((await client.ehlo()).includes("AUTH PLAIN LOGIN"));
      } finally {
        client.close();
      }
    });
  });

  it("AUTH with users and no TLS works on the plain connection; CRAM-MD5 is checked too", TEST, async () => {
    await withServer({ users: { alice: "secret" }, authMechanisms: ["CRAM-MD5", "PLAIN"] }, async (server) => {
      await withMailer(
        server.port,
        { auth: { user: "alice", pass: "secret" }, authMethod: "CRAM-MD5" },
        (m) => m.sendMail(mail("cram")).then(() => {}),
      );
      const m = await server.waitForMessage();
      assert.equal(m.client.authenticationId, "alice");
      assert.equal(m.client.tls, null);
      const wrong = createMailer(server.port, { auth: { user: "alice", pass: "nope" }, authMethod: "CRAM-MD5" });
      try {
        await assert.rejects(wrong.sendMail(mail("cram, wrong")), /535/);
      } finally {
        wrong.close();
      }
    });
  });

  it("PLAIN with another authorization identity is refused", TEST, async () => {
    await withServer({ users: { alice: "secret" } }, async (server) => {
      const client = await ehloClient(server.port, server.host);
      try {
        const asBob = Buffer.from("bob\0alice\0secret").toString("base64");
        assert.equal((await client.command(`AUTH PLAIN ${asBob}`)).code, 535);
        const asAlice = Buffer.from("\0alice\0secret").toString("base64");
        assert.equal((await client.command(`AUTH PLAIN ${asAlice}`)).code, 235);
      } finally {
        client.close();
      }
    });
  });

  it("users must map names to string passwords", TEST, async () => {
    await assert.rejects(startTestServer({ users: [] as unknown as Record<string, string> }), TypeError);
    await assert.rejects(
      startTestServer({ users: { alice: 1 } as unknown as Record<string, string> }),
      /password of user alice must be a string/,
    );
  });
});

describe("waitForMessage", () => {
  it("resolves with a message that arrives later and matches the predicate", TEST, async () => {
    await withServer({}, async (server) => {
      const waiting = server.waitForMessage((m) => m.rcptTo.includes("bob@example.com"), { timeout: 10_000 });
      await withMailer(server.port, {}, async (mailer) => {
        await mailer.sendMail(mail("to ann"));
        await mailer.sendMail(mail("to bob", "bob@example.com"));
      });
      const m = await waiting;
      assert.equal(m.headers.get("subject"), "to bob");
    });
  });

  it("resolves at once with a message already received, the first that matches", TEST, async () => {
    await withServer({}, async (server) => {
      await withMailer(server.port, {}, async (mailer) => {
        await mailer.sendMail(mail("one"));
        await mailer.sendMail(mail("two"));
      });
      assert.equal((await server.waitForMessage()).headers.get("subject"), "one");
      assert.equal((await server.waitForMessage(undefined, { timeout: 0 })).headers.get("subject"), "one");
      const two = await server.waitForMessage((m) => m.headers.get("subject") === "two", { timeout: 0 });
      assert.equal(two, server.messages[1]);
    });
  });

  it("rejects after the timeout, naming it and listing what was received", TEST, async () => {
    await withServer({}, async (server) => {
      await withMailer(server.port, {}, (mailer) => mailer.sendMail(mail("the only one")).then(() => {}));
      const started = Date.now();
      await assert.rejects(
        server.waitForMessage((m) => m.rcptTo.includes("nobody@example.com"), { timeout: 100 }),
        (err: Error) => {
          assert.equal(err.name, "TimeoutError");
          assert.match(err.message, /timed out after 100 ms/);
          assert.match(
            err.message,
            /1 message\(s\) received:\n {2}#1 app@example\.com -> ann@example\.com "the only one"/,
          );
          return true;
        },
      );
      assert.ok(Date.now() - started >= 90, "rejected before the timeout");
    });
  });

  it("with nothing received the error says so", TEST, async () => {
    await withServer({}, async (server) => {
      await assert.rejects(server.waitForMessage(undefined, { timeout: 20 }), /no message was received/);
    });
  });

  it("a predicate that throws rejects with its error; bad arguments are TypeErrors", TEST, async () => {
    await withServer({}, async (server) => {
      const boom = new Error("predicate failed");
      // Its rejection is awaited only after the send: handled from the start, so the runtime does not call it unhandled.
      const waiting = assert.rejects(
        server.waitForMessage(() => {
          throw boom;
        }),
        (err) => err === boom,
      );
      await withMailer(server.port, {}, (mailer) => mailer.sendMail(mail("x")).then(() => {}));
      await waiting;
      await assert.rejects(
        server.waitForMessage(() => {
          throw boom;
        }),
        (err) => err === boom,
      );
      await assert.rejects(server.waitForMessage(undefined, { timeout: -1 }), TypeError);
      await assert.rejects(server.waitForMessage(undefined, { timeout: Number.NaN }), TypeError);
      const options = { timeout: 5 } as unknown as (m: TestMessage) => boolean;
      await assert.rejects(server.waitForMessage(options), /options come second/);
    });
  });
});

describe("clear, close, several servers", () => {
  it("clear forgets the messages; messages is a copy", TEST, async () => {
    await withServer({}, async (server) => {
      await withMailer(server.port, {}, (mailer) => mailer.sendMail(mail("old")).then(() => {}));
      const copy = server.messages as TestMessage[];
      copy.pop();
      assert.equal(server.messages.length, 1, "changing the returned array changed the server's list");
      server.clear();
      assert.deepEqual(server.messages, []);
      await assert.rejects(server.waitForMessage(undefined, { timeout: 20 }), /no message was received/);
      await withMailer(server.port, {}, (mailer) => mailer.sendMail(mail("new")).then(() => {}));
      assert.equal((await server.waitForMessage()).headers.get("subject"), "new");
    });
  });

  it("close: idempotent, rejects waits, frees the port, keeps the messages", TEST, async () => {
    const server = await startTestServer();
    await withMailer(server.port, {}, (mailer) => mailer.sendMail(mail("kept")).then(() => {}));
    const waiting = assert.rejects(
      server.waitForMessage((m) => m.headers.get("subject") === "never", { timeout: Infinity }),
      /closed while waiting; 1 message\(s\) received/,
    );
    const first = server.close();
    assert.equal(server.close(), first, "a second close returns the same promise");
    await first;
    await server.close();
    await waiting;
    assert.equal(server.server.isStopped(), true);
    await assert.rejects(
      new Promise<void>((resolve, reject) => {
        const socket = net.connect(server.port, server.host, () => {
          socket.destroy();
          resolve();
        });
        socket.once("error", reject);
      }),
      /ECONNREFUSED|refused/i,
    );
    assert.equal(server.messages.length, 1);
    assert.equal((await server.waitForMessage()).headers.get("subject"), "kept");
    await assert.rejects(server.waitForMessage(() => false, { timeout: Infinity }), /test server is closed/);
  });

  it("await using closes the server at the end of the scope", TEST, async () => {
    let inner: TestServer;
    {
      await using server = await startTestServer();
      inner = server;
      assert.equal(server.server.isStopped(), false);
    }
    assert.equal(inner.server.isStopped(), true);
  });

  it("several servers at once keep their own messages", TEST, async () => {
    const [a, b] = await Promise.all([startTestServer(), startTestServer({ tls: true })]);
    try {
      assert.notEqual(a.port, b.port);
      await withMailer(a.port, {}, (mailer) => mailer.sendMail(mail("to a")).then(() => {}));
      await withMailer(b.port, { tls: { ca: b.ca } }, (mailer) => mailer.sendMail(mail("to b")).then(() => {}));
      assert.deepEqual(a.messages.map((m) => m.headers.get("subject")), ["to a"]);
      assert.deepEqual(b.messages.map((m) => m.headers.get("subject")), ["to b"]);
      a.clear();
      assert.equal(b.messages.length, 1);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe("server options and hooks pass through", () => {
  it("hooks of the application run; what they refuse is not kept", TEST, async () => {
    const seen: string[] = [];
    await withServer({
      onRcptToEvent(_ctx, rcpt) {
        if (rcpt.endsWith("@blocked.example>")) throw new Smtpd550Exception();
      },
      onMessageDataEvent(this: MidiSmtpServer, ctx) {
        assert.equal(typeof this.addresses, "object", "the hook runs with the server as `this`");
        seen.push(ctx.message.headers);
        if (ctx.message.text.includes("Subject: spam")) throw new Smtpd554Exception();
      },
    }, async (server) => {
      await withMailer(server.port, {}, async (mailer) => {
        const info = await mailer.sendMail(mail("mixed", ["ann@example.com", "eve@blocked.example"]));
        assert.deepEqual(info.rejected, ["eve@blocked.example"]);
        await assert.rejects(mailer.sendMail(mail("spam")), /554/);
      });
      assert.equal(seen.length, 2);
      assert.deepEqual(server.messages.map((m) => [m.headers.get("subject"), m.rcptTo]), [["mixed", [
        "ann@example.com",
      ]]]);
    });
  });

  it("an async onMessageDataEvent is awaited before the message is kept", TEST, async () => {
    await withServer({
      async onMessageDataEvent() {
        await new Promise((resolve) => setTimeout(resolve, 10));
      },
    }, async (server) => {
      await withMailer(server.port, {}, (mailer) => mailer.sendMail(mail("async")).then(() => {}));
      assert.equal(server.messages.length, 1, "kept once the client has its 250");
    });
  });

  it("a streaming hook gets the message, and the test server keeps the same bytes", TEST, async () => {
    const streamed: string[] = [];
    await withServer({
      async onMessageDataStreamEvent(_ctx, stream) {
        const text = await new Response(stream).text();
        streamed.push(text);
        if (text.includes("Subject: refuse me")) throw new Smtpd554Exception();
      },
    }, async (server) => {
      await withMailer(server.port, {}, async (mailer) => {
        await mailer.sendMail(mail("streamed", undefined, { text: "x".repeat(200_000) }));
        await assert.rejects(mailer.sendMail(mail("refuse me")), /554/);
      });
      assert.equal(streamed.length, 2);
      assert.equal(server.messages.length, 1);
      assert.equal(server.messages[0].text, streamed[0]);
    });
  });

  it("TLS turned on by tlsMode alone still gets a certificate the client can trust", TEST, async () => {
    await withServer({ tlsMode: "TLS_REQUIRED" }, async (server) => {
      assert.equal(server.tlsPort, undefined);
      assert.ok(server.ca);
      await withMailer(server.port, { tls: { ca: server.ca } }, (m) => m.sendMail(mail("required")).then(() => {}));
      assert.notEqual((await server.waitForMessage()).client.tls, null);
    });
  });

  it("a certificate of your own is used, and no ca is made up", TEST, async () => {
    const own = await generateSelfSignedCertificate({ hosts: ["127.0.0.1"], keyType: "ec" });
    await withServer({ tls: true, tlsCert: own.cert, tlsKey: own.key }, async (server) => {
      assert.equal(server.ca, undefined);
      assert.equal(server.server.tlsFingerprint, own.fingerprint256);
      await withMailer(
        server.port,
        { requireTLS: true, tls: { ca: own.cert } },
        (m) => m.sendMail(mail("own certificate")).then(() => {}),
      );
      assert.equal(server.messages.length, 1);
    });
  });

  it("other options override the defaults (here: no PIPELINING, a size limit)", TEST, async () => {
    await withServer({ pipeliningExtension: false, maxMessageSize: 1000 }, async (server) => {
      const client = await RawClient.connect(server.port, server.host);
      try {
        await client.expect(220);
        const keywords = await client.ehlo();
        assert.ok(!keywords.includes("PIPELINING"));
        assert.ok(keywords.includes("SIZE 1000"));
      } finally {
        client.close();
      }
    });
  });
});

describe("parseHeaders", () => {
  it("unfolds, decodes adjacent encoded words (split inside a character too), keeps order", () => {
    // "€" is E2 82 AC: split across two Q words, as a mailer may split a long line.
    const h = parseHeaders(
      "Subject: =?UTF-8?Q?price_=E2=82?=\r\n =?UTF-8?Q?=AC_5?= and\r\n\tmore\r\n" +
        "X-Latin: =?ISO-8859-1?Q?caf=E9?=\r\nX-Odd: =?x-unknown?Q?kept?= =?UTF-8?B?!!?=\r\n\r\nSubject: body\r\n",
    );
    assert.equal(h.get("subject"), "price € 5 and\tmore");
    assert.equal(h.get("x-latin"), "café");
    assert.equal(h.get("X-ODD"), "=?x-unknown?Q?kept?= =?UTF-8?B?!!?=");
    assert.deepEqual(h.fields.map((f) => f.name), ["Subject", "X-Latin", "X-Odd"]);
    assert.deepEqual(h.getAll("subject"), ["price € 5 and\tmore"]);
  });

  it("bare LF line ends, no empty line, no header section, lines that are no field", () => {
    assert.equal(parseHeaders("A: 1\nB:2\n\nbody").raw, "A: 1\nB:2\n");
    assert.equal(parseHeaders("A: 1\nB:2\n\nbody").get("b"), "2");
    assert.equal(parseHeaders("A: 1\r\nB: 2").raw, "A: 1\r\nB: 2");
    assert.equal(parseHeaders("A: 1\r\nB: 2").get("b"), "2");
    assert.equal(parseHeaders("\r\nA: 1\r\n").raw, "");
    assert.equal(parseHeaders("\r\nA: 1\r\n").has("a"), false);
    const odd = parseHeaders(" folded first\r\nFrom mbox line\r\nOK: yes\r\n\r\n");
    assert.deepEqual(odd.fields, [{ name: "OK", value: "yes" }]);
    assert.equal(parseHeaders("").raw, "");
  });
});

/** The scratch test file for each native runner, `await using` for cleanup. */
function scratchTest(runner: "deno" | "bun" | "node"): string {
  const entry = pathToFileURL(join(ROOT, "src", "testing.ts")).href;
  const head = {
    deno:
      `const test = Deno.test;\nconst equal = (a: unknown, b: unknown) => { if (a !== b) throw new Error(\`\${a} !== \${b}\`); };`,
    bun: `import { expect, test } from "bun:test";\nconst equal = (a: unknown, b: unknown) => expect(a).toBe(b);`,
    node: `import { test } from "node:test";\nimport { strictEqual as equal } from "node:assert";`,
  }[runner];
  return mailTestSource({
    head: `${head}\nimport nodemailer from "nodemailer";\nimport { startTestServer } from ${JSON.stringify(entry)};`,
    cleanup: "await using",
  });
}

describe("from a scratch project, with this runtime's own test runner", () => {
  it(`runs under ${runtime === "node" ? "node --test" : `${runtime} test`}`, { timeout: 120_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "midi-smtp-testing-"));
    try {
      // The project's installed packages, as a consumer's own node_modules: nothing is downloaded.
      symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"), "dir");
      writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module", private: true }));
      writeFileSync(join(dir, "mail.test.ts"), scratchTest(runtime));
      const args = {
        deno: ["test", "-A", "--no-check", "mail.test.ts"],
        bun: ["test", "--timeout", "30000", "./mail.test.ts"],
        node: ["--import", "tsx", "--test", "mail.test.ts"],
      }[runtime];
      const env: Record<string, string> = { ...process.env as Record<string, string>, NO_COLOR: "1" };
      // A surrounding `node --test` tells its children to report to it; this child must report on its own.
      delete env.NODE_TEST_CONTEXT;
      const { code, output } = await new Promise<{ code: number; output: string }>((resolve) => {
        execFile(process.execPath, args, { cwd: dir, env, timeout: 100_000 }, (err, stdout, stderr) => {
          resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, output: stdout + stderr });
        });
      });
      assert.equal(code, 0, output);
      const passed = {
        deno: /ok \| 2 passed \| 0 failed/,
        bun: /^\s*2 pass\s*$/m,
        node: /^(?:#|ℹ) pass 2$/m, // TAP up to Node 22, spec from Node 23 on (output not a TTY)
      }[runtime];
      assert.match(output, passed);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
