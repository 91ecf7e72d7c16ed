/**
 * Session ids: one per connection, in `ctx.sessionId`, every log line of the
 * session and every event it publishes, so that one client's story can be
 * pulled out of interleaved logs.
 *
 * @module
 */

const ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"; // Crockford base32: no I, L, O, U

/**
 * A new session id: 12 characters of Crockford base32 (60 random bits), short
 * enough for log lines and unique enough across a fleet's logs.
 *
 * @example
 * ```ts
 * newSessionId().length; // => 12
 * /^[0-9A-HJKMNP-TV-Z]{12}$/.test(newSessionId()); // => true
 * ```
 */
export function newSessionId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  let id = "";
  for (const byte of bytes) id += ID_ALPHABET[byte & 31];
  return id;
}
