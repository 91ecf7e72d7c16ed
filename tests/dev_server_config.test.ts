/**
 * Unit tests of the dev server's configuration check and server options (src/dev_server/config.ts), run under all
 * three runtimes:
 *
 *   deno test -A tests/dev_server_config.test.ts
 *   bun test ./tests/dev_server_config.test.ts
 *   node --import tsx --test tests/dev_server_config.test.ts
 *
 * parseCliArgs runs the same check (tests/cli.test.ts); here it gets configurations made in code, as
 * runDevServer does, including ones no command line can express.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_MECHANISMS } from "../src/auth/mod.ts";
import { DEFAULT_CONFIG, type DevServerConfig } from "../src/dev_server/args.ts";
import { CliError } from "../src/dev_server/cli_error.ts";
import { checkConfig, serverOptions } from "../src/dev_server/config.ts";
import { MidiSmtpServer } from "../src/server.ts";

const USERS = [{ user: "alice", password: "s3cret" }];

/** Asserts that checkConfig refuses `overrides` with a CliError matching `message`. */
function refuses(overrides: Partial<DevServerConfig>, message: RegExp): void {
  assert.throws(() => checkConfig({ ...DEFAULT_CONFIG, ...overrides }), (err: unknown) => {
    assert.ok(err instanceof CliError, `a CliError, got ${String(err)}`);
    assert.match(err.message, message);
    return true;
  }, JSON.stringify(overrides));
}

describe("checkConfig", () => {
  it("accepts the defaults and a full TLS and AUTH setup", () => {
    checkConfig(DEFAULT_CONFIG);
    checkConfig({
      ...DEFAULT_CONFIG,
      tlsMode: "TLS_REQUIRED",
      tlsPorts: ["0", "0", "4650"],
      authMode: "AUTH_REQUIRED",
      authUsers: USERS,
      authMechanisms: ["XOAUTH2", "plain"],
    });
  });

  it("names the flag for what only the dev server knows", () => {
    refuses({ maildir: "" }, /^--maildir must not be empty$/);
    refuses({ maxRecipients: 0 }, /^--max-recipients must be at least 1$/);
    refuses({ maxConnections: 0 }, /^--max-connections must be at least 1$/);
    refuses({ maxProcessings: 0 }, /^--max-processings must be at least 1$/);
    refuses({ maxConnectionsPerIp: 0 }, /^--max-connections-per-ip must be at least 1, or off$/);
    refuses({ maxConnections: 5, maxProcessings: 6 }, /^--max-connections \(5\) is lower than --max-processings \(6\)/);
    refuses({ proxyTrusted: [] }, /^--proxy-trusted needs at least one address or network$/);
    refuses({ proxyTrusted: ["10.0.0.0/33"] }, /^--proxy-trusted: /);
  });

  it("checks the extensions, the XCLIENT sources, the Unix sockets and the envelope directory", () => {
    checkConfig({
      ...DEFAULT_CONFIG,
      xclientTrusted: ["unix", "10.0.0.0/8", "::1"],
      socketPaths: ["/tmp/a.sock"],
      envelopeDir: "./mail",
    });
    checkConfig({ ...DEFAULT_CONFIG, chunking: false, binaryMime: false, dsn: false, requireTls: false, lmtp: true });
    refuses({ chunking: false }, /^BINARYMIME needs CHUNKING: .*--no-chunking turns both off/);
    refuses({ xclientTrusted: ["10.0.0.0/33"] }, /^--xclient-trusted: /);
    refuses({ xclientTrusted: ["Unix"] }, /^--xclient-trusted: /);
    refuses({ socketPaths: [""] }, /^--socket must not be empty$/);
    refuses({ socketPaths: ["/tmp/a.sock", "/tmp/./a.sock"] }, /^--socket \/tmp\/\.\/a\.sock is given twice$/);
    refuses({ envelopeDir: "" }, /^--envelope-dir must not be empty$/);
    for (const sub of ["new", "cur", "tmp"]) {
      refuses({ maildir: "/tmp/m", envelopeDir: `/tmp/m/${sub}` }, /^--envelope-dir must not be the Maildir's /);
    }
  });

  it("refuses a port given twice, and certificate files that cannot be meant", () => {
    refuses({ ports: "2525", tlsPorts: ["2525"] }, /^port 2525 is given both in --ports and --tls-port$/);
    refuses({ tlsPorts: ["465", "465"] }, /^--tls-port 465 is given twice$/);
    refuses({ tlsPorts: ["465:465"] }, /^--tls-port 465 is given twice$/);
    refuses({ tlsPorts: ["x"] }, /^--tls-port: /);
    refuses({ ports: "x" }, /^--ports: /);
    refuses({ tlsMode: "TLS_OPTIONAL", tlsCert: "" }, /^--tls-cert must not be empty$/);
    refuses({ tlsMode: "TLS_OPTIONAL", tlsCert: "c.pem", tlsKey: "" }, /^--tls-key must not be empty$/);
    refuses({ tlsMode: "TLS_OPTIONAL", tlsKey: "k.pem" }, /^--tls-key needs --tls-cert/);
  });

  it("checks the accounts and offers only mechanisms it can check", () => {
    refuses({ authMode: "AUTH_OPTIONAL" }, /^--auth-mode AUTH_OPTIONAL needs at least one --auth-user/);
    refuses({ authMode: "AUTH_OPTIONAL", authUsers: [{ user: "", password: "x" }] }, /needs a user name/);
    refuses({ authMode: "AUTH_OPTIONAL", authUsers: [{ user: "a", password: "" }] }, /^--auth-user a needs a password/);
    refuses({ authMode: "AUTH_OPTIONAL", authUsers: [...USERS, ...USERS] }, /^--auth-user alice is given twice$/);
    const names = DEFAULT_MECHANISMS.map((m) => m.name).join(", ");
    refuses(
      { authMode: "AUTH_OPTIONAL", authUsers: USERS, authMechanisms: ["NTLM"] },
      new RegExp(`^--auth-mechanisms: unknown mechanism "NTLM", use ${names}$`),
    );
  });

  it("passes on the server's own refusals as CliErrors", () => {
    refuses({ hosts: "" }, /hosts/);
    refuses({ ports: "70000" }, /^--ports: Invalid port/);
    refuses({ maxSize: -1 }, /maxMessageSize/);
  });
});

describe("serverOptions", () => {
  it("maps every setting to the server option of the same meaning", () => {
    const config: DevServerConfig = {
      ...DEFAULT_CONFIG,
      hosts: "127.0.0.1, ::1",
      ports: "2525:2526",
      maxSize: 1000,
      maxRecipients: 3,
      crlfMode: "CRLF_STRICT",
      maxConnections: 20,
      maxProcessings: 10,
      maxConnectionsPerIp: null,
      ioGreetingTimeout: null,
      hookTimeout: 1.5,
      greetingDelay: 0.25,
      proxy: true,
      proxyTrusted: ["10.0.0.0/8"],
      tlsMode: "TLS_OPTIONAL",
      tlsPorts: ["465", "4650:4651"],
      tlsCert: "cert.pem",
      tlsKey: "key.pem",
      authMode: "AUTH_REQUIRED",
      authUsers: USERS,
      authMechanisms: ["PLAIN"],
      allowInsecureAuth: true,
      chunking: false,
      binaryMime: false,
      dsn: false,
      requireTls: false,
      lmtp: true,
      xclientTrusted: ["10.0.0.0/8", "unix"],
      socketPaths: ["/tmp/a.sock"],
      envelopeDir: "/tmp/envelopes",
    };
    const options = serverOptions(config);
    assert.equal(options.hosts, "127.0.0.1, ::1");
    assert.equal(options.ports, "2525:2526");
    assert.equal(options.maxMessageSize, 1000);
    assert.equal(options.maxRecipients, 3);
    assert.equal(options.crlfMode, "CRLF_STRICT");
    assert.equal(options.maxConnections, 20);
    assert.equal(options.maxProcessings, 10);
    assert.equal(options.maxConnectionsPerIp, null);
    assert.equal(options.ioGreetingTimeout, null);
    assert.equal(options.hookTimeout, 1.5);
    assert.equal(options.greetingDelay, 0.25);
    assert.equal(options.proxyExtension, true);
    assert.deepEqual(options.proxyTrustedSources, ["10.0.0.0/8"]);
    assert.equal(options.tlsMode, "TLS_OPTIONAL");
    assert.equal(options.tlsPorts, "465,4650:4651", "one list in the ports syntax");
    assert.equal(options.tlsCertPath, "cert.pem");
    assert.equal(options.tlsKeyPath, "key.pem");
    assert.equal(options.authMode, "AUTH_REQUIRED");
    assert.deepEqual(options.authMechanisms, ["PLAIN"]);
    assert.equal(options.allowInsecureAuth, true);
    assert.deepEqual(
      [options.chunkingExtension, options.binaryMimeExtension, options.dsnExtension, options.requireTlsExtension],
      [false, false, false, false],
    );
    assert.equal(options.lmtp, true);
    assert.deepEqual(options.xclientTrustedSources, ["10.0.0.0/8", "unix"]);
    assert.deepEqual(options.socketPaths, ["/tmp/a.sock"]);
    assert.ok(!JSON.stringify(options).includes("s3cret"), "passwords stay out of the server options");
  });

  it("no --tls-port: no implicit TLS listeners; every TLS port is bound on every host", () => {
    assert.equal(serverOptions(DEFAULT_CONFIG).tlsPorts, undefined);
    const server = new MidiSmtpServer(serverOptions({ ...DEFAULT_CONFIG, tlsPorts: ["465", "4650:4651"] }));
    assert.deepEqual(server.options.tlsPorts, [465, 4650, 4651]);
  });

  it("turns on what test suites send: PIPELINING, SMTPUTF8/8BITMIME, enhanced status codes", () => {
    const options = serverOptions(DEFAULT_CONFIG);
    assert.equal(options.pipeliningExtension, true);
    assert.equal(options.internationalizationExtensions, true);
    assert.equal(options.enhancedStatusCodesExtension, true);
  });

  it("turns on CHUNKING, BINARYMIME, DSN and REQUIRETLS, which the library leaves off; SMTP, no socket, no XCLIENT", () => {
    const options = serverOptions(DEFAULT_CONFIG);
    assert.deepEqual(
      [options.chunkingExtension, options.binaryMimeExtension, options.dsnExtension, options.requireTlsExtension],
      [true, true, true, true],
    );
    const library = new MidiSmtpServer({}).options;
    assert.deepEqual(
      [library.chunkingExtension, library.binaryMimeExtension, library.dsnExtension, library.requireTlsExtension],
      [false, false, false, false],
      "the library's defaults, which the dev server overrides",
    );
    assert.equal(options.lmtp, false);
    assert.deepEqual(options.socketPaths, []);
    assert.deepEqual(options.xclientTrustedSources, []);
  });
});
