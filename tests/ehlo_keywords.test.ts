/**
 * The EHLO keyword list (src/session/ehlo_keywords.ts): the built-in lines
 * for each situation, and the application's adjustment checked line by line.
 * The wire behaviour (a hidden keyword is also refused) is in registry.test.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { resolveOptions } from "../src/options.ts";
import type { SmtpdContext } from "../src/context.ts";
import { builtinKeywords, type KeywordSituation, offeredKeywords } from "../src/session/ehlo_keywords.ts";

const plain: KeywordSituation = {
  pipelining: false,
  startTls: false,
  encrypted: false,
  authMechanisms: [],
  xclient: false,
};
const ctx = {} as SmtpdContext;

describe("builtinKeywords", () => {
  it("lists every extension in a fixed order", () => {
    const options = resolveOptions({
      internationalizationExtensions: true,
      chunkingExtension: true,
      binaryMimeExtension: true,
      dsnExtension: true,
      requireTlsExtension: true,
    });
    const lines = builtinKeywords(options, {
      pipelining: true,
      startTls: false,
      encrypted: true,
      authMechanisms: ["PLAIN", "LOGIN"],
      xclient: true,
    });
    assert.deepEqual(lines.map((l) => l.split(" ")[0]), [
      "PIPELINING",
      "SIZE",
      "8BITMIME",
      "SMTPUTF8",
      "ENHANCEDSTATUSCODES",
      "CHUNKING",
      "BINARYMIME",
      "DSN",
      "REQUIRETLS",
      "AUTH",
      "XCLIENT",
      "XFORWARD",
    ]);
    assert.equal(lines.at(-2), "XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT");
  });

  it("offers REQUIRETLS only inside TLS, and STARTTLS only when asked", () => {
    const options = resolveOptions({ requireTlsExtension: true });
    assert.ok(!builtinKeywords(options, plain).includes("REQUIRETLS"));
    assert.ok(builtinKeywords(options, { ...plain, encrypted: true }).includes("REQUIRETLS"));
    assert.ok(builtinKeywords(options, { ...plain, startTls: true }).includes("STARTTLS"));
    assert.deepEqual(builtinKeywords(resolveOptions({ maxMessageSize: 0 }), plain), ["SIZE", "ENHANCEDSTATUSCODES"]);
  });
});

describe("offeredKeywords", () => {
  it("keeps the built-in list without an adjustment", () => {
    const offered = offeredKeywords(ctx, ["SIZE 10", "STARTTLS"], undefined, () => assert.fail());
    assert.deepEqual([...offered], [["SIZE", "SIZE 10"], ["STARTTLS", "STARTTLS"]]);
  });

  it("takes a returned list, or the array changed in place", () => {
    const added = offeredKeywords(ctx, ["SIZE"], (_c, lines) => [...lines, "X-FOO bar"], () => {});
    assert.deepEqual([...added.keys()], ["SIZE", "X-FOO"]);
    const inPlace = offeredKeywords(ctx, ["SIZE", "STARTTLS"], (_c, lines) => {
      lines.pop();
    }, () => {});
    assert.deepEqual([...inPlace.keys()], ["SIZE"]);
  });

  it("leaves out lines that would break the reply, and reports them", () => {
    const reports: string[] = [];
    const offered = offeredKeywords(ctx, [], () => ["GOOD", "BAD\r\n250 INJECTED", "", " SPACE", 7 as never], (m) => {
      reports.push(m);
    });
    assert.deepEqual([...offered.keys()], ["GOOD"]);
    assert.equal(reports.length, 4);
  });

  it("falls back to the built-in list when the adjustment throws, even after changing the array", () => {
    const reports: string[] = [];
    const builtin = ["SIZE", "STARTTLS"];
    const offered = offeredKeywords(ctx, builtin, (_c, lines) => {
      lines.length = 0;
      throw new Error("boom");
    }, (m) => reports.push(m));
    assert.deepEqual([...offered.keys()], ["SIZE", "STARTTLS"]);
    assert.match(reports[0], /boom/);
  });
});
