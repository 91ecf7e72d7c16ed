/**
 * Unit tests of the reply-carrying errors (src/exceptions.ts), run under all three runtimes:
 *
 *   deno test -A tests/exceptions.test.ts
 *   bun test ./tests/exceptions.test.ts
 *   node --import tsx --test tests/exceptions.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as exceptions from "../src/exceptions.ts";
import {
  Smtpd421Exception,
  Smtpd432Exception,
  Smtpd450Exception,
  Smtpd451Exception,
  Smtpd452Exception,
  Smtpd454Exception,
  Smtpd500CrLfSequenceException,
  Smtpd500Exception,
  Smtpd500PipeliningException,
  Smtpd501Exception,
  Smtpd502Exception,
  Smtpd503Exception,
  Smtpd504Exception,
  Smtpd521Exception,
  Smtpd530Exception,
  Smtpd534Exception,
  Smtpd535Exception,
  Smtpd538Exception,
  Smtpd550Exception,
  Smtpd552Exception,
  Smtpd553Exception,
  Smtpd554Exception,
  SmtpdException,
  Tls454Exception,
  Tls530Exception,
} from "../src/exceptions.ts";

type NamedException = new (message?: string, text?: string, enhancedCode?: string) => SmtpdException;

/** Every named class with its code, enhanced code and default text. */
const NAMED: Array<[string, NamedException, number, string, string]> = [
  [
    "Smtpd421Exception",
    Smtpd421Exception,
    421,
    "4.3.0",
    "Service too busy or not available, closing transmission channel",
  ],
  ["Smtpd450Exception", Smtpd450Exception, 450, "4.2.1", "Requested mail action not taken: mailbox unavailable"],
  ["Smtpd451Exception", Smtpd451Exception, 451, "4.3.0", "Requested action aborted: local error in processing"],
  ["Smtpd452Exception", Smtpd452Exception, 452, "4.3.1", "Requested action not taken: insufficient system storage"],
  [
    "Smtpd500Exception",
    Smtpd500Exception,
    500,
    "5.5.2",
    "Syntax error, command unrecognised or error in parameters or arguments",
  ],
  ["Smtpd501Exception", Smtpd501Exception, 501, "5.5.4", "Syntax error in parameters or arguments"],
  ["Smtpd502Exception", Smtpd502Exception, 502, "5.5.1", "Command not implemented"],
  ["Smtpd503Exception", Smtpd503Exception, 503, "5.5.1", "Bad sequence of commands"],
  ["Smtpd504Exception", Smtpd504Exception, 504, "5.5.4", "Command parameter not implemented"],
  ["Smtpd521Exception", Smtpd521Exception, 521, "5.3.2", "Service does not accept mail"],
  ["Smtpd550Exception", Smtpd550Exception, 550, "5.1.1", "Requested action not taken: mailbox unavailable"],
  ["Smtpd552Exception", Smtpd552Exception, 552, "5.3.4", "Requested mail action aborted: exceeded storage allocation"],
  ["Smtpd553Exception", Smtpd553Exception, 553, "5.1.3", "Requested action not taken: mailbox name not allowed"],
  ["Smtpd554Exception", Smtpd554Exception, 554, "5.0.0", "Transaction failed"],
  ["Smtpd432Exception", Smtpd432Exception, 432, "4.7.12", "Password transition is needed"],
  ["Smtpd454Exception", Smtpd454Exception, 454, "4.7.0", "Temporary authentication failure"],
  ["Smtpd530Exception", Smtpd530Exception, 530, "5.7.0", "Authentication required"],
  ["Smtpd534Exception", Smtpd534Exception, 534, "5.7.9", "Authentication mechanism is too weak"],
  ["Smtpd535Exception", Smtpd535Exception, 535, "5.7.8", "Authentication credentials invalid"],
  ["Smtpd538Exception", Smtpd538Exception, 538, "5.7.11", "Encryption required for requested authentication mechanism"],
  ["Tls454Exception", Tls454Exception, 454, "4.7.0", "TLS not available"],
  ["Tls530Exception", Tls530Exception, 530, "5.7.0", "Must issue a STARTTLS command first"],
  ["Smtpd500PipeliningException", Smtpd500PipeliningException, 500, "5.5.0", "Bad input, PIPELINING is not allowed"],
  [
    "Smtpd500CrLfSequenceException",
    Smtpd500CrLfSequenceException,
    500,
    "5.5.2",
    "Bad input, Lines must be terminated by CRLF sequence",
  ],
];

describe("named exceptions", () => {
  it("the table covers every class exported by exceptions.ts", () => {
    const exported = Object.entries(exceptions)
      .filter(([, value]) => typeof value === "function" && value !== SmtpdException)
      .map(([name]) => name)
      .sort();
    assert.deepEqual(exported, NAMED.map(([name]) => name).sort());
  });

  for (const [name, Class, code, enhancedCode, text] of NAMED) {
    describe(name, () => {
      const err = new Class();

      it(`is ${code} ${enhancedCode} "${text}"`, () => {
        assert.equal(err.code, code);
        assert.equal(err.enhancedCode, enhancedCode);
        assert.equal(err.text, text);
      });

      it("has an enhanced code whose class digit is the reply code's first digit", () => {
        assert.match(err.enhancedCode, /^[245]\.\d{1,3}\.\d{1,3}$/);
        assert.equal(err.enhancedCode[0], String(code)[0]);
      });

      it("formats smtpdResult and uses it as the default message", () => {
        assert.equal(err.smtpdResult, `${code} ${enhancedCode} ${text}`);
        assert.equal(err.message, `${code} ${enhancedCode} ${text}`);
      });

      it("is an SmtpdException and an Error named after its class", () => {
        assert.ok(err instanceof SmtpdException);
        assert.ok(err instanceof Error);
        assert.ok(err instanceof Class);
        assert.equal(err.name, name);
        assert.equal(typeof err.stack, "string");
      });

      it("takes a log message, a text and an enhanced code", () => {
        const custom = new Class("logged detail", "Custom text", `${String(code)[0]}.9.9`);
        assert.equal(custom.message, "logged detail");
        assert.equal(custom.text, "Custom text");
        assert.equal(custom.enhancedCode, `${String(code)[0]}.9.9`);
        assert.equal(custom.code, code);
        assert.equal(custom.smtpdResult, `${code} ${String(code)[0]}.9.9 Custom text`);
      });

      it("strips CR and LF from its text", () => {
        const custom = new Class(undefined, "one\r\ntwo\nthree\rfour");
        assert.equal(custom.text, "one two three four");
        assert.ok(!/[\r\n]/.test(custom.smtpdResult));
        assert.ok(!/[\r\n]/.test(custom.message));
      });

      it("can be thrown and caught as an SmtpdException", () => {
        assert.throws(() => {
          throw new Class();
        }, (caught: unknown) => caught instanceof SmtpdException && caught.code === code);
      });
    });
  }
});

describe("SmtpdException", () => {
  it("keeps code, enhanced code and text", () => {
    const err = new SmtpdException(550, "5.7.1", "Relaying denied");
    assert.equal(err.code, 550);
    assert.equal(err.enhancedCode, "5.7.1");
    assert.equal(err.text, "Relaying denied");
    assert.equal(err.smtpdResult, "550 5.7.1 Relaying denied");
    assert.equal(err.message, "550 5.7.1 Relaying denied");
    assert.equal(err.name, "SmtpdException");
    assert.ok(err instanceof Error);
  });

  it("accepts the code as a string (the seed's form)", () => {
    const err = new SmtpdException("550", "5.7.1", "Relaying denied", "relay attempt from 192.0.2.1");
    assert.equal(err.code, 550);
    assert.equal(typeof err.code, "number");
    assert.equal(err.message, "relay attempt from 192.0.2.1");
    assert.equal(err.smtpdResult, "550 5.7.1 Relaying denied");
  });

  it("leaves the enhanced code out when it is empty", () => {
    const err = new SmtpdException(250, "", "OK");
    assert.equal(err.smtpdResult, "250 OK");
    assert.equal(err.message, "250 OK");
  });

  it("strips CR and LF from the text (no reply injection)", () => {
    const err = new SmtpdException(550, "5.7.1", "Denied\r\n250 2.0.0 Ok");
    assert.equal(err.text, "Denied 250 2.0.0 Ok");
    assert.equal(err.smtpdResult, "550 5.7.1 Denied 250 2.0.0 Ok");
    assert.equal(new SmtpdException(550, "", "a\r\r\n\nb").text, "a b");
  });

  it("accepts the codes 200..599", () => {
    assert.equal(new SmtpdException(200, "", "x").code, 200);
    assert.equal(new SmtpdException(599, "", "x").code, 599);
    assert.equal(new SmtpdException(354, "", "x").code, 354);
  });

  const badCodes: Array<number | string> = [199, 600, 0, -550, 55, 5500, 550.5, NaN, "abc", "", "55O"];
  for (const code of badCodes) {
    it(`rejects the code ${JSON.stringify(code)} with a RangeError`, () => {
      assert.throws(() => new SmtpdException(code, "", "x"), RangeError);
    });
  }

  const badEnhanced = [
    "5",
    "5.1",
    "5.1.1.1",
    "3.1.1",
    "6.0.0",
    "5.1.1 ",
    " 5.1.1",
    "5.1.a",
    "5.1234.1",
    "5..1",
    "5.1.1\r\n",
  ];
  for (const enhancedCode of badEnhanced) {
    it(`rejects the enhanced code ${JSON.stringify(enhancedCode)} with a RangeError`, () => {
      assert.throws(() => new SmtpdException(550, enhancedCode, "x"), RangeError);
    });
  }

  it("rejects an enhanced code whose class differs from the reply code's (RFC 3463, RFC 2034)", () => {
    assert.throws(() => new SmtpdException(550, "4.7.1", "x"), RangeError);
    assert.throws(() => new SmtpdException(451, "5.3.0", "x"), RangeError);
    assert.throws(() => new SmtpdException(250, "5.0.0", "x"), RangeError);
    assert.throws(() => new Smtpd550Exception(undefined, "x", "2.0.0"), RangeError);
  });

  it("named classes reject bad enhanced codes too", () => {
    assert.throws(() => new Smtpd550Exception(undefined, "x", "5.1"), RangeError);
  });
});

describe("SmtpdException across copies of the library", () => {
  it("recognises an error branded by another copy (ESM and CommonJS builds in one process)", () => {
    // What the other build's class makes: same brand, different prototype chain.
    const foreign = Object.assign(new Error("550 5.7.1 No"), { code: 550, enhancedCode: "5.7.1", text: "No" });
    Object.defineProperty(foreign, Symbol.for("midi-smtp-server.SmtpdException"), { value: true });
    assert.ok(foreign instanceof SmtpdException);
    assert.ok(!(new Error("plain") instanceof SmtpdException));
    assert.ok(!((null as unknown) instanceof SmtpdException));
    assert.ok(new Smtpd550Exception() instanceof SmtpdException);
    // Subclasses keep the prototype check: a 550 is no 421.
    assert.ok(new Smtpd550Exception() instanceof Smtpd550Exception);
    assert.ok(!(new Smtpd550Exception() instanceof Smtpd421Exception));
  });
});
