/**
 * Unit tests of option defaults, validation and the seed's host/port string forms
 * (src/options.ts), run under all three runtimes:
 *
 *   deno test -A tests/options.test.ts
 *   bun test ./tests/options.test.ts
 *   node --import tsx --test tests/options.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseHosts, parsePorts, resolveOptions, type ServerOptions, SEVERITY_RANK } from "../src/options.ts";
import type { Transport } from "../src/transport/types.ts";
import { CidrList } from "../src/cidr.ts";
import type { CommandDefinition, EsmtpParameter } from "../src/session/registry.ts";

/** Options with deliberately wrong types, as plain JavaScript callers may pass them. */
function untyped(options: Record<string, unknown>): ServerOptions {
  return options as unknown as ServerOptions;
}

/** Asserts a TypeError whose message names the bad option. */
function rejects(options: Record<string, unknown>, name: RegExp): void {
  assert.throws(() => resolveOptions(untyped(options)), (err: unknown) => {
    assert.ok(err instanceof TypeError, `expected a TypeError, got ${String(err)}`);
    assert.match(err.message, name);
    return true;
  }, JSON.stringify(options));
}

const fakeTransport = { listen() {} } as unknown as Transport;

describe("resolveOptions: defaults", () => {
  const defaults = resolveOptions();

  it("has every default", () => {
    assert.deepEqual(defaults, {
      ports: [[2525]],
      hosts: ["127.0.0.1"],
      maxProcessings: 1000,
      maxConnections: null,
      crlfMode: "CRLF_ENSURE",
      doDnsReverseLookup: false,
      ioGreetingTimeout: 300,
      ioCmdTimeout: 300,
      ioDataTimeout: 600,
      ioBufferMaxSize: 1048576,
      maxCommandLineLength: 12288,
      maxDataLineLength: 0,
      maxMessageSize: 26214400,
      maxRecipients: 100,
      maxBadCommands: 10,
      pipeliningExtension: false,
      internationalizationExtensions: false,
      enhancedStatusCodesExtension: true,
      loggerSeverity: "warn",
      transport: undefined,
      reusePort: false,
      tlsMode: "TLS_FORBIDDEN",
      tlsPorts: [],
      tlsCertPath: undefined,
      tlsKeyPath: undefined,
      tlsCertificate: undefined,
      tlsSni: undefined,
      tlsCertCn: undefined,
      tlsCertSan: [],
      tlsMinVersion: "TLSv1.2",
      tlsCiphers: undefined,
      tlsHandshakeTimeout: 10,
      authMode: "AUTH_FORBIDDEN",
      authMechanisms: ["PLAIN", "LOGIN"],
      allowInsecureAuth: false,
      maxAuthFailures: 3,
      proxyExtension: false,
      proxyTrustedSources: new CidrList(["127.0.0.0/8", "::1/128"]),
      proxyTimeout: 5,
      maxConnectionsPerIp: 50,
      maxConnectionRatePerIp: 600,
      maxMessageRatePerIp: 1200,
      maxAuthFailuresPerIp: 10,
      authLockoutTime: 900,
      perIpLimitsExempt: new CidrList([]),
      softErrorLimit: 5,
      errorSleepTime: 1,
      queueTimeout: 30,
      overloadThreshold: 0.8,
      overloadTimeout: 10,
      greetingDelay: 0,
      hookTimeout: 120,
      chunkingExtension: false,
      binaryMimeExtension: false,
      dsnExtension: false,
      requireTlsExtension: false,
      xclientTrustedSources: new CidrList([]),
      xclientTrustsUnix: false,
      lmtp: false,
      socketPaths: [],
      commands: [],
      disabledCommands: [],
      esmtpParameters: [],
      ehloKeywords: undefined,
    });
  });

  const each: Array<[string, unknown]> = [
    ["ports", [[2525]]],
    ["hosts", ["127.0.0.1"]],
    ["maxProcessings", 1000],
    ["maxConnections", null],
    ["crlfMode", "CRLF_ENSURE"],
    ["doDnsReverseLookup", false],
    ["ioGreetingTimeout", 300],
    ["ioCmdTimeout", 300],
    ["ioDataTimeout", 600],
    ["ioBufferMaxSize", 1024 * 1024],
    ["maxCommandLineLength", 12288],
    ["maxDataLineLength", 0],
    ["maxMessageSize", 25 * 1024 * 1024],
    ["maxRecipients", 100],
    ["maxBadCommands", 10],
    ["pipeliningExtension", false],
    ["internationalizationExtensions", false],
    ["enhancedStatusCodesExtension", true],
    ["loggerSeverity", "warn"],
    ["transport", undefined],
    ["reusePort", false],
  ];
  for (const [name, value] of each) {
    it(`${name} defaults to ${JSON.stringify(value)}`, () => {
      assert.deepEqual((defaults as unknown as Record<string, unknown>)[name], value);
    });
  }

  it("resolveOptions({}) equals resolveOptions()", () => {
    assert.deepEqual(resolveOptions({}), defaults);
  });

  it("undefined values take the defaults", () => {
    assert.deepEqual(
      resolveOptions({ maxProcessings: undefined, ioCmdTimeout: undefined, crlfMode: undefined, ports: undefined }),
      defaults,
    );
  });
});

describe("resolveOptions: valid values are kept", () => {
  it("keeps every option given", () => {
    const site: CommandDefinition = { name: "SITE", handler: () => {} };
    const tag: EsmtpParameter = { name: "X-TAG", command: "RCPT", apply: () => {} };
    const ehloKeywords = (_ctx: unknown, lines: string[]) => lines;
    const resolved = resolveOptions({
      ports: "25, 587:2587",
      hosts: "127.0.0.1, [::1]",
      maxProcessings: 5,
      maxConnections: 10,
      crlfMode: "CRLF_STRICT",
      doDnsReverseLookup: true,
      ioGreetingTimeout: 0.5,
      ioCmdTimeout: 30,
      ioDataTimeout: 60,
      ioBufferMaxSize: 4096,
      maxCommandLineLength: 512,
      maxDataLineLength: 1000,
      maxMessageSize: 0,
      maxRecipients: 1,
      maxBadCommands: 2,
      pipeliningExtension: true,
      internationalizationExtensions: true,
      enhancedStatusCodesExtension: false,
      loggerSeverity: "debug",
      transport: fakeTransport,
      reusePort: true,
      tlsMode: "TLS_REQUIRED",
      tlsPorts: "465, 0",
      tlsCert: "CERT",
      tlsKey: "KEY",
      tlsCertCn: "mail.example",
      tlsCertSan: ["alt.example"],
      tlsMinVersion: "TLSv1.3",
      tlsCiphers: "ECDHE-RSA-AES128-GCM-SHA256",
      tlsHandshakeTimeout: 2,
      authMode: "AUTH_OPTIONAL",
      authMechanisms: ["CRAM-MD5"],
      allowInsecureAuth: true,
      maxAuthFailures: 1,
      proxyExtension: true,
      proxyTrustedSources: ["10.0.0.0/8"],
      proxyTimeout: 3,
      maxConnectionsPerIp: null,
      maxConnectionRatePerIp: 10,
      maxMessageRatePerIp: null,
      maxAuthFailuresPerIp: 2,
      authLockoutTime: 60,
      perIpLimitsExempt: ["192.0.2.0/24"],
      softErrorLimit: null,
      errorSleepTime: 0.5,
      queueTimeout: null,
      overloadThreshold: 0.5,
      overloadTimeout: null,
      greetingDelay: 2,
      hookTimeout: 30,
      chunkingExtension: true,
      binaryMimeExtension: true,
      dsnExtension: true,
      requireTlsExtension: true,
      xclientTrustedSources: ["10.1.0.0/16", "unix"],
      lmtp: true,
      socketPaths: "/run/lmtp.sock",
      commands: [site],
      disabledCommands: ["vrfy"],
      esmtpParameters: [tag],
      ehloKeywords,
    });
    assert.deepEqual(resolved, {
      ports: [[25], [587, 2587]],
      hosts: ["127.0.0.1", "::1"],
      maxProcessings: 5,
      maxConnections: 10,
      crlfMode: "CRLF_STRICT",
      doDnsReverseLookup: true,
      ioGreetingTimeout: 0.5,
      ioCmdTimeout: 30,
      ioDataTimeout: 60,
      ioBufferMaxSize: 4096,
      maxCommandLineLength: 512,
      maxDataLineLength: 1000,
      maxMessageSize: 0,
      maxRecipients: 1,
      maxBadCommands: 2,
      pipeliningExtension: true,
      internationalizationExtensions: true,
      enhancedStatusCodesExtension: false,
      loggerSeverity: "debug",
      transport: fakeTransport,
      reusePort: true,
      tlsMode: "TLS_REQUIRED",
      tlsPorts: [465, 0],
      tlsCertPath: undefined,
      tlsKeyPath: undefined,
      tlsCertificate: { cert: "CERT", key: "KEY" },
      tlsSni: undefined,
      tlsCertCn: "mail.example",
      tlsCertSan: ["alt.example"],
      tlsMinVersion: "TLSv1.3",
      tlsCiphers: "ECDHE-RSA-AES128-GCM-SHA256",
      tlsHandshakeTimeout: 2,
      authMode: "AUTH_OPTIONAL",
      authMechanisms: ["CRAM-MD5"],
      allowInsecureAuth: true,
      maxAuthFailures: 1,
      proxyExtension: true,
      proxyTrustedSources: new CidrList(["10.0.0.0/8"]),
      proxyTimeout: 3,
      maxConnectionsPerIp: null,
      maxConnectionRatePerIp: 10,
      maxMessageRatePerIp: null,
      maxAuthFailuresPerIp: 2,
      authLockoutTime: 60,
      perIpLimitsExempt: new CidrList(["192.0.2.0/24"]),
      softErrorLimit: null,
      errorSleepTime: 0.5,
      queueTimeout: null,
      overloadThreshold: 0.5,
      overloadTimeout: null,
      greetingDelay: 2,
      hookTimeout: 30,
      chunkingExtension: true,
      binaryMimeExtension: true,
      dsnExtension: true,
      requireTlsExtension: true,
      xclientTrustedSources: new CidrList(["10.1.0.0/16"]),
      xclientTrustsUnix: true,
      lmtp: true,
      socketPaths: ["/run/lmtp.sock"],
      commands: [site],
      disabledCommands: ["VRFY"],
      esmtpParameters: [tag],
      ehloKeywords,
    });
  });

  it("rejects BINARYMIME without CHUNKING, and bad extension options", () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ binaryMimeExtension: true }, /binaryMimeExtension needs chunkingExtension/],
      [{ xclientTrustedSources: ["10.0.0.0/33"] }, /xclientTrustedSources/],
      [{ socketPaths: [""] }, /socketPaths/],
      [{ lmtp: "yes" }, /lmtp/],
      [{ reusePort: "yes" }, /reusePort/],
      [{ ehloKeywords: "SIZE" }, /ehloKeywords/],
      [{ disabledCommands: ["NO OP"] }, /disabledCommands/],
    ];
    for (const [options, message] of bad) {
      assert.throws(
        () => resolveOptions(options as never),
        (err: Error) => err instanceof TypeError && message.test(err.message),
      );
    }
  });

  it("rejects bad values of the resilience options, naming the option", () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ proxyTrustedSources: ["10.0.0.0/33"] }, /proxyTrustedSources/],
      [{ proxyTrustedSources: "127.0.0.1" }, /proxyTrustedSources/],
      [{ perIpLimitsExempt: ["not an ip"] }, /perIpLimitsExempt/],
      [{ proxyTimeout: 0 }, /proxyTimeout/],
      [{ maxConnectionsPerIp: 0 }, /maxConnectionsPerIp/],
      [{ maxMessageRatePerIp: 1.5 }, /maxMessageRatePerIp/],
      [{ softErrorLimit: -1 }, /softErrorLimit/],
      [{ overloadThreshold: 0 }, /overloadThreshold/],
      [{ overloadThreshold: 1.5 }, /overloadThreshold/],
      [{ greetingDelay: -1 }, /greetingDelay/],
      [{ hookTimeout: 0 }, /hookTimeout/],
      [{ queueTimeout: "30" }, /queueTimeout/],
    ];
    for (const [options, message] of bad) {
      assert.throws(
        () => resolveOptions(options as never),
        (err: Error) => err instanceof TypeError && message.test(err.message),
      );
    }
  });

  it("accepts null for the timeouts, maxConnections and ioBufferMaxSize (no limit)", () => {
    const resolved = resolveOptions({
      ioGreetingTimeout: null,
      ioCmdTimeout: null,
      ioDataTimeout: null,
      maxConnections: null,
      ioBufferMaxSize: null,
    });
    assert.equal(resolved.ioGreetingTimeout, null);
    assert.equal(resolved.ioCmdTimeout, null);
    assert.equal(resolved.ioDataTimeout, null);
    assert.equal(resolved.maxConnections, null);
    assert.equal(resolved.ioBufferMaxSize, null);
  });

  it("accepts maxConnections equal to maxProcessings", () => {
    assert.equal(resolveOptions({ maxProcessings: 7, maxConnections: 7 }).maxConnections, 7);
  });

  it("accepts every CRLF mode and every log severity", () => {
    for (const crlfMode of ["CRLF_ENSURE", "CRLF_LEAVE", "CRLF_STRICT"] as const) {
      assert.equal(resolveOptions({ crlfMode }).crlfMode, crlfMode);
    }
    for (const loggerSeverity of ["debug", "info", "warn", "error", "fatal"] as const) {
      assert.equal(resolveOptions({ loggerSeverity }).loggerSeverity, loggerSeverity);
    }
  });

  it("SEVERITY_RANK orders the severities", () => {
    assert.deepEqual(SEVERITY_RANK, { debug: 0, info: 1, warn: 2, error: 3, fatal: 4 });
  });
});

describe("resolveOptions: invalid options throw a TypeError naming them", () => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ["maxProcessings 0", { maxProcessings: 0 }, /maxProcessings/],
    ["maxProcessings -1", { maxProcessings: -1 }, /maxProcessings/],
    ["maxProcessings 1.5", { maxProcessings: 1.5 }, /maxProcessings/],
    ["maxProcessings as a string", { maxProcessings: "10" }, /maxProcessings/],
    ["maxProcessings NaN", { maxProcessings: NaN }, /maxProcessings/],
    ["maxConnections 0", { maxConnections: 0 }, /maxConnections/],
    ["maxConnections below maxProcessings", { maxProcessings: 10, maxConnections: 9 }, /maxConnections/],
    ["maxConnections below the default maxProcessings", { maxConnections: 999 }, /maxConnections/],
    ["maxConnections 2.5", { maxConnections: 2.5 }, /maxConnections/],
    ["unknown crlfMode", { crlfMode: "CRLF_ANY" }, /CRLF/],
    ["lower-case crlfMode", { crlfMode: "crlf_ensure" }, /CRLF/],
    ["crlfMode as a number", { crlfMode: 1 }, /CRLF/],
    ["unknown loggerSeverity", { loggerSeverity: "verbose" }, /loggerSeverity/],
    ["loggerSeverity naming an Object.prototype member", { loggerSeverity: "toString" }, /loggerSeverity/],
    ["loggerSeverity '__proto__'", { loggerSeverity: "__proto__" }, /loggerSeverity/],
    ["maxBadCommands 1", { maxBadCommands: 1 }, /maxBadCommands/],
    ["maxBadCommands 0", { maxBadCommands: 0 }, /maxBadCommands/],
    ["maxBadCommands 2.5", { maxBadCommands: 2.5 }, /maxBadCommands/],
    ["maxCommandLineLength 511", { maxCommandLineLength: 511 }, /maxCommandLineLength/],
    ["maxCommandLineLength 0", { maxCommandLineLength: 0 }, /maxCommandLineLength/],
    ["ioBufferMaxSize 0", { ioBufferMaxSize: 0 }, /ioBufferMaxSize/],
    ["ioBufferMaxSize -1", { ioBufferMaxSize: -1 }, /ioBufferMaxSize/],
    ["ioBufferMaxSize 1.5", { ioBufferMaxSize: 1.5 }, /ioBufferMaxSize/],
    ["ioGreetingTimeout -1", { ioGreetingTimeout: -1 }, /ioGreetingTimeout/],
    ["ioGreetingTimeout 0", { ioGreetingTimeout: 0 }, /ioGreetingTimeout/],
    ["ioCmdTimeout -5", { ioCmdTimeout: -5 }, /ioCmdTimeout/],
    ["ioCmdTimeout NaN", { ioCmdTimeout: NaN }, /ioCmdTimeout/],
    ["ioCmdTimeout Infinity", { ioCmdTimeout: Infinity }, /ioCmdTimeout/],
    ["ioDataTimeout -0.5", { ioDataTimeout: -0.5 }, /ioDataTimeout/],
    ["ioDataTimeout as a string", { ioDataTimeout: "600" }, /ioDataTimeout/],
    ["maxDataLineLength -1", { maxDataLineLength: -1 }, /maxDataLineLength/],
    ["maxDataLineLength 0.5", { maxDataLineLength: 0.5 }, /maxDataLineLength/],
    ["maxMessageSize -1", { maxMessageSize: -1 }, /maxMessageSize/],
    ["maxMessageSize as a string", { maxMessageSize: "1000" }, /maxMessageSize/],
    ["maxRecipients 0", { maxRecipients: 0 }, /maxRecipients/],
    ["maxRecipients -3", { maxRecipients: -3 }, /maxRecipients/],
    ["doDnsReverseLookup 'yes'", { doDnsReverseLookup: "yes" }, /doDnsReverseLookup/],
    ["doDnsReverseLookup 1", { doDnsReverseLookup: 1 }, /doDnsReverseLookup/],
    ["pipeliningExtension 'true'", { pipeliningExtension: "true" }, /pipeliningExtension/],
    ["internationalizationExtensions 0", { internationalizationExtensions: 0 }, /internationalizationExtensions/],
    ["enhancedStatusCodesExtension 'false'", { enhancedStatusCodesExtension: "false" }, /enhancedStatusCodesExtension/],
    ["transport without listen()", { transport: {} }, /transport/],
    ["transport with a non-function listen", { transport: { listen: 1 } }, /transport/],
    ["transport null", { transport: null }, /transport/],
    ["invalid port", { ports: "smtp" }, /port/i],
    ["port out of range", { ports: 70000 }, /port/i],
    ["empty ports", { ports: "" }, /ports/],
    ["empty hosts", { hosts: "" }, /hosts/],
    ["empty host item", { hosts: "127.0.0.1,,::1" }, /hosts/],
  ];
  for (const [what, options, name] of cases) {
    it(what, () => rejects(options, name));
  }
});

describe("parsePorts", () => {
  it("parses one port as a number or a string", () => {
    assert.deepEqual(parsePorts(2525), [[2525]]);
    assert.deepEqual(parsePorts("2525"), [[2525]]);
    assert.deepEqual(parsePorts(" 2525 "), [[2525]]);
  });

  it('parses "2525, 3535" as one port per host entry', () => {
    assert.deepEqual(parsePorts("2525, 3535"), [[2525], [3535]]);
    assert.deepEqual(parsePorts("2525,3535,25"), [[2525], [3535], [25]]);
  });

  it('parses "2525:3535" as several ports for one host entry', () => {
    assert.deepEqual(parsePorts("2525:3535"), [[2525, 3535]]);
    assert.deepEqual(parsePorts("2525 : 3535 : 25"), [[2525, 3535, 25]]);
  });

  it('combines both forms: "25:587, 2525"', () => {
    assert.deepEqual(parsePorts("25:587, 2525"), [[25, 587], [2525]]);
  });

  it("parses arrays of numbers and strings", () => {
    assert.deepEqual(parsePorts([2525, 3535]), [[2525], [3535]]);
    assert.deepEqual(parsePorts(["2525", " 3535 "]), [[2525], [3535]]);
    assert.deepEqual(parsePorts(["25:587", 2525]), [[25, 587], [2525]]);
  });

  it("accepts 0 (a free port) and 65535", () => {
    assert.deepEqual(parsePorts(0), [[0]]);
    assert.deepEqual(parsePorts("65535"), [[65535]]);
  });

  const invalid: Array<[string, number | string | Array<number | string>]> = [
    ["a name", "smtp"],
    ["65536", "65536"],
    ["70000 as a number", 70000],
    ["a negative port", "-1"],
    ["a negative number", -25],
    ["a fraction", "25.5"],
    ["a fractional number", 25.5],
    ["NaN", NaN],
    ["a trailing colon", "2525:"],
    ["a leading colon", ":2525"],
    ["two colons", "25::587"],
    ["an invalid item in an array", [2525, "x"]],
    ["a port with junk", "25a"],
  ];
  for (const [what, value] of invalid) {
    it(`rejects ${what}: ${JSON.stringify(value)}`, () => {
      assert.throws(() => parsePorts(value), TypeError);
    });
  }

  it("names the bad port in the error", () => {
    assert.throws(() => parsePorts("2525, 99999"), /99999/);
  });

  it("rejects an empty string, an empty array and blank input: no ports defined", () => {
    for (const value of ["", "  ", []]) {
      assert.throws(
        () => parsePorts(value),
        (err: unknown) => err instanceof TypeError && /No ports defined/.test(err.message),
      );
    }
  });

  it("rejects an empty item", () => {
    for (const value of ["2525,", ",2525", "2525,,3535", "2525, ,3535", [2525, ""], [" ", 25]]) {
      assert.throws(
        () => parsePorts(value),
        (err: unknown) => err instanceof TypeError && /empty identifier/.test(err.message),
        JSON.stringify(value),
      );
    }
  });
});

describe("parseHosts", () => {
  it("parses one host", () => {
    assert.deepEqual(parseHosts("127.0.0.1"), ["127.0.0.1"]);
    assert.deepEqual(parseHosts("localhost"), ["localhost"]);
    assert.deepEqual(parseHosts("*"), ["*"]);
  });

  it('parses "127.0.0.1, ::1"', () => {
    assert.deepEqual(parseHosts("127.0.0.1, ::1"), ["127.0.0.1", "::1"]);
  });

  it('drops brackets around IPv6 addresses: "[::1]"', () => {
    assert.deepEqual(parseHosts("[::1]"), ["::1"]);
    assert.deepEqual(parseHosts(" [::1] , 127.0.0.1"), ["::1", "127.0.0.1"]);
    assert.deepEqual(parseHosts("[2001:db8::1]"), ["2001:db8::1"]);
  });

  it("parses arrays", () => {
    assert.deepEqual(parseHosts(["127.0.0.1", "[::1]", " localhost "]), ["127.0.0.1", "::1", "localhost"]);
  });

  it("rejects an empty string, blank input and an empty array: no hosts defined", () => {
    for (const value of ["", "   ", [], [""]]) {
      assert.throws(
        () => parseHosts(value),
        (err: unknown) => err instanceof TypeError && /No hosts defined/.test(err.message),
        JSON.stringify(value),
      );
    }
  });

  it("rejects an empty item", () => {
    for (const value of ["127.0.0.1,", ",::1", "a,,b", "a, ,b", ["a", ""], ["a", "  "]]) {
      assert.throws(
        () => parseHosts(value),
        (err: unknown) => err instanceof TypeError && /empty identifier/.test(err.message),
        JSON.stringify(value),
      );
    }
  });
});

describe("resolveOptions: TLS and AUTH options", () => {
  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ["unknown tlsMode", { tlsMode: "TLS_MAYBE" }, /Unknown encryption mode TLS_MAYBE/],
    ["unknown authMode", { authMode: "AUTH_MAYBE" }, /Unknown authentication mode AUTH_MAYBE/],
    ["tlsCert without tlsKey", { tlsCert: "CERT" }, /tlsCert and tlsKey go together/],
    ["tlsCert with tlsCertPath", { tlsCert: "C", tlsKey: "K", tlsCertPath: "/x" }, /not both/],
    ["tlsKeyPath alone", { tlsKeyPath: "/k.pem" }, /tlsKeyPath needs tlsCertPath/],
    ["tlsMinVersion TLSv1.1", { tlsMinVersion: "TLSv1.1" }, /tlsMinVersion/],
    ["tlsHandshakeTimeout 0", { tlsHandshakeTimeout: 0 }, /tlsHandshakeTimeout/],
    ["empty authMechanisms", { authMechanisms: [] }, /at least one mechanism/],
    ["maxAuthFailures 0", { maxAuthFailures: 0 }, /maxAuthFailures/],
    ["allowInsecureAuth as a string", { allowInsecureAuth: "yes" }, /allowInsecureAuth/],
    ["tlsPorts out of range", { tlsPorts: 70000 }, /Invalid port/],
  ];
  for (const [name, options, message] of bad) {
    it(`rejects ${name}`, () => {
      assert.throws(() => resolveOptions(options as ServerOptions), (err: unknown) => {
        assert.ok(err instanceof TypeError);
        assert.match(err.message, message);
        return true;
      });
    });
  }
});
