/**
 * Unit tests of the DSN parameter values (RFC 3461 RET, ENVID, NOTIFY,
 * ORCPT) and REQUIRETLS (RFC 8689) in src/session/dsn_params.ts, run under
 * all three runtimes:
 *
 *   deno test -A tests/dsn_params.test.ts
 *   bun test ./tests/dsn_params.test.ts
 *   node --import tsx --test tests/dsn_params.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseEnvid, parseNotify, parseOrcpt, parseRequireTls, parseRet } from "../src/session/dsn_params.ts";
import { SmtpdException } from "../src/exceptions.ts";

/** Asserts that `fn` throws exactly the reply `501 5.5.4 <text>`, with `detail` (if given) in the log message. */
function refuses(fn: () => unknown, text: string, detail?: RegExp, what = ""): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SmtpdException, `${what}: expected an SmtpdException, got ${String(err)}`);
    assert.equal(err.smtpdResult, `501 5.5.4 ${text}`, what);
    if (detail) assert.match(err.message, detail, what);
    assert.ok(!/[^\x20-\x7e]/.test(err.message), `${what}: the log message is printable ASCII`);
    return true;
  }, what);
}

const RET = "Bad RET parameter syntax";
const ENVID = "Bad ENVID parameter syntax";
const NOTIFY = "Error: Bad NOTIFY parameter syntax";
const ORCPT = "Error: Bad ORCPT parameter syntax";

describe("parseRet", () => {
  it("takes FULL and HDRS in any case", () => {
    assert.equal(parseRet("FULL"), "FULL");
    assert.equal(parseRet("full"), "FULL");
    assert.equal(parseRet("Hdrs"), "HDRS");
  });

  it("refuses other words, an empty value and the bare keyword", () => {
    for (const bad of ["PARTIAL", "FULLX", "HDR", "", " FULL", "FULL,HDRS"]) {
      refuses(() => parseRet(bad), RET, undefined, bad);
    }
    refuses(() => parseRet(true), RET, /needs a value/);
  });
});

describe("parseEnvid", () => {
  it("decodes xtext (RFC 3461's example QQ314159+2B1 -> QQ314159+1)", () => {
    assert.equal(parseEnvid("QQ314159+2B1"), "QQ314159+1");
    assert.equal(parseEnvid("<a1b2.c3@client.example>"), "<a1b2.c3@client.example>");
    assert.equal(parseEnvid("a+3db"), "a=b");
  });

  it("takes up to 100 decoded characters, however long the xtext", () => {
    assert.equal(parseEnvid("x".repeat(100)), "x".repeat(100));
    assert.equal(parseEnvid("+2B".repeat(100)), "+".repeat(100));
    refuses(() => parseEnvid("x".repeat(101)), ENVID, /longer than 100/);
    refuses(() => parseEnvid("+2B".repeat(101)), ENVID, /longer than 100/);
  });

  it("refuses bad xtext: +, +A, +GG, a raw = or non-ASCII, naming the problem in the log only", () => {
    refuses(() => parseEnvid("+"), ENVID, /"\+" must be followed by two hex digits/);
    refuses(() => parseEnvid("abc+A"), ENVID, /two hex digits \(offset 3\)/);
    refuses(() => parseEnvid("+GG"), ENVID, /two hex digits/);
    refuses(() => parseEnvid("a=b"), ENVID, /raw "="/);
    refuses(() => parseEnvid("jörg"), ENVID, /raw non-ASCII/);
  });

  it("refuses an injected CRLF (+0D+0A), NUL, any control, space or 8-bit once decoded", () => {
    refuses(() => parseEnvid("x+0D+0AReceived:+20forged"), ENVID, /not graphic US-ASCII/);
    for (const bad of ["+00", "a+0Ab", "a+0Db", "+09", "+7F", "a+20b", "+C3+A9"]) {
      refuses(() => parseEnvid(bad), ENVID, undefined, bad);
    }
  });

  it("refuses the bare keyword and an empty value", () => {
    refuses(() => parseEnvid(true), ENVID, /needs a value/);
    refuses(() => parseEnvid(""), ENVID, /empty/);
  });
});

describe("parseNotify", () => {
  it("takes NEVER alone, or a list of SUCCESS, FAILURE and DELAY, any case, in the order sent", () => {
    assert.deepEqual(parseNotify("NEVER"), ["NEVER"]);
    assert.deepEqual(parseNotify("never"), ["NEVER"]);
    assert.deepEqual(parseNotify("SUCCESS"), ["SUCCESS"]);
    assert.deepEqual(parseNotify("failure,Delay"), ["FAILURE", "DELAY"]);
    assert.deepEqual(parseNotify("DELAY,SUCCESS,FAILURE"), ["DELAY", "SUCCESS", "FAILURE"]);
  });

  it("refuses NEVER with another word, wherever it stands", () => {
    refuses(() => parseNotify("NEVER,SUCCESS"), NOTIFY, /NEVER must stand alone/);
    refuses(() => parseNotify("SUCCESS,NEVER"), NOTIFY, /NEVER must stand alone/);
    refuses(() => parseNotify("NEVER,NEVER"), NOTIFY, /twice/);
  });

  it("refuses a word twice, in any case", () => {
    refuses(() => parseNotify("SUCCESS,success"), NOTIFY, /SUCCESS twice/);
    refuses(() => parseNotify("DELAY,FAILURE,DELAY"), NOTIFY, /DELAY twice/);
  });

  it("refuses unknown and empty words, spaces, the bare keyword", () => {
    for (const bad of ["", "ALWAYS", "SUCCESS,", ",SUCCESS", "SUCCESS,,DELAY", "SUCCESS, DELAY", "SUCCESS;DELAY"]) {
      refuses(() => parseNotify(bad), NOTIFY, undefined, bad);
    }
    refuses(() => parseNotify(true), NOTIFY, /needs a value/);
  });
});

describe("parseOrcpt", () => {
  it("splits the type from the xtext address and decodes it", () => {
    assert.deepEqual(parseOrcpt("rfc822;bob@example.com"), { type: "rfc822", address: "bob@example.com" });
    assert.deepEqual(parseOrcpt("rfc822;bob+2Bdsn@example.com"), { type: "rfc822", address: "bob+dsn@example.com" });
    assert.deepEqual(parseOrcpt("rfc822;a+3Db@example.com"), { type: "rfc822", address: "a=b@example.com" });
  });

  it("returns the type in lower case and keeps any atom as the type", () => {
    assert.deepEqual(parseOrcpt("RFC822;bob@example.com"), { type: "rfc822", address: "bob@example.com" });
    assert.deepEqual(parseOrcpt("X-Local;bob"), { type: "x-local", address: "bob" });
    assert.deepEqual(parseOrcpt("unknown;whatever"), { type: "unknown", address: "whatever" });
  });

  it("splits at the first ';': the address may hold more", () => {
    assert.deepEqual(parseOrcpt("rfc822;a;b@example.com"), { type: "rfc822", address: "a;b@example.com" });
    assert.deepEqual(parseOrcpt("x400;c+3Dus;a+3Db"), { type: "x400", address: "c=us;a=b" });
  });

  it("takes a quoted local part with a space (+20): RFC 3461 allows white space", () => {
    assert.deepEqual(parseOrcpt('rfc822;"john+20doe"@example.com'), {
      type: "rfc822",
      address: '"john doe"@example.com',
    });
  });

  it("decodes RFC 6533 \\x{HEX} escapes and raw UTF-8 for the type utf-8 (any case)", () => {
    assert.deepEqual(parseOrcpt("utf-8;j\\x{F6}rg@example.com"), { type: "utf-8", address: "jörg@example.com" });
    assert.deepEqual(parseOrcpt("UTF-8;j\\x{f6}rg@example.com"), { type: "utf-8", address: "jörg@example.com" });
    assert.deepEqual(parseOrcpt("utf-8;jörg@exämple.com"), { type: "utf-8", address: "jörg@exämple.com" });
    assert.deepEqual(parseOrcpt("utf-8;a+2Bb@example.com"), { type: "utf-8", address: "a+b@example.com" });
    // One pass: an escape never decodes twice.
    assert.deepEqual(parseOrcpt("utf-8;+5Cx{41}@example.com"), { type: "utf-8", address: "\\x{41}@example.com" });
  });

  it("leaves \\x{...} alone for other types (plain xtext)", () => {
    assert.deepEqual(parseOrcpt("rfc822;j\\x{F6}rg@example.com"), {
      type: "rfc822",
      address: "j\\x{F6}rg@example.com",
    });
  });

  it("refuses non-ASCII for types other than utf-8, raw or encoded", () => {
    refuses(() => parseOrcpt("rfc822;jörg@example.com"), ORCPT, /raw non-ASCII/);
    refuses(() => parseOrcpt("rfc822;j+C3+B6rg@example.com"), ORCPT, /not US-ASCII/);
  });

  it("refuses decoded controls: an injected CRLF, NUL, TAB, DEL, C1 (also through \\x{...})", () => {
    refuses(() => parseOrcpt("rfc822;bob@example.com+0D+0AX-Injected:+20yes"), ORCPT, /control character/);
    for (const bad of ["rfc822;a+00b", "rfc822;a+09b", "rfc822;a+7Fb", "utf-8;a\\x{D}\\x{A}b", "utf-8;a\\x{85}b"]) {
      refuses(() => parseOrcpt(bad), ORCPT, /control character/, bad);
    }
  });

  it("refuses a missing ';', an empty or non-atom type, an empty address", () => {
    refuses(() => parseOrcpt("bob@example.com"), ORCPT, /no ";"/);
    refuses(() => parseOrcpt(";bob@example.com"), ORCPT, /not an atom/);
    refuses(() => parseOrcpt("rfc(822);bob@example.com"), ORCPT, /not an atom/);
    refuses(() => parseOrcpt("rfc822;"), ORCPT, /empty address/);
  });

  it("refuses bad xtext and bad \\x{...} escapes", () => {
    refuses(() => parseOrcpt("rfc822;bob+"), ORCPT, /two hex digits/);
    refuses(() => parseOrcpt("rfc822;bob+GG"), ORCPT, /two hex digits/);
    refuses(() => parseOrcpt("utf-8;j\\x{D800}rg"), ORCPT, /Unicode character/);
    refuses(() => parseOrcpt("utf-8;j\\x{F6rg"), ORCPT, /Unicode character/);
  });

  it("takes up to 500 characters as sent, and refuses more", () => {
    const at500 = `rfc822;${"a".repeat(500 - "rfc822;@example.com".length)}@example.com`;
    assert.equal(at500.length, 500);
    assert.equal(parseOrcpt(at500).address.length, 500 - "rfc822;".length);
    refuses(() => parseOrcpt(`${at500}m`), ORCPT, /longer than 500/);
  });

  it("refuses the bare keyword", () => {
    refuses(() => parseOrcpt(true), ORCPT, /needs a value/);
  });
});

describe("parseRequireTls", () => {
  it("takes the bare keyword", () => {
    assert.equal(parseRequireTls(true), true);
  });

  it("refuses any value (REQUIRETLS=x), even an empty one", () => {
    for (const bad of ["x", "YES", ""]) {
      refuses(() => parseRequireTls(bad), "Bad REQUIRETLS parameter syntax", /takes no value/, bad);
    }
  });
});
