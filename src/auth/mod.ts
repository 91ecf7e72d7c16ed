/**
 * SMTP AUTH (RFC 4954): the built-in SASL mechanisms (the server looks the
 * names in `authMechanisms` up in {@link DEFAULT_MECHANISMS}) and the base64
 * of the `334` exchange.
 *
 * @module
 */
import type { SaslMechanism } from "./types.ts";
import { SmtpdException } from "../exceptions.ts";
import { PLAIN_MECHANISM } from "./plain.ts";
import { LOGIN_MECHANISM } from "./login.ts";
import { CRAM_MD5_MECHANISM } from "./cram_md5.ts";
import { XOAUTH2_MECHANISM } from "./xoauth2.ts";

export type { SaslCredentials, SaslExchange, SaslMechanism, SaslStep } from "./types.ts";
export { PLAIN_MECHANISM } from "./plain.ts";
export { LOGIN_MECHANISM } from "./login.ts";
export { CRAM_MD5_MECHANISM, type CramMd5Options, createCramMd5Mechanism } from "./cram_md5.ts";
export { XOAUTH2_MECHANISM } from "./xoauth2.ts";

/**
 * The built-in mechanisms: PLAIN, LOGIN, CRAM-MD5, XOAUTH2. A name in the
 * `authMechanisms` option is looked up here (case-insensitively); EHLO offers
 * the mechanisms in the order that option lists them.
 */
export const DEFAULT_MECHANISMS: readonly SaslMechanism[] = Object.freeze([
  PLAIN_MECHANISM,
  LOGIN_MECHANISM,
  CRAM_MD5_MECHANISM,
  XOAUTH2_MECHANISM,
]);

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
// Character code -> 6-bit value, -1 for anything outside the RFC 4648 4
// alphabet. Built from ALPHABET so that "+" and "/" cannot be forgotten.
const VALUES = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) VALUES[ALPHABET.charCodeAt(i)] = i;

function invalidBase64(): SmtpdException {
  // RFC 4954 4: "If the server cannot BASE64 decode any client response, it
  // MUST reject the AUTH command with a 501 reply"; 5.5.2 per RFC 4954 6.
  return new SmtpdException(501, "5.5.2", "Invalid base64 data");
}

/**
 * Decodes one client line of an AUTH exchange (an initial response or the
 * answer to a `334`). `"="` is the empty response (RFC 4954 4); otherwise the
 * line must be strict base64 (RFC 4648 4): only the standard alphabet, no
 * white space, padding only at the end and only to a multiple of four.
 * Unpadded input is accepted unless its length is 1 modulo 4, which no byte
 * string encodes to. The cancel line `"*"` is the session's business and is
 * rejected here like any other invalid input.
 *
 * @param line the line without its CRLF
 * @returns the decoded bytes
 * @throws {SmtpdException} `501 5.5.2 Invalid base64 data`
 *
 * @example
 * ```ts
 * decodeBase64Response("AHRpbQB0YW5zdGFhZg=="); // => new TextEncoder().encode("\0tim\0tanstaaf")
 * decodeBase64Response("="); // => new Uint8Array(0)
 * ```
 */
export function decodeBase64Response(line: string): Uint8Array {
  if (line === "=") return new Uint8Array(0);
  let end = line.length;
  if (line.endsWith("=")) {
    // Padded input: a whole number of quads, with "=" or "==" at the end.
    // Any further "=" is left in and rejected by the alphabet check below.
    if (line.length % 4 !== 0) throw invalidBase64();
    end -= line.endsWith("==") ? 2 : 1;
  }
  if (end % 4 === 1) throw invalidBase64();
  const out = new Uint8Array(Math.floor((end * 3) / 4));
  let bits = 0;
  let bitCount = 0;
  let o = 0;
  for (let i = 0; i < end; i++) {
    const code = line.charCodeAt(i);
    const value = code < 128 ? VALUES[code] : -1;
    if (value < 0) throw invalidBase64();
    bits = ((bits << 6) | value) & 0xffffff;
    bitCount += 6;
    if (bitCount >= 8) {
      bitCount -= 8;
      out[o++] = (bits >> bitCount) & 0xff;
    }
  }
  // Non-zero bits left over in the last character are tolerated, as atob
  // and most decoders do (RFC 4648 3.5 only says decoders MAY reject them).
  return out;
}

/**
 * Encodes bytes as padded base64 (RFC 4648 4), as a `334` challenge carries
 * them. Empty input gives `""`, so an empty challenge is sent as `"334 "`.
 *
 * @param bytes the challenge
 * @returns its base64 text
 *
 * @example
 * ```ts
 * encodeBase64(new TextEncoder().encode("Username:")); // => "VXNlcm5hbWU6"
 * ```
 */
export function encodeBase64(bytes: Uint8Array): string {
  let text = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    text += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + ALPHABET[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    text += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + "==";
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    text += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + "=";
  }
  return text;
}
