/**
 * Unit tests of the dev server's flag value parsers (src/dev_server/flag_values.ts), run under all three runtimes:
 *
 *   deno test -A tests/dev_server_flag_values.test.ts
 *   bun test ./tests/dev_server_flag_values.test.ts
 *   node --import tsx --test tests/dev_server_flag_values.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CliError } from "../src/dev_server/cli_error.ts";
import {
  authMechanismList,
  authUser,
  cidrEntries,
  integer,
  integerOrOff,
  MAX_SECONDS,
  oneOf,
  portList,
  seconds,
  secondsOrOff,
  xclientEntries,
} from "../src/dev_server/flag_values.ts";
import { TLS_MODES } from "../src/options.ts";

/** Asserts that `fn` throws a CliError whose message matches `message`. */
function throwsCliError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof CliError, `a CliError, got ${String(err)}`);
    assert.equal(err.name, "CliError");
    assert.match(err.message, message);
    return true;
  });
}

describe("integer and integerOrOff", () => {
  it("take plain decimal digits only, and the fallback when the flag is absent", () => {
    assert.equal(integer("--max-size", "1048576", 7), 1048576);
    assert.equal(integer("--max-size", "0", 7), 0);
    assert.equal(integer("--max-size", undefined, 7), 7);
    for (const bad of ["", "1e3", "0x10", " 7", "7 ", "-1", "1.5", "1".repeat(16)]) {
      throwsCliError(() => integer("--max-size", bad, 7), /^--max-size needs a whole number, got "/);
    }
  });

  it("integerOrOff: off (any case) is null", () => {
    assert.equal(integerOrOff("--max-connections-per-ip", "OFF", 50), null);
    assert.equal(integerOrOff("--max-connections-per-ip", "off", 50), null);
    assert.equal(integerOrOff("--max-connections-per-ip", "3", 50), 3);
    assert.equal(integerOrOff("--max-connections-per-ip", undefined, null), null);
    throwsCliError(() => integerOrOff("--max-connections-per-ip", "none", 50), /a whole number or off, got "none"/);
  });
});

describe("seconds and secondsOrOff", () => {
  it("take decimals, refuse 0 unless allowed, and cap at what a timer can hold", () => {
    assert.equal(seconds("--hook-timeout", "2.5"), 2.5);
    assert.equal(seconds("--greeting-delay", "0", { zero: true }), 0);
    throwsCliError(() => seconds("--hook-timeout", "0"), /^--hook-timeout must be more than 0 seconds$/);
    throwsCliError(() => seconds("--hook-timeout", "0", { off: true }), /\(off for no limit\)$/);
    assert.equal(seconds("--hook-timeout", String(MAX_SECONDS)), MAX_SECONDS);
    throwsCliError(() => seconds("--hook-timeout", String(MAX_SECONDS + 1)), /at most 2147483 seconds/);
    // 2^31-1 ms is the longest a setTimeout waits; longer fires at once.
    assert.ok(MAX_SECONDS * 1000 <= 2 ** 31 - 1);
    for (const bad of ["", "1e3", ".5", "5.", "-1", "1.1234567", "off"]) {
      throwsCliError(() => seconds("--hook-timeout", bad), /needs a number of seconds, got "/);
    }
  });

  it("off is null where allowed", () => {
    assert.equal(seconds("--io-cmd-timeout", "Off", { off: true }), null);
    assert.equal(secondsOrOff("--io-cmd-timeout", "off", 300), null);
    assert.equal(secondsOrOff("--io-cmd-timeout", "1.25", 300), 1.25);
    assert.equal(secondsOrOff("--io-cmd-timeout", undefined, 300), 300);
    throwsCliError(() => secondsOrOff("--io-cmd-timeout", "x", 300), /a number of seconds or off, got "x"/);
  });
});

describe("oneOf", () => {
  it("matches case-insensitively and lists the choices when it does not", () => {
    assert.equal(oneOf("--tls-mode", "tls_optional", TLS_MODES, "TLS_FORBIDDEN"), "TLS_OPTIONAL");
    assert.equal(oneOf("--tls-mode", undefined, TLS_MODES, "TLS_FORBIDDEN"), "TLS_FORBIDDEN");
    throwsCliError(
      () => oneOf("--tls-mode", "on", TLS_MODES, "TLS_FORBIDDEN"),
      /^--tls-mode must be one of TLS_FORBIDDEN, TLS_OPTIONAL, TLS_REQUIRED, got "on"$/,
    );
  });
});

describe("list values", () => {
  it("cidrEntries splits at commas and white space", () => {
    assert.deepEqual(cidrEntries("10.0.0.0/8, 192.0.2.1 ::1"), ["10.0.0.0/8", "192.0.2.1", "::1"]);
    throwsCliError(() => cidrEntries(" , "), /^--proxy-trusted needs an address or network/);
    throwsCliError(() => cidrEntries("", "--xclient-trusted"), /^--xclient-trusted needs an address or network/);
  });

  it("xclientEntries takes CIDR entries and unix, in any case, spelt as the server wants it", () => {
    assert.deepEqual(xclientEntries("10.0.0.0/8, UNIX ::1 unix"), ["10.0.0.0/8", "unix", "::1", "unix"]);
    throwsCliError(() => xclientEntries(","), /^--xclient-trusted needs an address or network/);
  });

  it("authMechanismList upper-cases and refuses empty lists and repeats", () => {
    assert.deepEqual(authMechanismList("plain, login cram-md5"), ["PLAIN", "LOGIN", "CRAM-MD5"]);
    throwsCliError(() => authMechanismList(","), /needs at least one mechanism/);
    throwsCliError(() => authMechanismList("PLAIN,plain"), /lists PLAIN twice/);
  });

  it("portList gives every port of the ports syntax, and names the flag when it is bad", () => {
    assert.deepEqual(portList("--tls-port", "465:4650"), [465, 4650]);
    assert.deepEqual(portList("--ports", "25, 587"), [25, 587]);
    throwsCliError(() => portList("--tls-port", "http"), /^--tls-port: /);
  });
});

describe("authUser", () => {
  it("splits at the first colon, so passwords may hold colons", () => {
    assert.deepEqual(authUser("bob:pa:ss"), { user: "bob", password: "pa:ss" });
    assert.deepEqual(authUser(":x"), { user: "", password: "x" }, "empty names are checked with the config");
  });

  it("never echoes the value: it may be a password", () => {
    assert.throws(() => authUser("secretpassword"), (err: unknown) => {
      assert.ok(err instanceof CliError);
      assert.ok(!err.message.includes("secretpassword"), err.message);
      return true;
    });
  });
});
