/**
 * SASL (RFC 4422) as used by SMTP AUTH (RFC 4954): each mechanism is a small
 * sans-I/O exchange that turns the client's decoded responses into
 * credentials. The session does the base64, the 334 lines and the hook call.
 *
 * @module
 */

/** What a finished exchange hands to `onAuthEvent`. */
export interface SaslCredentials {
  /** The mechanism name, upper-case: `"PLAIN"`, `"LOGIN"`, `"CRAM-MD5"`, `"XOAUTH2"` ... */
  readonly mechanism: string;
  /** The identity to act as (`""` when the client gave none). */
  readonly authorizationId: string;
  /** The identity whose credentials were given (the user name). */
  readonly authenticationId: string;
  /** The secret as sent: the password (PLAIN, LOGIN), the hex digest (CRAM-MD5), the bearer token (XOAUTH2). */
  readonly authentication: string;
  /**
   * For challenge-response mechanisms (CRAM-MD5): checks the response against
   * the user's stored secret, in constant time. Absent when `authentication`
   * is the plain secret itself.
   */
  readonly verify?: (secret: string) => boolean;
}

/** One step of an exchange: send a challenge and wait, or finish. */
export type SaslStep =
  /** Send `334 <base64 of challenge>` and pass the client's next (decoded) line to `next`. */
  | { readonly kind: "challenge"; readonly challenge: Uint8Array }
  /** The exchange is complete. */
  | { readonly kind: "done"; readonly credentials: SaslCredentials };

/** One running exchange. */
export interface SaslExchange {
  /**
   * Takes the client's next response, base64-decoded (`undefined` for "no
   * initial response"), and says what to do. Throws an `SmtpdException`
   * (501) for a malformed response.
   */
  next(response: Uint8Array | undefined): SaslStep;
}

/**
 * A SASL mechanism. Add your own through the `authMechanisms` option.
 *
 * @example
 * ```ts
 * const anonymous: SaslMechanism = {
 *   name: "ANONYMOUS",
 *   start: () => ({
 *     next: (response) => ({
 *       kind: "done",
 *       credentials: { mechanism: "ANONYMOUS", authorizationId: "", authenticationId: "anonymous",
 *         authentication: new TextDecoder().decode(response ?? new Uint8Array()) },
 *     }),
 *   }),
 * };
 * anonymous.start("mx.example.com").next(new TextEncoder().encode("trace-id")).kind; // => "done"
 * ```
 */
export interface SaslMechanism {
  /** The name offered in EHLO and asked for in `AUTH <name>`, upper-case. */
  readonly name: string;
  /** Starts an exchange; `serverName` is the local host name (CRAM-MD5 puts it in its challenge). */
  start(serverName: string): SaslExchange;
}
