/**
 * The check of AUTH credentials against the `--auth-user` accounts, done so
 * that neither its answer time nor its errors tell which user names exist.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { SaslCredentials } from "../auth/types.ts";

/**
 * Whether the credentials are those of a known user. Every path does the same
 * work (an unknown user is checked against a dummy secret), so the time taken
 * does not tell which user names exist. Acting as someone else (a PLAIN
 * authorization id other than the user's own) is refused.
 *
 * @example
 * ```ts
 * import type { SaslCredentials } from "@midi/smtp-server";
 *
 * const passwords = new Map([["alice", "s3cret"]]);
 * // What `onAuthEvent` is given for `AUTH PLAIN` from alice:
 * const credentials: SaslCredentials = {
 *   mechanism: "PLAIN",
 *   authorizationId: "",
 *   authenticationId: "alice",
 *   authentication: "s3cret",
 * };
 * checkCredentials(passwords, "", "alice", credentials); // => true
 * checkCredentials(passwords, "", "alice", { ...credentials, authentication: "guess" }); // => false
 * checkCredentials(passwords, "bob", "alice", credentials); // => false
 * ```
 */
export function checkCredentials(
  passwords: ReadonlyMap<string, string>,
  authorizationId: string,
  authenticationId: string,
  credentials: SaslCredentials,
): boolean {
  const stored = passwords.get(authenticationId);
  const secret = stored ?? "\u0000no such user";
  // CRAM-MD5 sends a keyed digest, checked with the plain password; PLAIN and
  // LOGIN send the password, XOAUTH2 a bearer token that must equal it.
  const matches = credentials.verify ? credentials.verify(secret) : sameSecret(credentials.authentication, secret);
  // Acting as someone else is not something a dev server grants.
  const self = authorizationId === "" || authorizationId === authenticationId;
  return stored !== undefined && matches && self;
}

/** Constant-time comparison; hashing first makes the lengths equal, as timingSafeEqual needs. */
function sameSecret(given: string, expected: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text, "utf8").digest();
  return timingSafeEqual(digest(given), digest(expected));
}
