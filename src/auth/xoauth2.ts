/**
 * Google's XOAUTH2 mechanism
 * (https://developers.google.com/workspace/gmail/imap/xoauth2-protocol):
 * one client message with the user name and an OAuth 2.0 bearer token.
 *
 * @module
 */
import type { SaslExchange, SaslMechanism } from "./types.ts";
import { decodeUtf8, malformed, singleResponseExchange } from "./common.ts";

const NAME = "XOAUTH2";
// "Bearer" is case-insensitive (RFC 6750 2.1 via RFC 7235 2.1). The token is
// left to the hook to judge, but it must be visible ASCII: RFC 6750's
// b64token and every real token format are, and white space or control
// characters would only smuggle something past a log line.
const BEARER = /^Bearer ([!-~]+)$/i;

/**
 * Parses `user=<user>^Aauth=Bearer <token>^A^A` (^A = 0x01). Other keys are
 * ignored, as in RFC 7628's kvpairs, but `user` and `auth` must each appear
 * exactly once.
 */
function parse(response: Uint8Array): { user: string; token: string } {
  const text = decodeUtf8(response, NAME);
  if (!text.endsWith("\x01\x01")) throw malformed(NAME);
  const fields = new Map<string, string>();
  for (const field of text.slice(0, -2).split("\x01")) {
    const eq = field.indexOf("=");
    if (eq <= 0) throw malformed(NAME);
    const key = field.slice(0, eq);
    if (fields.has(key)) throw malformed(NAME);
    fields.set(key, field.slice(eq + 1));
  }
  const user = fields.get("user");
  const token = BEARER.exec(fields.get("auth") ?? "")?.[1];
  if (!user || token === undefined) throw malformed(NAME);
  return { user, token };
}

/**
 * XOAUTH2. Without an initial response it sends an empty challenge and takes
 * the next line. The credentials carry the user as `authenticationId` and the
 * bearer token as `authentication`; a malformed message is answered
 * `501 5.5.2 Malformed XOAUTH2 response`.
 *
 * @example
 * ```ts
 * const exchange = XOAUTH2_MECHANISM.start("mx.example.com");
 * const step = exchange.next(new TextEncoder().encode("user=tim@example.com\x01auth=Bearer ya29.abc\x01\x01"));
 * step.kind === "done" && step.credentials.authenticationId; // => "tim@example.com"
 * step.kind === "done" && step.credentials.authentication; // => "ya29.abc"
 * ```
 */
export const XOAUTH2_MECHANISM: SaslMechanism = {
  name: NAME,
  start(): SaslExchange {
    return singleResponseExchange(NAME, (response) => {
      const { user, token } = parse(response);
      return { mechanism: NAME, authorizationId: "", authenticationId: user, authentication: token };
    });
  },
};
