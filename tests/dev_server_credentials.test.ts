/**
 * Unit tests of the dev server's check of AUTH credentials (src/dev_server/credentials.ts), run under all three
 * runtimes:
 *
 *   deno test -A tests/dev_server_credentials.test.ts
 *   bun test ./tests/dev_server_credentials.test.ts
 *   node --import tsx --test tests/dev_server_credentials.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createCramMd5Mechanism, type SaslCredentials } from "../src/auth/mod.ts";
import { checkCredentials } from "../src/dev_server/credentials.ts";

const PASSWORDS = new Map([["alice", "s3cret"], ["bob", "pa:ss"]]);

/** Credentials as PLAIN, LOGIN or XOAUTH2 hand them over: the secret itself. */
function plain(authenticationId: string, secret: string, authorizationId = ""): SaslCredentials {
  return { mechanism: "PLAIN", authorizationId, authenticationId, authentication: secret };
}

/** Credentials from a real CRAM-MD5 exchange, answered with `password`. */
function cramMd5(user: string, password: string): SaslCredentials {
  const exchange = createCramMd5Mechanism({ challengeFactory: (host) => `<1.2@${host}>` }).start("mx.test");
  const step = exchange.next(undefined);
  assert.equal(step.kind, "challenge");
  const challenge = new TextDecoder().decode((step as { challenge: Uint8Array }).challenge);
  const digest = createHmac("md5", password).update(challenge).digest("hex");
  const done = exchange.next(new TextEncoder().encode(`${user} ${digest}`));
  assert.equal(done.kind, "done");
  return (done as { credentials: SaslCredentials }).credentials;
}

describe("checkCredentials", () => {
  it("accepts a known user with the right secret, and nothing else", () => {
    assert.equal(checkCredentials(PASSWORDS, "", "alice", plain("alice", "s3cret")), true);
    assert.equal(checkCredentials(PASSWORDS, "", "bob", plain("bob", "pa:ss")), true);
    assert.equal(checkCredentials(PASSWORDS, "", "alice", plain("alice", "wrong")), false);
    assert.equal(checkCredentials(PASSWORDS, "", "alice", plain("alice", "s3cret ")), false, "no trimming");
    assert.equal(checkCredentials(PASSWORDS, "", "alice", plain("alice", "pa:ss")), false, "another's password");
    assert.equal(checkCredentials(PASSWORDS, "", "Alice", plain("Alice", "s3cret")), false, "names are exact");
  });

  it("an unknown user fails, even with the dummy secret it is checked against", () => {
    assert.equal(checkCredentials(PASSWORDS, "", "mallory", plain("mallory", "s3cret")), false);
    assert.equal(checkCredentials(PASSWORDS, "", "mallory", plain("mallory", "\u0000no such user")), false);
    assert.equal(checkCredentials(new Map(), "", "", plain("", "")), false);
  });

  it("acting as oneself is allowed, as someone else is not", () => {
    assert.equal(checkCredentials(PASSWORDS, "alice", "alice", plain("alice", "s3cret", "alice")), true);
    assert.equal(checkCredentials(PASSWORDS, "bob", "alice", plain("alice", "s3cret", "bob")), false);
  });

  it("CRAM-MD5 is checked with the stored password through verify()", () => {
    assert.equal(checkCredentials(PASSWORDS, "", "alice", cramMd5("alice", "s3cret")), true);
    assert.equal(checkCredentials(PASSWORDS, "", "alice", cramMd5("alice", "wrong")), false);
    assert.equal(checkCredentials(PASSWORDS, "", "mallory", cramMd5("mallory", "s3cret")), false);
  });
});
