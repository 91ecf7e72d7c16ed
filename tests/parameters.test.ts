/**
 * The MAIL/RCPT parameter table on its own (src/session/parameters.ts): the
 * built-in declarations, an application's, and the 555 for anything not
 * declared or not offered. The wire behaviour is in dsn.test.ts and
 * registry.test.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { newContext, newEnvelope, type RecipientContext, type SmtpdContext } from "../src/context.ts";
import { resolveOptions, type ServerOptions } from "../src/options.ts";
import { builtinParameters, ParameterTable } from "../src/session/parameters.ts";
import { SmtpdException } from "../src/exceptions.ts";

const ctx = {} as SmtpdContext;

function table(options: ServerOptions = {}) {
  return new ParameterTable(resolveOptions(options));
}

function offering(...keywords: string[]) {
  return (keyword: string) => keywords.includes(keyword);
}

function refusal(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof SmtpdException);
    return `${err.code} ${err.enhancedCode} ${err.text}`;
  }
  assert.fail("no refusal");
}

describe("ParameterTable", () => {
  it("applies DSN and BODY parameters to the envelope when their keywords are offered", () => {
    const envelope = newEnvelope();
    table().apply("MAIL", { RET: "HDRS", ENVID: "QQ314159+2B1", BODY: "8BITMIME", SIZE: "100" }, {
      ctx,
      envelope,
      offers: offering("DSN", "8BITMIME", "SIZE"),
    });
    assert.deepEqual(envelope.dsn, { ret: "HDRS", envid: "QQ314159+1" });
    assert.equal(envelope.encodingBody, "8bitmime");
  });

  it("fills the recipient with NOTIFY and ORCPT", () => {
    const recipient: RecipientContext = { address: "<a@b>", params: {}, notify: null, orcpt: null, values: {} };
    table().apply("RCPT", { NOTIFY: "SUCCESS,DELAY", ORCPT: "rfc822;a+40b" }, {
      ctx,
      envelope: newEnvelope(),
      recipient,
      offers: offering("DSN"),
    });
    assert.deepEqual(recipient.notify, ["SUCCESS", "DELAY"]);
    assert.deepEqual(recipient.orcpt, { type: "rfc822", address: "a@b" });
  });

  it("answers 555 for a parameter whose extension is not offered, or that nobody declared", () => {
    const target = { ctx, envelope: newEnvelope(), offers: offering() };
    assert.equal(refusal(() => table().apply("MAIL", { RET: "FULL" }, target)), "555 5.5.4 Unsupported parameter RET");
    assert.equal(refusal(() => table().apply("MAIL", { XYZ: true }, target)), "555 5.5.4 Unsupported parameter XYZ");
    assert.equal(
      refusal(() => table().apply("MAIL", { BODY: "BINARYMIME" }, { ...target, offers: offering("8BITMIME") })),
      "501 5.5.4 Syntax error in BODY parameter (7BIT or 8BITMIME)",
    );
  });

  it("refuses SIZE past the limit with 552 and a bad SIZE with 501", () => {
    const target = { ctx, envelope: newEnvelope(), offers: offering("SIZE") };
    assert.match(refusal(() => table({ maxMessageSize: 10 }).apply("MAIL", { SIZE: "11" }, target)), /^552 /);
    assert.match(refusal(() => table().apply("MAIL", { SIZE: "ten" }, target)), /^501 /);
  });

  it("lets an application's declaration replace a built-in one and record values", () => {
    const envelope = newEnvelope();
    const custom = table({
      esmtpParameters: [{
        name: "size",
        command: "MAIL",
        apply(value, target) {
          target.envelope.values.size = value;
        },
      }],
    });
    custom.apply("MAIL", { SIZE: "999999999999" }, { ctx, envelope, offers: offering() });
    assert.deepEqual(envelope.values, { size: "999999999999" });
  });

  it("declares every built-in parameter for MAIL or RCPT", () => {
    const names = builtinParameters(resolveOptions({})).map((p) => `${p.command} ${p.name}`);
    assert.deepEqual(names, [
      "MAIL SIZE",
      "MAIL BODY",
      "MAIL AUTH",
      "MAIL SMTPUTF8",
      "MAIL RET",
      "MAIL ENVID",
      "MAIL REQUIRETLS",
      "RCPT NOTIFY",
      "RCPT ORCPT",
    ]);
  });

  it("works with a real context object", () => {
    const real = newContext({} as SmtpdContext["server"]);
    const envelope = newEnvelope();
    table().apply("MAIL", { REQUIRETLS: true }, { ctx: real, envelope, offers: offering("REQUIRETLS") });
    assert.equal(envelope.requireTls, true);
  });
});
