/**
 * Helpers shared by the built-in mechanisms: the 501 they throw for a
 * malformed response, strict UTF-8 decoding, and the guard against reusing a
 * finished exchange.
 *
 * @module
 */
import { SmtpdException } from "../exceptions.ts";
import type { SaslCredentials, SaslExchange } from "./types.ts";

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

/**
 * A client-first, single-response exchange (PLAIN, XOAUTH2): an empty
 * challenge when there was no initial response, then `finish` turns the one
 * response into credentials.
 */
export function singleResponseExchange(
  mechanism: string,
  finish: (response: Uint8Array) => SaslCredentials,
): SaslExchange {
  let state: "start" | "waiting" | "done" = "start";
  return {
    next(response) {
      if (state === "done") throw finished(mechanism);
      if (response === undefined) {
        // Only the first call may lack a response (RFC 4954 4: no initial
        // response); after our challenge the client must answer something.
        if (state === "waiting") throw malformed(mechanism);
        state = "waiting";
        return { kind: "challenge", challenge: new Uint8Array(0) };
      }
      state = "done";
      return { kind: "done", credentials: finish(response) };
    },
  };
}
