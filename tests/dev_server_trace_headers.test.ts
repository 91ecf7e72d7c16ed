/**
 * Tests of the dev server's trace headers for LMTP, XCLIENT and Unix-socket clients
 * (src/dev_server/trace_headers.ts; its sanitising is in tests/trace_headers.test.ts), run under all three runtimes:
 *
 *   deno test -A tests/dev_server_trace_headers.test.ts
 *   bun test ./tests/dev_server_trace_headers.test.ts
 *   node --import tsx --test tests/dev_server_trace_headers.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { receivedProtocol, traceHeaders, type TraceInfo } from "../src/dev_server/trace_headers.ts";

const BASE: TraceInfo = {
  from: "<sender@example.com>",
  to: ["<rcpt@example.org>"],
  helo: "client.example",
  heloMode: "EHLO",
  remoteHost: "client.example",
  remoteIp: "192.0.2.7",
  localHost: "mx.example",
  id: "ABC123",
  date: new Date("2026-11-28T10:00:00Z"),
};

describe("receivedProtocol", () => {
  it("names the protocol as RFC 3848 does, LMTP included", () => {
    const cases: Array<[string, boolean, boolean, string]> = [
      ["HELO", false, false, "SMTP"],
      ["HELO", true, true, "SMTP"],
      ["", false, false, "SMTP"],
      ["EHLO", false, false, "ESMTP"],
      ["EHLO", true, false, "ESMTPS"],
      ["EHLO", false, true, "ESMTPA"],
      ["EHLO", true, true, "ESMTPSA"],
      ["LHLO", false, false, "LMTP"],
      ["LHLO", true, false, "LMTPS"],
      ["LHLO", false, true, "LMTPA"],
      ["LHLO", true, true, "LMTPSA"],
    ];
    for (const [heloMode, encrypted, authenticated, expected] of cases) {
      assert.equal(receivedProtocol(heloMode, { encrypted, authenticated }), expected, JSON.stringify(cases));
    }
    assert.equal(receivedProtocol("EHLO"), "ESMTP");
  });
});

describe("traceHeaders for LMTP and clients without an address", () => {
  it("an LHLO session is received `with LMTP` (LMTPS over TLS)", () => {
    assert.match(traceHeaders({ ...BASE, heloMode: "LHLO" }), /\r\n\tby mx\.example with LMTP id ABC123\r\n/);
    assert.match(traceHeaders({ ...BASE, heloMode: "LHLO", encrypted: true }), / with LMTPS id /);
  });

  it("a client without an IP address (a Unix socket): the host name alone, no empty literal", () => {
    const headers = traceHeaders({ ...BASE, remoteHost: "localhost", remoteIp: null, localHost: "localhost" });
    assert.equal(
      headers,
      "Return-Path: <sender@example.com>\r\n" +
        "Received: from client.example (localhost)\r\n" +
        "\tby localhost with ESMTP id ABC123\r\n" +
        "\tfor <rcpt@example.org>; Sat, 28 Nov 2026 10:00:00 +0000\r\n",
    );
    // Nothing left of the host name still gives a token.
    assert.match(
      traceHeaders({ ...BASE, remoteHost: "", remoteIp: null }),
      /^Received: from client\.example \(unknown\)\r$/m,
    );
  });

  it("the client XCLIENT named (its NAME, ADDR and HELO in the session's fields) is the one in the header", () => {
    const headers = traceHeaders({ ...BASE, helo: "real.helo", remoteHost: "real.example", remoteIp: "2001:db8::9" });
    assert.match(headers, /^Received: from real\.helo \(real\.example \[IPv6:2001:db8::9\]\)\r$/m);
  });
});
