/**
 * Tests of the dev server's trace headers and their sanitising (src/dev_server/trace_headers.ts), run under all
 * three runtimes:
 *
 *   deno test -A tests/trace_headers.test.ts
 *   bun test ./tests/trace_headers.test.ts
 *   node --import tsx --test tests/trace_headers.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { rfc5322Date, sanitizeHeaderValue, traceHeaders, type TraceInfo } from "../src/dev_server/trace_headers.ts";

const BASE: TraceInfo = {
  from: "<sender@example.com>",
  to: ["<rcpt@example.org>", "<other@example.org>"],
  helo: "client.example",
  heloMode: "EHLO",
  remoteHost: "client.example",
  remoteIp: "192.0.2.7",
  localHost: "mx.example",
  id: "ABC123",
  date: new Date("2026-11-28T10:00:00Z"),
};

/** Header lines must be: Return-Path, Received, then tab-led continuations; nothing else. */
function assertTraceShape(headers: string): void {
  assert.ok(headers.endsWith("\r\n"), "ends with CRLF");
  const lines = headers.slice(0, -2).split("\r\n");
  assert.equal(lines.length, 4, `exactly four lines: ${JSON.stringify(headers)}`);
  assert.match(lines[0], /^Return-Path: <[^<>]*>$/);
  assert.match(lines[1], /^Received: from \S+ \(\S+ \[\S+\]\)$/);
  assert.match(lines[2], /^\tby \S+ with E?SMTPS?A? id \S+$/);
  assert.match(lines[3], /^\tfor <[^<>]*>; \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000$/);
  for (const line of lines) {
    // deno-lint-ignore no-control-regex
    assert.ok(!/[\x00-\x08\x0a-\x1f\x7f]/.test(line), `control character in ${JSON.stringify(line)}`);
    assert.ok(line.length <= 998, "RFC 5322 line length");
  }
}

describe("traceHeaders", () => {
  it("builds Return-Path and Received with the first recipient and an RFC 5322 date", () => {
    assert.equal(
      traceHeaders(BASE),
      "Return-Path: <sender@example.com>\r\n" +
        "Received: from client.example (client.example [192.0.2.7])\r\n" +
        "\tby mx.example with ESMTP id ABC123\r\n" +
        "\tfor <rcpt@example.org>; Sat, 28 Nov 2026 10:00:00 +0000\r\n",
    );
    assertTraceShape(traceHeaders(BASE));
  });

  it("names the protocol: SMTP for HELO, ESMTP, ESMTPS, ESMTPA, ESMTPSA", () => {
    const proto = (info: Partial<TraceInfo>) => / with (\S+) /.exec(traceHeaders({ ...BASE, ...info }))![1];
    assert.equal(proto({ heloMode: "HELO" }), "SMTP");
    assert.equal(proto({ heloMode: "HELO", encrypted: true, authenticated: true }), "SMTP");
    assert.equal(proto({ heloMode: "EHLO" }), "ESMTP");
    assert.equal(proto({ encrypted: true }), "ESMTPS");
    assert.equal(proto({ authenticated: true }), "ESMTPA");
    assert.equal(proto({ encrypted: true, authenticated: true }), "ESMTPSA");
  });

  it("writes the null path as <>, IPv6 as an IPv6: literal, and uses LF for CRLF_LEAVE messages", () => {
    const headers = traceHeaders({ ...BASE, from: "<>", remoteIp: "::1", remoteHost: "::1" });
    assert.match(headers, /^Return-Path: <>\r\n/);
    assert.match(headers, /\(::1 \[IPv6:::1\]\)/);
    const lf = traceHeaders({ ...BASE, crlf: "\n" });
    assert.ok(!lf.includes("\r"));
    assert.equal(lf.split("\n").length, 5);
  });

  it("a HELO with CRLF, NUL and header text cannot inject a header", () => {
    const evil = "evil.example\r\nBcc: victim@example.com\r\n\x00X-Injected: 1\n\rSubject: pwned";
    const headers = traceHeaders({
      ...BASE,
      helo: evil,
      remoteHost: evil,
      localHost: evil,
      id: evil,
      remoteIp: "1.2.3.4\r\nX-Ip: 1",
      from: `<a@b.example>\r\nX-From: 1\r\n<c@d.example>`,
      to: ["<x@y.example>\r\nX-To: 1", "<z@y.example>"],
    });
    assertTraceShape(headers);
    assert.ok(!/\r\n(Bcc|X-Injected|Subject|X-Ip|X-From|X-To):/.test(headers), headers);
    assert.match(headers, /^Received: from evil\.exampleBcc:\?victim@example\.com/m);
  });

  it("tabs, DEL, C1 controls, bidi overrides, zero-width characters and lone surrogates never get through", () => {
    const nasty = "a\tb\x7fc\x85d\u202ee\u200bf\u2028g\ud800h\ufeffi\u2066j";
    const headers = traceHeaders({ ...BASE, helo: nasty, remoteHost: nasty, utf8: true, from: `<${nasty}@x>` });
    assertTraceShape(headers);
    for (const bad of ["\t", "\x7f", "\x85", "\u202e", "\u200b", "\u2028", "\ud800", "\ufeff", "\u2066"]) {
      assert.ok(!headers.split("\r\n").map((l) => l.replace(/^\t/, "")).join("").includes(bad), JSON.stringify(bad));
    }
    assert.match(headers, /from abcd\?e\?f\?g\?h\?i\?j /);
  });

  it("non-ASCII is replaced unless the message is SMTPUTF8", () => {
    const info = { ...BASE, from: "<j\u00fcrgen@b\u00fccher.example>", helo: "b\u00fccher.example" };
    const ascii = traceHeaders(info);
    // deno-lint-ignore no-control-regex
    assert.ok(/^[\x09\x0d\x0a\x20-\x7e]*$/.test(ascii), ascii);
    assert.match(ascii, /^Return-Path: <j\?rgen@b\?cher\.example>/);
    const utf8 = traceHeaders({ ...info, utf8: true });
    assert.match(utf8, /^Return-Path: <j\u00fcrgen@b\u00fccher\.example>/);
    assert.match(utf8, /from b\u00fccher\.example /);
  });

  it("caps every value at 255 characters and keeps structure characters out of tokens and paths", () => {
    const long = "h".repeat(5000);
    const headers = traceHeaders({ ...BASE, helo: long, from: `<${long}>`, to: [`<${long}>`], id: long });
    assertTraceShape(headers);
    assert.ok(!headers.includes("h".repeat(256)));
    assert.ok(headers.includes("h".repeat(255)));
    const tricky = traceHeaders({ ...BASE, helo: "a (b [c]);d", from: "<a<b>c@d>", remoteHost: "" });
    assertTraceShape(tricky);
    assert.match(tricky, /^Return-Path: <a\?b\?c@d>\r\n/);
    assert.match(tricky, /from a\?\?b\?\[c\]\?\?d \(unknown \[192\.0\.2\.7\]\)/);
  });

  it("random garbage in every field always yields the same four well-formed lines", () => {
    let seed = 12345;
    const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const garbage = () => {
      let s = "";
      const n = Math.floor(rand() * 40);
      for (let i = 0; i < n; i++) {
        const pick = rand();
        const cp = pick < 0.4
          ? Math.floor(rand() * 0x80)
          : pick < 0.8
          ? Math.floor(rand() * 0x3000)
          : 0xd800 + Math.floor(rand() * 0x800);
        s += String.fromCharCode(cp);
      }
      return s;
    };
    for (let i = 0; i < 500; i++) {
      const headers = traceHeaders({
        from: garbage(),
        to: [garbage()],
        helo: garbage(),
        heloMode: garbage(),
        remoteHost: garbage(),
        remoteIp: garbage(),
        localHost: garbage(),
        id: garbage(),
        date: BASE.date,
        utf8: rand() < 0.5,
      });
      assertTraceShape(headers);
    }
  });

  it("sanitizeHeaderValue removes controls, replaces forbidden characters and caps the length", () => {
    assert.equal(sanitizeHeaderValue("a\r\nb\x00c\td"), "abcd");
    assert.equal(sanitizeHeaderValue("a b", { forbidden: " " }), "a?b");
    assert.equal(sanitizeHeaderValue("\u00e9", {}), "?");
    assert.equal(sanitizeHeaderValue("\u00e9", { utf8: true }), "\u00e9");
    assert.equal(sanitizeHeaderValue("\u{1f600}x", { utf8: true }), "\u{1f600}x");
    assert.equal(sanitizeHeaderValue("abcdef", { max: 3 }), "abc");
  });

  it("rfc5322Date formats in UTC with a numeric zone", () => {
    assert.equal(rfc5322Date(new Date("2026-01-02T03:04:05Z")), "Fri, 02 Jan 2026 03:04:05 +0000");
  });
});
