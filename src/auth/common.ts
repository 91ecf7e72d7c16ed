/**
 * Helpers shared by the built-in mechanisms: the 501 they throw for a
 * malformed response, strict UTF-8 decoding, and the guard against reusing a
 * finished exchange.
 *
 * @module
 */
import { SmtpdException } from "../exceptions.ts";

/**
 * The RFC 4954 reply to a response that decodes as base64 but does not parse
 * for the mechanism: 501 with the syntax-error enhanced code (RFC 3463 5.5.2).
 * The text names the mechanism only; it never echoes the response, which may
 * hold a password.
 */
export function malformed(mechanism: string): SmtpdException {
  return new SmtpdException(501, "5.5.2", `Malformed ${mechanism} response`);
}

// `fatal` so that invalid UTF-8 is an error rather than silently becoming
// U+FFFD (two different byte strings must never yield the same user name);
// `ignoreBOM` so that a leading U+FEFF stays part of the value, as sent.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Decodes `bytes` as UTF-8, throwing the mechanism's 501 for invalid sequences. */
export function decodeUtf8(bytes: Uint8Array, mechanism: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw malformed(mechanism);
  }
}

/**
 * The error for `next()` on an exchange that is already done. It is a plain
 * `Error` (the session answers 451) because only a session bug can cause it.
 */
export function finished(mechanism: string): Error {
  return new Error(`${mechanism} exchange already finished`);
}
