/**
 * Unit tests of hook reply formatting (`formatHookReply` in src/session/replies.ts) and of the
 * non-SMTP line classifier (`forbiddenCommand` in src/session/arguments.ts; which lines are commands is
 * the session's command table's), run under all three runtimes:
 *
 *   deno test -A tests/replies_hooks.test.ts
 *   bun test ./tests/replies_hooks.test.ts
 *   node --import tsx --test tests/replies_hooks.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { formatHookReply } from "../src/session/replies.ts";
import { forbiddenCommand } from "../src/session/arguments.ts";

/** Checks that `wire` is one valid reply: CRLF lines, one code, `-` on all but the last line. */
function assertOneReply(wire: string): void {
  assert.ok(wire.endsWith("\r\n"), JSON.stringify(wire));
  const lines = wire.slice(0, -2).split("\r\n");
  const code = wire.slice(0, 3);
  lines.forEach((line, i) => {
    assert.ok(!/[\r\n]/.test(line), `bare CR or LF in ${JSON.stringify(wire)}`);
    const last = i === lines.length - 1;
    assert.match(line, last ? /^\d{3}( |$)/ : /^\d{3}-/, `line ${i} of ${JSON.stringify(wire)}`);
    assert.equal(line.slice(0, 3), code);
  });
}

describe("formatHookReply", () => {
  it("formats a single line", () => {
    assert.equal(formatHookReply("250 OK"), "250 OK\r\n");
    assert.equal(formatHookReply("550 5.7.1 Relaying denied"), "550 5.7.1 Relaying denied\r\n");
    assert.equal(formatHookReply("421"), "421\r\n");
  });

  it("accepts one trailing line break", () => {
    assert.equal(formatHookReply("250 OK\n"), "250 OK\r\n");
    assert.equal(formatHookReply("250 OK\r\n"), "250 OK\r\n");
  });

  it("joins lines separated by LF into one multi-line reply", () => {
    assert.equal(formatHookReply("250-first\n250 second"), "250-first\r\n250 second\r\n");
    assert.equal(formatHookReply("250-a\n250-b\n250-c"), "250-a\r\n250-b\r\n250 c\r\n");
  });

  it("joins lines separated by CRLF, and mixed separators", () => {
    assert.equal(formatHookReply("250-first\r\n250 second"), "250-first\r\n250 second\r\n");
    assert.equal(formatHookReply("250-a\r\n250-b\n250 c\r\n"), "250-a\r\n250-b\r\n250 c\r\n");
  });

  it("sets the separators right whatever the hook wrote", () => {
    // Space on every line, dash on the last one: the client would wait for more or stop early.
    assert.equal(formatHookReply("250 a\n250 b\n250 c"), "250-a\r\n250-b\r\n250 c\r\n");
    assert.equal(formatHookReply("250-a\n250-b\n"), "250-a\r\n250 b\r\n");
    assert.equal(formatHookReply("451-\n451 later"), "451-\r\n451 later\r\n");
    assert.equal(formatHookReply("550 text\n550"), "550-text\r\n550\r\n");
  });

  it("returns undefined when the codes differ", () => {
    assert.equal(formatHookReply("250-first\n251 second"), undefined);
    assert.equal(formatHookReply("250 OK\r\n550 no"), undefined);
    assert.equal(formatHookReply("550-a\n550-b\n450 c"), undefined);
  });

  it("returns undefined when a line has no reply code", () => {
    assert.equal(formatHookReply("hello"), undefined);
    assert.equal(formatHookReply(""), undefined);
    assert.equal(formatHookReply("250-first\nsecond"), undefined);
    assert.equal(formatHookReply("first\n250 second"), undefined);
    assert.equal(formatHookReply("250-a\n\n250 b"), undefined, "an empty line in between");
    assert.equal(formatHookReply("\n250 OK"), undefined, "an empty first line");
    assert.equal(formatHookReply(" 250 OK"), undefined);
    assert.equal(formatHookReply("250OK"), undefined);
    assert.equal(formatHookReply("2500 OK"), undefined);
    assert.equal(formatHookReply("25 OK"), undefined);
  });

  it("returns undefined for codes outside 200..599", () => {
    assert.equal(formatHookReply("199 x"), undefined);
    assert.equal(formatHookReply("600 x"), undefined);
    assert.equal(formatHookReply("099 x"), undefined);
    assert.equal(formatHookReply("abc x"), undefined);
    assert.equal(formatHookReply("200 x"), "200 x\r\n");
    assert.equal(formatHookReply("599 x"), "599 x\r\n");
  });

  it("does not let a hook inject a second reply with CR or LF", () => {
    // A 250 followed by what would look like the answer to the next pipelined command.
    assert.equal(formatHookReply("250 OK\r\n354 Start mail input"), undefined);
    assert.equal(formatHookReply("250 OK\n354 Start mail input"), undefined);
    assert.equal(formatHookReply("250 OK\r354 Start mail input"), undefined, "a bare CR splits too");
    assert.equal(formatHookReply("250 OK\rMAIL FROM:<x@y.example>"), undefined);
    assert.equal(formatHookReply("250 OK\r\n\r\n250 again"), undefined);
    // Same code: one reply, never two.
    const same = formatHookReply("250 OK\r\n250 OK");
    assert.equal(same, "250-OK\r\n250 OK\r\n");
    const bareCr = formatHookReply("250 a\r250 b");
    assert.equal(bareCr, "250-a\r\n250 b\r\n");
    for (const wire of [same, bareCr]) assertOneReply(wire!);
  });

  it("always returns one valid reply or undefined", () => {
    const pieces = ["250", "250 ", "250-", "550 ", "x", "", " ok", "\r", "\n", "\r\n"];
    let checked = 0;
    for (const a of pieces) {
      for (const b of pieces) {
        for (const c of pieces) {
          const text = a + b + c;
          const wire = formatHookReply(text);
          if (wire !== undefined) {
            assertOneReply(wire);
            checked++;
          }
        }
      }
    }
    assert.ok(checked > 50, `only ${checked} inputs gave a reply`);
  });
});

describe("forbiddenCommand", () => {
  it("finds HTTP request lines, whatever the case", () => {
    for (
      const line of [
        "GET / HTTP/1.1",
        "get / http/1.1",
        "Get /index.html HTTP/1.0",
        "POST /submit HTTP/1.1",
        "post /x HTTP/1.1",
        "HEAD / HTTP/1.1",
        "PUT /file HTTP/1.1",
        "DELETE /file HTTP/1.1",
        "OPTIONS * HTTP/1.1",
        "PATCH /x HTTP/1.1",
        "TRACE / HTTP/1.1",
        "CONNECT mail.example:25 HTTP/1.1",
        "connect 192.0.2.1:25 HTTP/1.0",
        "PRI * HTTP/2.0",
      ]
    ) {
      assert.equal(forbiddenCommand(line), true, line);
    }
  });

  it("finds header-like lines", () => {
    for (
      const line of [
        "Host: example.com",
        "host:example.com",
        "User-Agent: curl/8.0",
        "Content-Type: application/x-www-form-urlencoded",
        "X-Forwarded-For: 192.0.2.1",
        "Subject: hello",
        "From: a@b.example",
        "X:",
      ]
    ) {
      assert.equal(forbiddenCommand(line), true, line);
    }
  });

  it("lets SMTP commands through", () => {
    for (
      const line of [
        "EHLO client.example",
        "ehlo x",
        "HELO x",
        "MAIL FROM:<a@b.example>",
        "mail from:<a@b.example> SIZE=100",
        "MAIL FROM: <a@b.example>",
        "MAIL FROM:<>",
        "RCPT TO:<c@d.example>",
        "rcpt to:<Postmaster>",
        "RCPT TO:<@relay.example:c@d.example>",
        "AUTH PLAIN AGFsaWNlAHNlY3JldA==",
        "AUTH LOGIN",
        "AUTH CRAM-MD5",
        "DATA",
        "RSET",
        "NOOP",
        "QUIT",
        "HELP",
        "STARTTLS",
        "VRFY postmaster",
        "EXPN list",
        "",
        "dXNlcm5hbWU=",
      ]
    ) {
      assert.equal(forbiddenCommand(line), false, line);
    }
  });

  it("needs the space after an HTTP method, and a name before a colon", () => {
    assert.equal(forbiddenCommand("GET"), false);
    assert.equal(forbiddenCommand("GETTER / x"), false);
    assert.equal(forbiddenCommand("POSTMASTER"), false);
    assert.equal(forbiddenCommand(": value"), false);
    assert.equal(forbiddenCommand("1x: value"), false);
    assert.equal(forbiddenCommand(" GET / HTTP/1.1"), false);
  });
});
