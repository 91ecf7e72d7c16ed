/**
 * Unit tests of the SASL mechanisms and the AUTH base64 (src/auth/), run under all three runtimes:
 *
 *   deno test -A tests/auth_mechanisms.test.ts
 *   bun test ./tests/auth_mechanisms.test.ts
 *   node --import tsx --test tests/auth_mechanisms.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import {
  CRAM_MD5_MECHANISM,
  createCramMd5Mechanism,
  decodeBase64Response,
  DEFAULT_MECHANISMS,
  encodeBase64,
  LOGIN_MECHANISM,
  PLAIN_MECHANISM,
  type SaslCredentials,
  type SaslExchange,
  type SaslMechanism,
  type SaslStep,
  XOAUTH2_MECHANISM,
} from "../src/auth/mod.ts";
import { SmtpdException } from "../src/exceptions.ts";
import { MidiSmtpServer } from "../src/server.ts";

const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
const dec = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

function challengeOf(step: SaslStep): string {
  assert.equal(step.kind, "challenge");
  return dec((step as { challenge: Uint8Array }).challenge);
}

function credentialsOf(step: SaslStep): SaslCredentials {
  assert.equal(step.kind, "done");
  return (step as { credentials: SaslCredentials }).credentials;
}

/** Asserts that `fn` throws an SmtpdException with this code and enhanced code (and text, if given). */
function assertReply(fn: () => unknown, code: number, enhancedCode: string, text?: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof SmtpdException, `expected SmtpdException, got ${error}`);
    assert.equal(error.code, code);
    assert.equal(error.enhancedCode, enhancedCode);
    if (text !== undefined) assert.equal(error.text, text);
    return true;
  });
}

/** The session's view: base64 lines in, base64 challenges out. */
function run(mechanism: SaslMechanism, initial: string | undefined, ...lines: string[]): SaslStep[] {
  const exchange = mechanism.start("mx.example.com");
  const steps = [exchange.next(initial === undefined ? undefined : decodeBase64Response(initial))];
  for (const line of lines) steps.push(exchange.next(decodeBase64Response(line)));
  return steps;
}

describe("PLAIN", () => {
  it("takes an initial response", () => {
    const [step] = run(PLAIN_MECHANISM, encodeBase64(enc("\0tim\0tanstaaf")));
    assert.deepEqual(credentialsOf(step), {
      mechanism: "PLAIN",
      authorizationId: "",
      authenticationId: "tim",
      authentication: "tanstaaf",
    });
  });

  it("sends an empty challenge without an initial response", () => {
    const exchange = PLAIN_MECHANISM.start("mx.example.com");
    const first = exchange.next(undefined);
    assert.equal(first.kind, "challenge");
    assert.equal((first as { challenge: Uint8Array }).challenge.length, 0);
    assert.equal(encodeBase64((first as { challenge: Uint8Array }).challenge), "");
    const credentials = credentialsOf(exchange.next(enc("admin\0tim\0secret")));
    assert.equal(credentials.authorizationId, "admin");
    assert.equal(credentials.authenticationId, "tim");
    assert.equal(credentials.authentication, "secret");
    assert.equal(credentials.verify, undefined);
  });

  it("decodes UTF-8 identities and passwords", () => {
    const [step] = run(PLAIN_MECHANISM, encodeBase64(enc("jürgen@例え.jp\0jürgen\0pässwörd🔑")));
    const credentials = credentialsOf(step);
    assert.equal(credentials.authorizationId, "jürgen@例え.jp");
    assert.equal(credentials.authenticationId, "jürgen");
    assert.equal(credentials.authentication, "pässwörd🔑");
  });

  it("keeps a password that contains spaces and '=' as sent", () => {
    const credentials = credentialsOf(PLAIN_MECHANISM.start("h").next(enc("\0tim\0 a = b ")));
    assert.equal(credentials.authentication, " a = b ");
  });

  for (
    const [label, message] of [
      ["two parts", "tim\0tanstaaf"],
      ["one part", "timtanstaaf"],
      ["four parts", "\0tim\0tan\0staaf"],
      ["an empty user name", "admin\0\0tanstaaf"],
      ["an empty password", "\0tim\0"],
      ["only separators", "\0\0"],
    ] as const
  ) {
    it(`rejects ${label} with 501 5.5.2`, () => {
      assertReply(() => PLAIN_MECHANISM.start("h").next(enc(message)), 501, "5.5.2", "Malformed PLAIN response");
      // The same after the challenge.
      const exchange = PLAIN_MECHANISM.start("h");
      exchange.next(undefined);
      assertReply(() => exchange.next(enc(message)), 501, "5.5.2", "Malformed PLAIN response");
    });
  }

  it('rejects the empty initial response "=" with 501 5.5.2', () => {
    assertReply(() => run(PLAIN_MECHANISM, "="), 501, "5.5.2", "Malformed PLAIN response");
  });

  it("rejects invalid UTF-8 with 501 5.5.2", () => {
    assertReply(
      () => PLAIN_MECHANISM.start("h").next(new Uint8Array([0, 0x74, 0xff, 0, 0x70])),
      501,
      "5.5.2",
    );
  });

  it("does not echo the password in the error", () => {
    try {
      PLAIN_MECHANISM.start("h").next(enc("\0tim\0hunter2\0extra"));
      assert.fail("expected a throw");
    } catch (error) {
      assert.ok(error instanceof SmtpdException);
      assert.ok(!error.message.includes("hunter2"));
      assert.ok(!error.text.includes("hunter2"));
    }
  });

  it("rejects a missing response after the challenge, and any use after the end", () => {
    const exchange = PLAIN_MECHANISM.start("h");
    exchange.next(undefined);
    assertReply(() => exchange.next(undefined), 501, "5.5.2");
    const done = PLAIN_MECHANISM.start("h");
    done.next(enc("\0tim\0x"));
    assert.throws(
      () => done.next(enc("\0tim\0x")),
      (e: unknown) => e instanceof Error && !(e instanceof SmtpdException),
    );
  });
});

describe("LOGIN", () => {
  it("asks for the user name, then the password", () => {
    const exchange = LOGIN_MECHANISM.start("mx.example.com");
    const first = exchange.next(undefined);
    assert.equal(challengeOf(first), "Username:");
    assert.equal(encodeBase64((first as { challenge: Uint8Array }).challenge), "VXNlcm5hbWU6");
    const second = exchange.next(decodeBase64Response(encodeBase64(enc("tim"))));
    assert.equal(challengeOf(second), "Password:");
    assert.equal(encodeBase64((second as { challenge: Uint8Array }).challenge), "UGFzc3dvcmQ6");
    assert.deepEqual(credentialsOf(exchange.next(enc("tanstaaf"))), {
      mechanism: "LOGIN",
      authorizationId: "",
      authenticationId: "tim",
      authentication: "tanstaaf",
    });
  });

  it("takes an initial response as the user name", () => {
    const steps = run(LOGIN_MECHANISM, "dGlt", "dGFuc3RhYWY=");
    assert.equal(challengeOf(steps[0]), "Password:");
    const credentials = credentialsOf(steps[1]);
    assert.equal(credentials.authenticationId, "tim");
    assert.equal(credentials.authentication, "tanstaaf");
  });

  it("decodes UTF-8 user names and passwords", () => {
    const steps = run(LOGIN_MECHANISM, undefined, encodeBase64(enc("Ωmega@ü.example")), encodeBase64(enc("пароль ✓")));
    const credentials = credentialsOf(steps[2]);
    assert.equal(credentials.authenticationId, "Ωmega@ü.example");
    assert.equal(credentials.authentication, "пароль ✓");
  });

  it("rejects an empty user name with 501 5.5.2, as initial response or as answer", () => {
    assertReply(() => run(LOGIN_MECHANISM, "="), 501, "5.5.2", "Malformed LOGIN response");
    assertReply(() => run(LOGIN_MECHANISM, undefined, ""), 501, "5.5.2", "Malformed LOGIN response");
  });

  it("rejects an empty password with 501 5.5.2", () => {
    assertReply(() => run(LOGIN_MECHANISM, "dGlt", ""), 501, "5.5.2", "Malformed LOGIN response");
  });

  it("rejects invalid UTF-8 with 501 5.5.2", () => {
    assertReply(() => LOGIN_MECHANISM.start("h").next(new Uint8Array([0xc3, 0x28])), 501, "5.5.2");
  });

  it("rejects a missing response after a challenge", () => {
    const exchange = LOGIN_MECHANISM.start("h");
    exchange.next(undefined);
    assertReply(() => exchange.next(undefined), 501, "5.5.2");
  });
});

describe("CRAM-MD5", () => {
  const rfc2195 = createCramMd5Mechanism({ challengeFactory: () => "<1896.697170952@postoffice.reston.mci.net>" });

  it("passes RFC 2195's own example", () => {
    const exchange = rfc2195.start("postoffice.reston.mci.net");
    const first = exchange.next(undefined);
    assert.equal(challengeOf(first), "<1896.697170952@postoffice.reston.mci.net>");
    // The base64 challenge as printed in RFC 2195 2.
    assert.equal(
      encodeBase64((first as { challenge: Uint8Array }).challenge),
      "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+",
    );
    // The client's response as printed in RFC 2195 2.
    const line = "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw";
    const credentials = credentialsOf(exchange.next(decodeBase64Response(line)));
    assert.equal(credentials.mechanism, "CRAM-MD5");
    assert.equal(credentials.authorizationId, "");
    assert.equal(credentials.authenticationId, "tim");
    assert.equal(credentials.authentication, "b913a602c7eda7a495b4e6e7334d3890");
    assert.equal(credentials.verify?.("tanstaaftanstaaf"), true);
    assert.equal(credentials.verify?.("tanstaaftanstaaF"), false);
    assert.equal(credentials.verify?.(""), false);
  });

  it("accepts an upper-case digest and reports it lower-cased", () => {
    const exchange = rfc2195.start("h");
    exchange.next(undefined);
    const credentials = credentialsOf(exchange.next(enc("tim B913A602C7EDA7A495B4E6E7334D3890")));
    assert.equal(credentials.authentication, "b913a602c7eda7a495b4e6e7334d3890");
    assert.equal(credentials.verify?.("tanstaaftanstaaf"), true);
  });

  it("makes a fresh msg-id challenge per exchange with the server name", () => {
    const a = challengeOf(CRAM_MD5_MECHANISM.start("mx.example.com").next(undefined));
    const b = challengeOf(CRAM_MD5_MECHANISM.start("mx.example.com").next(undefined));
    assert.match(a, /^<\d+\.\d+@mx\.example\.com>$/);
    assert.notEqual(a, b);
  });

  it("verifies against its own random challenge, with UTF-8 names and secrets", () => {
    const exchange = CRAM_MD5_MECHANISM.start("mx.example.com");
    const challenge = challengeOf(exchange.next(undefined));
    const secret = "geheimnis-ß-秘密";
    const digest = createHmac("md5", enc(secret)).update(enc(challenge)).digest("hex");
    const credentials = credentialsOf(exchange.next(enc(`jürgen ${digest}`)));
    assert.equal(credentials.authenticationId, "jürgen");
    assert.equal(credentials.verify?.(secret), true);
    assert.equal(credentials.verify?.("geheimnis"), false);
  });

  it("splits at the last space, so a user name may contain spaces", () => {
    const exchange = rfc2195.start("h");
    exchange.next(undefined);
    const credentials = credentialsOf(exchange.next(enc("tim smith b913a602c7eda7a495b4e6e7334d3890")));
    assert.equal(credentials.authenticationId, "tim smith");
  });

  it("rejects an initial response with 501 5.7.0 (RFC 4954 4), even an empty one", () => {
    assertReply(() => run(CRAM_MD5_MECHANISM, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"), 501, "5.7.0");
    assertReply(() => run(CRAM_MD5_MECHANISM, "="), 501, "5.7.0");
  });

  for (
    const [label, response] of [
      ["no space", "timb913a602c7eda7a495b4e6e7334d3890"],
      ["an empty user name", " b913a602c7eda7a495b4e6e7334d3890"],
      ["a short digest", "tim b913a602c7eda7a495b4e6e7334d389"],
      ["a long digest", "tim b913a602c7eda7a495b4e6e7334d38900"],
      ["a non-hex digest", "tim g913a602c7eda7a495b4e6e7334d3890"],
      ["a trailing space", "tim b913a602c7eda7a495b4e6e7334d3890 "],
      ["an empty response", ""],
    ] as const
  ) {
    it(`rejects ${label} with 501 5.5.2`, () => {
      const exchange = rfc2195.start("h");
      exchange.next(undefined);
      assertReply(() => exchange.next(enc(response)), 501, "5.5.2", "Malformed CRAM-MD5 response");
    });
  }
});

describe("XOAUTH2", () => {
  const message = "user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01";

  it("takes an initial response", () => {
    const [step] = run(XOAUTH2_MECHANISM, encodeBase64(enc(message)));
    assert.deepEqual(credentialsOf(step), {
      mechanism: "XOAUTH2",
      authorizationId: "",
      authenticationId: "someuser@example.com",
      authentication: "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
    });
  });

  it("decodes Google's documented example line", () => {
    // From Google's XOAUTH2 protocol page (the SMTP example's base64).
    const line =
      "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==";
    const credentials = credentialsOf(run(XOAUTH2_MECHANISM, line)[0]);
    assert.equal(credentials.authenticationId, "someuser@example.com");
    assert.equal(credentials.authentication, "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg");
  });

  it("sends an empty challenge without an initial response", () => {
    const exchange = XOAUTH2_MECHANISM.start("h");
    const first = exchange.next(undefined);
    assert.equal(challengeOf(first), "");
    assert.equal(credentialsOf(exchange.next(enc(message))).authenticationId, "someuser@example.com");
  });

  it("accepts a UTF-8 user, any case of 'Bearer', and ignores unknown keys", () => {
    const credentials = credentialsOf(
      XOAUTH2_MECHANISM.start("h").next(enc("user=ünï@例え.jp\x01host=mx\x01auth=bearer abc-._~+/=\x01\x01")),
    );
    assert.equal(credentials.authenticationId, "ünï@例え.jp");
    assert.equal(credentials.authentication, "abc-._~+/=");
  });

  for (
    const [label, text] of [
      ["a missing final ^A", "user=u\x01auth=Bearer t\x01"],
      ["no user", "auth=Bearer t\x01\x01"],
      ["an empty user", "user=\x01auth=Bearer t\x01\x01"],
      ["no auth", "user=u\x01\x01"],
      ["a scheme other than Bearer", "user=u\x01auth=Basic dTpw\x01\x01"],
      ["an empty token", "user=u\x01auth=Bearer \x01\x01"],
      ["a token with a space", "user=u\x01auth=Bearer a b\x01\x01"],
      ["a field without '='", "user=u\x01junk\x01auth=Bearer t\x01\x01"],
      ["an empty field in the middle", "user=u\x01\x01auth=Bearer t\x01\x01"],
      ["a duplicated user", "user=u\x01user=v\x01auth=Bearer t\x01\x01"],
      ["an empty message", ""],
    ] as const
  ) {
    it(`rejects ${label} with 501 5.5.2`, () => {
      assertReply(() => XOAUTH2_MECHANISM.start("h").next(enc(text)), 501, "5.5.2", "Malformed XOAUTH2 response");
    });
  }

  it('rejects the empty initial response "=" with 501 5.5.2', () => {
    assertReply(() => run(XOAUTH2_MECHANISM, "="), 501, "5.5.2");
  });
});

describe("decodeBase64Response", () => {
  it('returns empty bytes for "=" (RFC 4954 empty response) and for an empty line', () => {
    assert.deepEqual(decodeBase64Response("="), new Uint8Array(0));
    assert.deepEqual(decodeBase64Response(""), new Uint8Array(0));
  });

  it("decodes '+' and '/' (the Ruby original rejected them)", () => {
    assert.deepEqual(decodeBase64Response("+/+/"), new Uint8Array([0xfb, 0xff, 0xbf]));
    assert.deepEqual(decodeBase64Response("/+8="), new Uint8Array([0xff, 0xef]));
    // A PLAIN message whose base64 needs both.
    const bytes = enc("\0user\0p>?>?~~~");
    const line = encodeBase64(bytes);
    assert.match(line, /\+|\//);
    assert.deepEqual(decodeBase64Response(line), bytes);
  });

  it("accepts padded and unpadded forms alike", () => {
    for (
      const [padded, unpadded, text] of [
        ["Zg==", "Zg", "f"],
        ["Zm8=", "Zm8", "fo"],
        ["Zm9v", "Zm9v", "foo"],
        ["Zm9vYg==", "Zm9vYg", "foob"],
        ["Zm9vYmE=", "Zm9vYmE", "fooba"],
        ["Zm9vYmFy", "Zm9vYmFy", "foobar"],
      ]
    ) {
      assert.equal(dec(decodeBase64Response(padded)), text, padded);
      assert.equal(dec(decodeBase64Response(unpadded)), text, unpadded);
    }
  });

  it("round-trips every byte value and every length up to 300", () => {
    const all = new Uint8Array(256).map((_, i) => i);
    assert.deepEqual(decodeBase64Response(encodeBase64(all)), all);
    for (let n = 0; n <= 300; n++) {
      const bytes = new Uint8Array(n).map((_, i) => (i * 37 + n) & 0xff);
      const line = encodeBase64(bytes);
      assert.equal(line, btoa(String.fromCharCode(...bytes)), `length ${n}`);
      assert.deepEqual(decodeBase64Response(line), bytes, `length ${n}`);
      assert.deepEqual(decodeBase64Response(line.replace(/=+$/, "")), bytes, `length ${n} unpadded`);
    }
  });

  it("decodes UTF-8 as bytes, not as Latin-1 text", () => {
    assert.equal(dec(decodeBase64Response(encodeBase64(enc("ünïcödé ✓ 🔑")))), "ünïcödé ✓ 🔑");
    assert.equal(encodeBase64(enc("ü")), "w7w=");
  });

  for (
    const [label, line] of [
      ["a length of 1 mod 4", "Zm9vY"],
      ["a single character", "Z"],
      ["'==' in the middle", "Zg==Zg=="],
      ["'=' in the middle", "Zm8=Zm8="],
      ["three '='", "Zg==="],
      ["'A==='", "A==="],
      ["only padding", "=="],
      ["four '='", "===="],
      ["padding on a short length", "Zm8=="],
      ["padding that does not reach a multiple of 4", "Zg="],
      ["a space", "Zm9v YmFy"],
      ["a leading space", " Zm9v"],
      ["a trailing space", "Zm9v "],
      ["a tab", "Zm9v\tYmFy"],
      ["a CR", "Zm9v\r"],
      ["a URL-safe '-'", "-_-_"],
      ["a URL-safe '_'", "ab_c"],
      ["'*' (cancel is the session's job)", "*"],
      ["a non-ASCII letter", "Zm9ü"],
      ["a NUL", "Zm9\0"],
    ] as const
  ) {
    it(`rejects ${label} with 501 5.5.2`, () => {
      assertReply(() => decodeBase64Response(line), 501, "5.5.2", "Invalid base64 data");
    });
  }
});

describe("encodeBase64", () => {
  it("encodes with padding, and empty input as empty text", () => {
    assert.equal(encodeBase64(new Uint8Array(0)), "");
    assert.equal(encodeBase64(enc("f")), "Zg==");
    assert.equal(encodeBase64(enc("fo")), "Zm8=");
    assert.equal(encodeBase64(enc("foo")), "Zm9v");
    assert.equal(encodeBase64(new Uint8Array([0xfb, 0xff, 0xbf])), "+/+/");
  });
});

describe("DEFAULT_MECHANISMS and the authMechanisms option", () => {
  it("has PLAIN, LOGIN, CRAM-MD5, XOAUTH2, frozen", () => {
    assert.deepEqual(DEFAULT_MECHANISMS.map((m) => m.name), ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"]);
    assert.ok(Object.isFrozen(DEFAULT_MECHANISMS));
  });

  const anonymous: SaslMechanism = {
    name: "anonymous",
    start: (): SaslExchange => ({
      next: (response) => ({
        kind: "done",
        credentials: {
          mechanism: "ANONYMOUS",
          authorizationId: "",
          authenticationId: "anonymous",
          authentication: dec(response ?? new Uint8Array()),
        },
      }),
    }),
  };

  // Constructing a server binds nothing: these are its own checks of the option.
  it("the server finds every built-in by name, case-insensitively, and refuses unknown names", () => {
    for (const name of [...DEFAULT_MECHANISMS.map((m) => m.name), "plain", "Cram-Md5"]) {
      assert.doesNotThrow(() => new MidiSmtpServer({ authMechanisms: [name] }), name);
    }
    assert.throws(() => new MidiSmtpServer({ authMechanisms: ["NTLM"] }), /Unknown AUTH mechanism NTLM/);
    assert.throws(() => new MidiSmtpServer({ authMechanisms: ["PLAIN", "GSSAPI"] }), /Unknown AUTH mechanism/);
  });

  it("takes mechanism objects, e.g. one overriding a built-in's name", () => {
    const myCram = createCramMd5Mechanism({ challengeFactory: (host) => `<1.2@${host}>` });
    assert.doesNotThrow(() => new MidiSmtpServer({ authMechanisms: ["PLAIN", anonymous, myCram] }));
    assert.equal(challengeOf(myCram.start("mx.test").next(undefined)), "<1.2@mx.test>");
  });

  it("rejects mechanism objects whose names are not SASL mechanism names (RFC 4422 3.1)", () => {
    for (const name of ["", "HAS SPACE", "TOO-LONG-NAME-123456789", "SEMI;COLON", "ÜMLAUT", "ß", "lınt"]) {
      assert.throws(
        () => new MidiSmtpServer({ authMechanisms: [{ ...anonymous, name }] }),
        /Invalid SASL mechanism name/,
        JSON.stringify(name),
      );
    }
    // 20 characters is the limit, not over it.
    assert.doesNotThrow(() => new MidiSmtpServer({ authMechanisms: [{ ...anonymous, name: "A23456789_123456789-" }] }));
  });
});
