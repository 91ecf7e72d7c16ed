/**
 * Unknown option keys (src/option_keys.ts): a misspelt option from plain
 * JavaScript is named at construction, with the nearest valid key.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MidiSmtpServer } from "../mod.ts";
import { checkOptionKeys, nearestKey, SERVER_OPTION_KEYS } from "../src/option_keys.ts";

describe("unknown option keys", () => {
  it("MidiSmtpServer names the unknown key and the nearest valid one", () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ portz: 2525 }, /^Unknown option "portz" \(did you mean "ports"\?\)$/],
      [{ maxconnections: 5 }, /did you mean "maxConnections"/],
      [{ onMessageData() {} }, /did you mean "onMessageDataEvent"/],
      [{ piplineExtension: true }, /did you mean "pipeliningExtension"/],
      [{ completelyDifferent: 1 }, /^Unknown option "completelyDifferent"$/],
    ];
    for (const [options, message] of cases) {
      assert.throws(() => new MidiSmtpServer(options as never), (err: Error) => {
        return err instanceof TypeError && message.test(err.message);
      }, JSON.stringify(Object.keys(options)));
    }
  });

  it("accepts every option and every hook", () => {
    const server = new MidiSmtpServer({
      ports: 0,
      lmtp: false,
      onMessageDataEvent() {},
      onLoggingEvent() {},
      ehloKeywords: () => {},
    });
    assert.equal(server.options.lmtp, false);
  });

  it("knows every ServerOptions key once, sorted", () => {
    assert.ok(SERVER_OPTION_KEYS.includes("ports") && SERVER_OPTION_KEYS.includes("ehloKeywords"));
    assert.deepEqual([...SERVER_OPTION_KEYS], [...new Set(SERVER_OPTION_KEYS)].sort());
  });

  it("suggests only near keys", () => {
    assert.equal(nearestKey("hostz", ["hosts", "ports"]), "hosts");
    assert.equal(nearestKey("xyz", ["hosts", "ports"]), undefined);
    assert.doesNotThrow(() => checkOptionKeys({}, []));
  });
});
