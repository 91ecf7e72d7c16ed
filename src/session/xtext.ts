/**
 * xtext (RFC 3461 4), the encoding of DSN's `ENVID` and `ORCPT` values and of
 * Postfix's XCLIENT and XFORWARD attributes: the bytes 33..126 other than `+`
 * and `=` stand for themselves, every other byte is `+` and two hex digits.
 * Pure functions, no I/O.
 *
 * Decoding does not refuse control characters that arrive encoded
 * (`+0D+0A`): each caller does, since what is allowed depends on the value.
 *
 * @module
 */
import { Smtpd501Exception } from "../exceptions.ts";

const PLUS = 0x2b;
const EQUALS = 0x3d;
const BACKSLASH = 0x5c;
const HEX = "0123456789ABCDEF";
// ignoreBOM: a leading U+FEFF is data here, not a byte order mark to drop.
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** Value of a hex digit (either case), or -1. */
function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  const lower = code | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

/** The 501 for a value that is not xtext. */
function badXtext(detail: string): Smtpd501Exception {
  return new Smtpd501Exception(undefined, `Bad xtext syntax: ${detail}`);
}

/**
 * Decodes xtext (RFC 3461 4): `+` followed by exactly two hex digits (upper
 * or lower case: Postfix accepts both) is the byte they spell, the other
 * characters 33..126 except `=` stand for themselves. The bytes are read as
 * UTF-8 (what an SMTPUTF8 peer encodes).
 *
 * Control characters that arrive encoded are returned as they are: the
 * caller decides (ENVID, ORCPT, XCLIENT and XFORWARD values refuse them,
 * since `+0D+0A` in a value that reaches a log or a header is an injection).
 *
 * @param text the value as sent
 * @returns the decoded value
 * @throws {Smtpd501Exception} `501 5.5.4 Bad xtext syntax: ...` naming the
 * problem: a raw `=`, space, control or non-ASCII character, a `+` not
 * followed by two hex digits, or encoded bytes that are not UTF-8
 *
 * @example
 * ```ts
 * decodeXtext("QQ314159+2B1"); // => "QQ314159+1"
 * decodeXtext("a+3db"); // => "a=b"
 * decodeXtext("x+0D+0AReceived:"); // => "x\r\nReceived:"
 * decodeXtext("+C3+A9t+C3+A9"); // => "été"
 * decodeXtext("+A"); // throws Smtpd501Exception
 * decodeXtext("+GG"); // throws Smtpd501Exception
 * decodeXtext("a=b"); // throws Smtpd501Exception
 * ```
 */
export function decodeXtext(text: string): string {
  let plain = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === PLUS) {
      plain = false;
      break;
    }
    if (c < 0x21 || c > 0x7e || c === EQUALS) throw badChar(c, i);
  }
  if (plain) return text;
  const bytes = new Uint8Array(text.length);
  let length = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === PLUS) {
      bytes[length++] = escapedByte(text, i);
      i += 2;
    } else if (c < 0x21 || c > 0x7e || c === EQUALS) {
      throw badChar(c, i);
    } else {
      bytes[length++] = c;
    }
  }
  return utf8(bytes.subarray(0, length));
}

/** The byte `+XX` at `text[plus]` spells. */
function escapedByte(text: string, plus: number): number {
  const high = plus + 1 < text.length ? hexValue(text.charCodeAt(plus + 1)) : -1;
  const low = plus + 2 < text.length ? hexValue(text.charCodeAt(plus + 2)) : -1;
  if (high < 0 || low < 0) throw badXtext(`"+" must be followed by two hex digits (offset ${plus})`);
  return high * 16 + low;
}

/** The decoded bytes as UTF-8 text. */
function utf8(bytes: Uint8Array): string {
  try {
    return utf8Decoder.decode(bytes);
  } catch {
    throw badXtext("the encoded bytes are not UTF-8");
  }
}

/** The error for a character that xtext never has raw. */
function badChar(code: number, offset: number): Smtpd501Exception {
  if (code === EQUALS) return badXtext(`raw "=" (offset ${offset})`);
  if (code === 0x20) return badXtext(`raw space (offset ${offset})`);
  if (code < 0x20 || code === 0x7f) {
    return badXtext(`control character 0x${HEX[code >> 4]}${HEX[code & 15]} (offset ${offset})`);
  }
  return badXtext(`raw non-ASCII character (offset ${offset})`);
}

/**
 * Decodes the address of an ORCPT of type `utf-8` (RFC 6533 3), which adds
 * to xtext the escape `\x{HEX}`: one to six hex digits naming a Unicode
 * scalar value (not a surrogate). In one pass, so that an escape is never
 * decoded twice (`+5Cx{41}` is the text `\x{41}`, not `A`), this accepts
 * - `\x{HEX}`: that character (utf-8-addr-xtext);
 * - `+XX`: the byte, as in xtext (an RFC 6533 sender does not need it;
 *   Postfix unquotes xtext first, so accepting it keeps its clients working);
 * - raw non-ASCII characters (utf-8-addr-unitext, for SMTPUTF8 peers);
 * - the characters 33..126 other than `=` (a `\` not starting `\x{` too).
 *
 * Decoded control characters are returned; the caller refuses them.
 *
 * @param text the address part of the ORCPT value, as sent
 * @returns the decoded address
 * @throws {Smtpd501Exception} `501 5.5.4 Bad xtext syntax: ...` for a bad
 * `\x{...}` or `+` escape, a raw `=`, space or control, a lone surrogate,
 * or `+XX` bytes that are not UTF-8
 *
 * @example
 * ```ts
 * decodeUtf8Xtext("j\\x{F6}rg@example.com"); // => "jörg@example.com"
 * decodeUtf8Xtext("jörg@example.com"); // => "jörg@example.com"
 * decodeUtf8Xtext("a+2Bb@example.com"); // => "a+b@example.com"
 * decodeUtf8Xtext("+5Cx{41}"); // => "\\x{41}"
 * decodeUtf8Xtext("\\x{D800}"); // throws Smtpd501Exception
 * ```
 */
export function decodeUtf8Xtext(text: string): string {
  const bytes: number[] = [];
  const pushCodePoint = (cp: number) => {
    if (cp < 0x80) bytes.push(cp);
    else bytes.push(...utf8Encoder.encode(String.fromCodePoint(cp)));
  };
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === PLUS) {
      bytes.push(escapedByte(text, i));
      i += 2;
    } else if (c === BACKSLASH && text[i + 1] === "x" && text[i + 2] === "{") {
      const close = text.indexOf("}", i + 3);
      const digits = close < 0 ? "" : text.slice(i + 3, close);
      const cp = /^[0-9A-Fa-f]{1,6}$/.test(digits) ? parseInt(digits, 16) : -1;
      if (cp < 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        throw badXtext(`"\\x{" must be followed by the hex code of a Unicode character and "}" (offset ${i})`);
      }
      pushCodePoint(cp);
      i = close;
    } else if (c >= 0x21 && c <= 0x7e && c !== EQUALS) {
      bytes.push(c);
    } else if (c >= 0x80) {
      const cp = text.codePointAt(i)!;
      if (cp >= 0xd800 && cp <= 0xdfff) throw badXtext(`lone surrogate (offset ${i})`);
      pushCodePoint(cp);
      if (cp > 0xffff) i++;
    } else {
      throw badChar(c, i);
    }
  }
  return utf8(new Uint8Array(bytes));
}

/**
 * Encodes text as xtext (RFC 3461 4): the text's UTF-8 bytes 33..126 other
 * than `+` and `=` stay, every other byte becomes `+` and two upper-case hex
 * digits. `decodeXtext(encodeXtext(s))` is `s` for every well-formed string
 * (a lone surrogate is encoded as U+FFFD, as `TextEncoder` does).
 *
 * @param text any text
 * @returns its xtext form, characters 33..126 only, never `=`
 *
 * @example
 * ```ts
 * encodeXtext("QQ314159+1"); // => "QQ314159+2B1"
 * encodeXtext("a=b c"); // => "a+3Db+20c"
 * encodeXtext("été"); // => "+C3+A9t+C3+A9"
 * ```
 */
export function encodeXtext(text: string): string {
  let out = "";
  for (const byte of utf8Encoder.encode(text)) {
    if (byte >= 0x21 && byte <= 0x7e && byte !== PLUS && byte !== EQUALS) out += String.fromCharCode(byte);
    else out += `+${HEX[byte >> 4]}${HEX[byte & 15]}`;
  }
  return out;
}
