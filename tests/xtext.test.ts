/**
 * Unit and property tests of xtext (RFC 3461 4) and its RFC 6533 `utf-8`
 * variant (src/session/xtext.ts), run under all three runtimes:
 *
 *   deno test -A tests/xtext.test.ts
 *   bun test ./tests/xtext.test.ts
 *   node --import tsx --test tests/xtext.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeUtf8Xtext, decodeXtext, encodeXtext } from "../src/session/xtext.ts";
import { SmtpdException } from "../src/exceptions.ts";

const RUNS = { numRuns: 300 };

/** Asserts that `fn` throws a 501 5.5.4 whose text matches `text`. */
function throws501(fn: () => unknown, text: RegExp, what = ""): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SmtpdException, `${what}: expected an SmtpdException, got ${String(err)}`);
    assert.equal(`${err.code} ${err.enhancedCode}`, "501 5.5.4", what);
    assert.match(err.text, text, what);
    assert.ok(!/[^\x20-\x7e]/.test(err.text), `${what}: the reply text is printable ASCII`);
    return true;
  }, what);
}

const BAD_PLUS = /^Bad xtext syntax: "\+" must be followed by two hex digits/;

describe("decodeXtext", () => {
  it("decodes RFC 3461's example ENVID=QQ314159+2B1 to QQ314159+1", () => {
    assert.equal(decodeXtext("QQ314159+2B1"), "QQ314159+1");
  });

  it("returns plain xchars unchanged, every one of 33..126 but + and =", () => {
    let all = "";
    for (let c = 0x21; c <= 0x7e; c++) if (c !== 0x2b && c !== 0x3d) all += String.fromCharCode(c);
    assert.equal(decodeXtext(all), all);
    assert.equal(decodeXtext(""), "");
  });

  it("takes hex digits in either case", () => {
    assert.equal(decodeXtext("a+3Db"), "a=b");
    assert.equal(decodeXtext("a+3db"), "a=b");
    assert.equal(decodeXtext("+2b+2B"), "++");
    assert.equal(decodeXtext("+7e+7E"), "~~");
  });

  it("decodes an escape of any byte, and a character that needed none", () => {
    assert.equal(decodeXtext("+41+42C"), "ABC");
    assert.equal(decodeXtext("+20"), " ");
  });

  it("refuses +, +A, +GG, +G1, +1G and a + at the end", () => {
    for (const bad of ["+", "+A", "+GG", "+G1", "+1G", "abc+", "abc+4", "a+ 1", "+-1", "+0x"]) {
      throws501(() => decodeXtext(bad), BAD_PLUS, bad);
    }
  });

  it("names where the bad escape is", () => {
    throws501(() => decodeXtext("QQ314159+2"), /\(offset 8\)$/);
  });

  it("refuses a raw =, space, control or non-ASCII character, naming it", () => {
    throws501(() => decodeXtext("a=b"), /raw "=" \(offset 1\)/);
    throws501(() => decodeXtext("a b"), /raw space \(offset 1\)/);
    throws501(() => decodeXtext("a\r\nb"), /control character 0x0D \(offset 1\)/);
    throws501(() => decodeXtext("a\x00"), /control character 0x00/);
    throws501(() => decodeXtext("a\tb"), /control character 0x09/);
    throws501(() => decodeXtext("\x7f"), /control character 0x7F/);
    throws501(() => decodeXtext("j\u00f6rg"), /raw non-ASCII character \(offset 1\)/);
    throws501(() => decodeXtext("\u{1F600}"), /raw non-ASCII/);
    // The same after an escape (the slow path).
    throws501(() => decodeXtext("+41=b"), /raw "=" \(offset 3\)/);
    throws501(() => decodeXtext("+41 b"), /raw space/);
    throws501(() => decodeXtext("+41\u00e9"), /raw non-ASCII/);
  });

  it("returns encoded controls (CR LF, NUL, DEL) for the caller to refuse", () => {
    assert.equal(decodeXtext("x+0D+0AReceived:"), "x\r\nReceived:");
    assert.equal(decodeXtext("+00+7F+09"), "\x00\x7f\t");
  });

  it("reads encoded bytes as UTF-8, and refuses bytes that are not UTF-8", () => {
    assert.equal(decodeXtext("+C3+A9t+C3+A9"), "été");
    assert.equal(decodeXtext("+F0+9F+98+80"), "\u{1F600}");
    assert.equal(decodeXtext("+EF+BB+BFa"), "\uFEFFa", "a leading U+FEFF is kept, not dropped as a BOM");
    for (const bad of ["+FF", "+C3", "+C3+28", "+ED+A0+80", "+80"]) {
      throws501(() => decodeXtext(bad), /not UTF-8/, bad);
    }
  });
});

describe("encodeXtext", () => {
  it("encodes + and = and everything outside 33..126, in upper-case hex", () => {
    assert.equal(encodeXtext("QQ314159+1"), "QQ314159+2B1");
    assert.equal(encodeXtext("a=b c"), "a+3Db+20c");
    assert.equal(encodeXtext("\r\n\x00\x7f"), "+0D+0A+00+7F");
    assert.equal(encodeXtext("été"), "+C3+A9t+C3+A9");
    assert.equal(encodeXtext("\u{1F600}"), "+F0+9F+98+80");
    assert.equal(encodeXtext(""), "");
  });

  it("leaves the other printable characters alone", () => {
    assert.equal(encodeXtext("<a.b-c_d@example.com>!~"), "<a.b-c_d@example.com>!~");
  });

  it("writes a lone surrogate as U+FFFD, as TextEncoder does", () => {
    assert.equal(encodeXtext("\ud800"), "+EF+BF+BD");
  });
});

describe("decodeUtf8Xtext (ORCPT utf-8, RFC 6533)", () => {
  it("decodes \\x{HEX} escapes, 1 to 6 digits, either case", () => {
    assert.equal(decodeUtf8Xtext("j\\x{F6}rg@example.com"), "jörg@example.com");
    assert.equal(decodeUtf8Xtext("j\\x{f6}rg@example.com"), "jörg@example.com");
    assert.equal(decodeUtf8Xtext("\\x{1F600}"), "\u{1F600}");
    assert.equal(decodeUtf8Xtext("\\x{01F600}"), "\u{1F600}");
    assert.equal(decodeUtf8Xtext("a\\x{2B}b\\x{3D}c"), "a+b=c");
    assert.equal(decodeUtf8Xtext("\\x{10FFFF}"), "\u{10FFFF}");
  });

  it("decodes +XX escapes too, and takes raw UTF-8 (unitext)", () => {
    assert.equal(decodeUtf8Xtext("a+2Bb"), "a+b");
    assert.equal(decodeUtf8Xtext("+C3+B6"), "ö");
    assert.equal(decodeUtf8Xtext("jörg@exämple.com"), "jörg@exämple.com");
    assert.equal(decodeUtf8Xtext("\u{1F600}x"), "\u{1F600}x");
  });

  it("decodes in one pass: an escape that spells an escape stays as text", () => {
    assert.equal(decodeUtf8Xtext("+5Cx{41}"), "\\x{41}");
    assert.equal(decodeUtf8Xtext("\\x{2B}41"), "+41");
  });

  it("keeps a backslash that does not start \\x{", () => {
    assert.equal(decodeUtf8Xtext("a\\b"), "a\\b");
    assert.equal(decodeUtf8Xtext("a\\x"), "a\\x");
  });

  it("refuses bad \\x{...} escapes: empty, unclosed, not hex, too long, a surrogate, beyond U+10FFFF", () => {
    for (
      const bad of ["\\x{}", "\\x{41", "\\x{G}", "\\x{1234567}", "\\x{D800}", "\\x{DFFF}", "\\x{110000}", "\\x{ 41}"]
    ) {
      throws501(() => decodeUtf8Xtext(bad), /Unicode character/, bad);
    }
  });

  it("refuses bad + escapes, raw =, space and controls, lone surrogates and bytes that are not UTF-8", () => {
    throws501(() => decodeUtf8Xtext("a+G1"), BAD_PLUS);
    throws501(() => decodeUtf8Xtext("a=b"), /raw "="/);
    throws501(() => decodeUtf8Xtext("a b"), /raw space/);
    throws501(() => decodeUtf8Xtext("a\r\nb"), /control character 0x0D/);
    throws501(() => decodeUtf8Xtext("a\ud800b"), /lone surrogate/);
    throws501(() => decodeUtf8Xtext("+FF"), /not UTF-8/);
  });

  it("returns encoded controls for the caller to refuse", () => {
    assert.equal(decodeUtf8Xtext("a\\x{D}\\x{A}b"), "a\r\nb");
    assert.equal(decodeUtf8Xtext("a+0D+0Ab"), "a\r\nb");
  });
});

// ---------------------------------------------------------------------------
// properties

/** Any well-formed string: every code point, controls and astral ones too, no lone surrogate. */
const anyText = fc.string({ unit: "binary", maxLength: 40 });
/** Strings of printable ASCII, what a client types. */
const printableText = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) });

describe("xtext properties", () => {
  it("decodeXtext(encodeXtext(s)) is s for any printable string", () => {
    fc.assert(fc.property(printableText, (s) => assert.equal(decodeXtext(encodeXtext(s)), s)), RUNS);
  });

  it("decodeXtext(encodeXtext(s)) is s for any well-formed string (controls, non-ASCII, U+FEFF)", () => {
    fc.assert(fc.property(anyText, (s) => assert.equal(decodeXtext(encodeXtext(s)), s)), RUNS);
  });

  it("encodeXtext writes only xtext: characters 33..126, no =, each + before two upper-case hex digits", () => {
    fc.assert(
      fc.property(anyText, (s) => {
        const x = encodeXtext(s);
        assert.match(x, /^(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*$/);
      }),
      RUNS,
    );
  });

  it("encodeXtext is the identity on text that needs no escape", () => {
    const xchars = fc.string({
      unit: fc.integer({ min: 0x21, max: 0x7e }).filter((c) => c !== 0x2b && c !== 0x3d).map((c) =>
        String.fromCharCode(c)
      ),
    });
    fc.assert(fc.property(xchars, (s) => assert.equal(encodeXtext(s), s)), RUNS);
  });

  it("decodeXtext either decodes or throws a 501 5.5.4, never anything else; what it decodes re-encodes to it", () => {
    const xtextish = fc.string({
      unit: fc.constantFrom("+", "=", " ", "A", "f", "G", "0", "9", "\r", "é", "\\", "x", "{", "}"),
      maxLength: 12,
    });
    fc.assert(
      fc.property(xtextish, (s) => {
        let decoded: string;
        try {
          decoded = decodeXtext(s);
        } catch (err) {
          assert.ok(err instanceof SmtpdException && err.code === 501 && err.enhancedCode === "5.5.4", String(err));
          return;
        }
        assert.equal(decodeXtext(encodeXtext(decoded)), decoded);
      }),
      RUNS,
    );
  });

  it("decodeUtf8Xtext reads what encodeXtext writes, when the text has no backslash", () => {
    // With one, the text \x{41} would be read as "A": RFC 6533 wants a backslash written \x{5C}.
    fc.assert(
      fc.property(anyText.filter((s) => !s.includes("\\")), (s) => assert.equal(decodeUtf8Xtext(encodeXtext(s)), s)),
      RUNS,
    );
  });
});
