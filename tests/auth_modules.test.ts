/**
 * The modules behind src/auth/mod.ts, each by its own path: the helpers the
 * mechanisms share (src/auth/common.ts), the SASL types (src/auth/types.ts)
 * as a mechanism of one's own uses them, and one property of each built-in
 * mechanism's module. The mechanisms in depth: tests/auth_mechanisms.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as auth from "../src/auth/mod.ts";
import { decodeUtf8, finished, malformed, singleResponseExchange } from "../src/auth/common.ts";
import { CRAM_MD5_MECHANISM, createCramMd5Mechanism } from "../src/auth/cram_md5.ts";
import { LOGIN_MECHANISM } from "../src/auth/login.ts";
import { PLAIN_MECHANISM } from "../src/auth/plain.ts";
import { XOAUTH2_MECHANISM } from "../src/auth/xoauth2.ts";
import type { SaslCredentials, SaslMechanism, SaslStep } from "../src/auth/types.ts";
import { SmtpdException } from "../src/exceptions.ts";

const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
const dec = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

function credentialsOf(step: SaslStep): SaslCredentials {
  assert.equal(step.kind, "done");
  return (step as { credentials: SaslCredentials }).credentials;
}

/** Asserts that `fn` throws the 501 5.5.2 reply of `mechanism`. */
function throwsMalformed(fn: () => unknown, mechanism: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SmtpdException);
    assert.equal(err.smtpdResult, `501 5.5.2 Malformed ${mechanism} response`);
    return true;
  });
}

test("auth/mod.ts re-exports each mechanism module's own object", () => {
  assert.equal(auth.PLAIN_MECHANISM, PLAIN_MECHANISM);
  assert.equal(auth.LOGIN_MECHANISM, LOGIN_MECHANISM);
  assert.equal(auth.CRAM_MD5_MECHANISM, CRAM_MD5_MECHANISM);
  assert.equal(auth.createCramMd5Mechanism, createCramMd5Mechanism);
  assert.equal(auth.XOAUTH2_MECHANISM, XOAUTH2_MECHANISM);
  assert.deepEqual(
    [PLAIN_MECHANISM, LOGIN_MECHANISM, CRAM_MD5_MECHANISM, XOAUTH2_MECHANISM].map((m) => m.name),
    ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"],
  );
});

test("common: malformed is 501 5.5.2 naming the mechanism, never the response", () => {
  const err = malformed("PLAIN");
  assert.ok(err instanceof SmtpdException);
  assert.equal(err.code, 501);
  assert.equal(err.enhancedCode, "5.5.2");
  assert.equal(err.text, "Malformed PLAIN response");
});

test("common: decodeUtf8 is strict and keeps a leading BOM", () => {
  assert.equal(decodeUtf8(enc("tïm"), "LOGIN"), "tïm");
  assert.equal(decodeUtf8(new Uint8Array([0xef, 0xbb, 0xbf, 0x61]), "LOGIN"), "\ufeffa");
  throwsMalformed(() => decodeUtf8(new Uint8Array([0x61, 0xff]), "LOGIN"), "LOGIN");
  throwsMalformed(() => decodeUtf8(new Uint8Array([0xc3]), "LOGIN"), "LOGIN");
});

test("common: finished is a plain Error (a session bug answers 451)", () => {
  const err = finished("XOAUTH2");
  assert.ok(!(err instanceof SmtpdException));
  assert.equal(err.message, "XOAUTH2 exchange already finished");
});

test("common + types: a client-first mechanism of one's own on singleResponseExchange", () => {
  const seen: Uint8Array[] = [];
  const anonymous: SaslMechanism = {
    name: "ANONYMOUS",
    start: () =>
      singleResponseExchange("ANONYMOUS", (response): SaslCredentials => {
        seen.push(response);
        return { mechanism: "ANONYMOUS", authorizationId: "", authenticationId: "", authentication: dec(response) };
      }),
  };
  // With an initial response: done at once.
  assert.equal(credentialsOf(anonymous.start("mx").next(enc("trace"))).authentication, "trace");
  // Without one: an empty challenge, then the response; then the exchange is over.
  const exchange = anonymous.start("mx");
  assert.deepEqual(exchange.next(undefined), { kind: "challenge", challenge: new Uint8Array(0) });
  assert.equal(credentialsOf(exchange.next(enc(""))).authentication, "");
  assert.throws(() => exchange.next(enc("again")), /ANONYMOUS exchange already finished/);
  // After the empty challenge the client must answer something.
  const silent = anonymous.start("mx");
  silent.next(undefined);
  throwsMalformed(() => silent.next(undefined), "ANONYMOUS");
  assert.equal(seen.length, 2);
});

test("cram_md5: the default challenge is new each time and names the server", () => {
  const challenge = () => {
    const step = CRAM_MD5_MECHANISM.start("mx.example.com").next(undefined);
    assert.equal(step.kind, "challenge");
    return dec((step as { challenge: Uint8Array }).challenge);
  };
  const a = challenge();
  assert.match(a, /^<\d+\.\d+@mx\.example\.com>$/);
  assert.notEqual(challenge(), a);
});

test("login: an initial response is the user name, so only the password is asked for", () => {
  const exchange = LOGIN_MECHANISM.start("mx.example.com");
  const step = exchange.next(enc("tim"));
  assert.equal(step.kind, "challenge");
  assert.equal(dec((step as { challenge: Uint8Array }).challenge), "Password:");
  assert.deepEqual(credentialsOf(exchange.next(enc("tanstaaf"))), {
    mechanism: "LOGIN",
    authorizationId: "",
    authenticationId: "tim",
    authentication: "tanstaaf",
  });
});

test("plain: the authorization identity is passed on", () => {
  const step = PLAIN_MECHANISM.start("mx.example.com").next(enc("admin\0tim\0tanstaaf"));
  assert.equal(credentialsOf(step).authorizationId, "admin");
  throwsMalformed(() => PLAIN_MECHANISM.start("mx").next(enc("tim\0tanstaaf")), "PLAIN");
});

test("xoauth2: the token scheme is case-insensitive, other keys are ignored", () => {
  const step = XOAUTH2_MECHANISM.start("mx.example.com").next(
    enc("user=tim@example.com\x01host=mx\x01auth=bearer ya29.abc\x01\x01"),
  );
  const credentials = credentialsOf(step);
  assert.equal(credentials.authenticationId, "tim@example.com");
  assert.equal(credentials.authentication, "ya29.abc");
  throwsMalformed(
    () => XOAUTH2_MECHANISM.start("mx").next(enc("user=a\x01user=b\x01auth=Bearer t\x01\x01")),
    "XOAUTH2",
  );
});
