/**
 * Dev server (CLI) tests, run under all three runtimes:
 *
 *   deno test -A tests/cli.test.ts
 *   bun test ./tests/cli.test.ts
 *   node --import tsx --test tests/cli.test.ts
 *
 * In-process tests start the dev server with runDevServer() on every
 * transport of the runtime; one group spawns the CLI itself as a child
 * process of the current runtime. Clients are nodemailer and the raw
 * client from helpers.ts. The TLS tests make their certificate with the
 * openssl CLI in a temporary directory, so no key is ever committed.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import * as tls from "node:tls";
import { fileURLToPath, pathToFileURL } from "node:url";
import { format } from "node:util";
import nodemailer from "nodemailer";
import * as cli from "../src/cli.ts";
import {
  CliError,
  DEFAULT_CONFIG,
  type DevServerConfig,
  parseCliArgs,
  USAGE,
  VERSION,
} from "../src/dev_server/args.ts";
import {
  runCli,
  runDevServer,
  START_TIMEOUT_SECONDS,
  STOP_TIMEOUT_SECONDS,
  stopDevServer,
} from "../src/dev_server/run.ts";
import { type DeliverOptions, Maildir } from "../src/dev_server/maildir.ts";
import { MidiSmtpServer } from "../src/server.ts";
import type { Transport } from "../src/transport/types.ts";
import { delay, ehloClient, RawClient, runtime, TRANSPORTS } from "./helpers.ts";
import { scratchFolder, type TestCertificate } from "./scratch.ts";
import { freePort } from "./ports.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(ROOT, "src", "cli.ts");
const MAILDIR = join(ROOT, "src", "dev_server", "maildir.ts");
const TEST_OPTIONS = { timeout: 15_000 };
/** Spawned runtimes start slower than in-process tests. */
const CHILD_TEST_OPTIONS = { timeout: 30_000 };
const BODY_TIMEOUT_MS = 10_000;

const LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (\S+) -> (\S+) (\d+) bytes (.+)$/;

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Collects what the dev server writes. */
class Sink {
  text = "";
  write(text: string): boolean {
    this.text += text;
    return true;
  }
  /** The per-message lines. */
  messageLines(): string[] {
    return this.text.split("\n").filter((l) => LINE.test(l));
  }
}

interface DevServer {
  server: MidiSmtpServer;
  port: number;
  dir: string;
  stdout: Sink;
  stderr: Sink;
}

/**
 * Runs `body` with a dev server on a free port and a fresh Maildir (made by
 * `makeMaildir` if given); always stops it and removes the Maildir.
 */
async function withDevServer(
  transport: Transport,
  overrides: Partial<DevServerConfig>,
  body: (dev: DevServer) => Promise<void>,
  makeMaildir?: (dir: string) => Maildir,
): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), "midi-cli-"));
  const dir = join(base, "mail");
  const stdout = new Sink();
  const stderr = new Sink();
  const config: DevServerConfig = { ...DEFAULT_CONFIG, ports: "0", maildir: dir, ...overrides };
  const server = await runDevServer(config, { stdout, stderr, transport, maildir: makeMaildir?.(dir) });
  try {
    const port = Number(/:(\d+)$/.exec(server.addresses[0])![1]);
    await withTimeout(body({ server, port, dir, stdout, stderr }), BODY_TIMEOUT_MS, "test body");
  } finally {
    await server.stop({ gracefully: false, waitSecondsBeforeClose: 0 });
    rmSync(base, { recursive: true, force: true });
  }
}

/** The files in `dir/sub`. */
function files(dir: string, sub: "new" | "tmp" | "cur"): string[] {
  return readdirSync(join(dir, sub)).sort();
}

/** Splits a stored file into its four trace header lines and the message bytes; `protocol` is the Received `with`. */
function splitStored(path: string, protocol = "ESMTP"): { headers: string[]; data: Uint8Array } {
  const bytes = new Uint8Array(readFileSync(path));
  const text = Buffer.from(bytes).toString("latin1");
  let offset = 0;
  for (let i = 0; i < 4; i++) offset = text.indexOf("\r\n", offset) + 2;
  assert.ok(offset > 8, "four header lines");
  const headers = text.slice(0, offset - 2).split("\r\n");
  assert.match(headers[0], /^Return-Path: </);
  assert.match(headers[1], /^Received: from /);
  assert.match(headers[2], new RegExp(`^\\tby .* with ${protocol} id [0-9A-F]{12}$`));
  assert.match(headers[3], /^\tfor <.*>; \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000$/);
  return { headers, data: bytes.subarray(offset) };
}

/** Waits until `predicate()` holds, polling. */
async function until(predicate: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

const bytes = (text: string, encoding: "latin1" | "utf8" = "latin1") => new Uint8Array(Buffer.from(text, encoding));

/** A Maildir on a slow disk: each delivery first waits `ms`, then stores as usual (or is cancelled meanwhile). */
class SlowMaildir extends Maildir {
  /** The deliveries begun, settled or not. */
  readonly deliveries: Promise<unknown>[] = [];

  /** A slow Maildir at `dir`. */
  constructor(dir: string, readonly ms: number) {
    super(dir);
  }

  override deliver(data: Uint8Array, headers = "", options: DeliverOptions = {}): Promise<string> {
    const delivery = delay(this.ms).then(() => super.deliver(data, headers, options));
    this.deliveries.push(delivery.catch(() => {}));
    return delivery;
  }
}

/** Sends one message on a fresh connection up to its final dot; the 250 (or not) is the caller's to read. */
async function sendUpToDot(port: number, subject: string, body = "body\r\n"): Promise<RawClient> {
  const client = await ehloClient(port);
  await client.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
  for (const code of [250, 250, 354]) await client.expect(code);
  await client.send(`Subject: ${subject}\r\n\r\n${body}.\r\n`);
  return client;
}

/** Whether a TCP connection to `port` is refused (or closed before any greeting). */
async function refused(port: number): Promise<boolean> {
  let client: RawClient;
  try {
    client = await RawClient.connect(port);
  } catch {
    return true;
  }
  try {
    await until(() => client.closed || client.pending !== "", "a greeting or a close", 3000);
    return !client.pending.startsWith("220");
  } finally {
    client.close();
  }
}

// ---------------------------------------------------------------------------

// The types of the public API: a missing one fails `deno check` here.
type _PublicTypes = [cli.CliCommand, cli.DevServerConfig, cli.DevServerUser, cli.DevServerIo, cli.LogFormat];

describe("src/cli.ts", () => {
  it("exports the dev server's public API, the very objects of src/dev_server/", () => {
    const expected = {
      CliError,
      DEFAULT_CONFIG,
      parseCliArgs,
      runCli,
      runDevServer,
      START_TIMEOUT_SECONDS,
      STOP_TIMEOUT_SECONDS,
      stopDevServer,
      USAGE,
      VERSION,
    };
    assert.deepEqual(Object.keys(cli).sort(), Object.keys(expected).sort(), "nothing more, nothing less");
    for (const [name, value] of Object.entries(expected)) {
      assert.equal((cli as Record<string, unknown>)[name], value, name);
    }
  });
});

describe("parseCliArgs", () => {
  it("no flags: the documented defaults", () => {
    assert.deepEqual(parseCliArgs([]), {
      action: "run",
      config: {
        hosts: "127.0.0.1",
        ports: "2525",
        maildir: "./mail",
        maxSize: 26214400,
        maxRecipients: 100,
        crlfMode: "CRLF_ENSURE",
        quiet: false,
        logFormat: "text",
        workers: 0,
        maxConnections: null,
        maxProcessings: 1000,
        maxConnectionsPerIp: 50,
        ioGreetingTimeout: 300,
        ioCmdTimeout: 300,
        ioDataTimeout: 600,
        hookTimeout: 120,
        greetingDelay: 0,
        proxy: false,
        proxyTrusted: ["127.0.0.0/8", "::1/128"],
        tlsMode: "TLS_FORBIDDEN",
        tlsPorts: [],
        tlsCert: undefined,
        tlsKey: undefined,
        authMode: "AUTH_FORBIDDEN",
        authUsers: [],
        authMechanisms: ["PLAIN", "LOGIN", "CRAM-MD5"],
        allowInsecureAuth: false,
        chunking: true,
        binaryMime: true,
        dsn: true,
        requireTls: true,
        lmtp: false,
        xclientTrusted: [],
        socketPaths: [],
        envelopeDir: undefined,
      },
    });
  });

  it("every flag, in both --flag value and --flag=value forms", () => {
    assert.deepEqual(
      parseCliArgs([
        "--hosts",
        "127.0.0.1, ::1",
        "--ports=0, 2526",
        "--maildir",
        "/tmp/x",
        "--max-size=1000",
        "--max-recipients",
        "3",
        "--crlf-mode",
        "crlf_strict",
        "-q",
        "--log-format",
        "JSON",
        "--tls-mode",
        "tls_optional",
        "--tls-port",
        "465:4650",
        "--tls-port=0",
        "--tls-cert",
        "/etc/ssl/cert.pem",
        "--tls-key=/etc/ssl/key.pem",
        "--auth-mode",
        "auth_required",
        "--auth-user",
        "alice:s3cr:et",
        "--auth-user=bob::",
        "--auth-mechanisms",
        "cram-md5, xoauth2 PLAIN",
        "--allow-insecure-auth",
        "--max-connections",
        "2000",
        "--max-processings=20",
        "--max-connections-per-ip",
        "off",
        "--io-greeting-timeout",
        "1.5",
        "--io-cmd-timeout=off",
        "--io-data-timeout",
        "60",
        "--hook-timeout",
        "OFF",
        "--greeting-delay",
        "0.25",
        "--proxy",
        "--proxy-trusted",
        "10.0.0.0/8",
        "--proxy-trusted=192.0.2.1, 2001:db8::/32",
        "--no-chunking",
        "--no-dsn",
        "--no-requiretls",
        "--lmtp",
        "--xclient-trusted",
        "10.0.0.0/8 UNIX",
        "--xclient-trusted=::1",
        "--socket",
        "/tmp/a.sock",
        "--socket=/tmp/b.sock",
        "--envelope-dir",
        "/tmp/envelopes",
      ]),
      {
        action: "run",
        config: {
          hosts: "127.0.0.1, ::1",
          ports: "0, 2526",
          maildir: "/tmp/x",
          maxSize: 1000,
          maxRecipients: 3,
          crlfMode: "CRLF_STRICT",
          quiet: true,
          logFormat: "json",
          workers: 0,
          maxConnections: 2000,
          maxProcessings: 20,
          maxConnectionsPerIp: null,
          ioGreetingTimeout: 1.5,
          ioCmdTimeout: null,
          ioDataTimeout: 60,
          hookTimeout: null,
          greetingDelay: 0.25,
          proxy: true,
          proxyTrusted: ["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"],
          tlsMode: "TLS_OPTIONAL",
          tlsPorts: ["465:4650", "0"],
          tlsCert: "/etc/ssl/cert.pem",
          tlsKey: "/etc/ssl/key.pem",
          authMode: "AUTH_REQUIRED",
          // Split at the first colon: the password keeps its colons.
          authUsers: [{ user: "alice", password: "s3cr:et" }, { user: "bob", password: ":" }],
          authMechanisms: ["CRAM-MD5", "XOAUTH2", "PLAIN"],
          allowInsecureAuth: true,
          chunking: false,
          // BINARYMIME bodies come in BDAT chunks: --no-chunking turns it off too.
          binaryMime: false,
          dsn: false,
          requireTls: false,
          lmtp: true,
          xclientTrusted: ["10.0.0.0/8", "unix", "::1"],
          socketPaths: ["/tmp/a.sock", "/tmp/b.sock"],
          envelopeDir: "/tmp/envelopes",
        },
      },
    );
    const binary = parseCliArgs(["--no-binarymime"]);
    assert.ok(binary.action === "run");
    assert.deepEqual([binary.config.chunking, binary.config.binaryMime], [true, false]);
    // A certificate file that holds the key too; implicit TLS alone turns TLS on.
    const implicit = parseCliArgs(["--tls-port", "465", "--tls-cert", "both.pem"]);
    assert.ok(implicit.action === "run");
    assert.deepEqual(
      [implicit.config.tlsMode, implicit.config.tlsPorts, implicit.config.tlsCert, implicit.config.tlsKey],
      ["TLS_FORBIDDEN", ["465"], "both.pem", undefined],
    );
    assert.equal(parseCliArgs(["--tls-mode", "TLS_REQUIRED"]).action, "run");
    assert.equal(parseCliArgs(["--auth-mode", "AUTH_OPTIONAL", "--auth-user", "a:b"]).action, "run");
    assert.equal(parseCliArgs(["--max-size", "0"]).action, "run");
    assert.equal(parseCliArgs(["--ports", "2525:2526"]).action, "run");
  });

  it("--help and --version (long and short)", () => {
    assert.deepEqual(parseCliArgs(["--help"]), { action: "help" });
    assert.deepEqual(parseCliArgs(["-h", "--ports", "0"]), { action: "help" });
    assert.deepEqual(parseCliArgs(["--version"]), { action: "version" });
    assert.deepEqual(parseCliArgs(["-V"]), { action: "version" });
    for (
      const flag of [
        "--hosts",
        "--ports",
        "--maildir",
        "--max-size",
        "--max-recipients",
        "--crlf-mode",
        "--quiet",
        "--log-format",
        "--workers",
        "--tls-mode",
        "--tls-port",
        "--tls-cert",
        "--tls-key",
        "--auth-mode",
        "--auth-user",
        "--auth-mechanisms",
        "--allow-insecure-auth",
        "--max-connections",
        "--max-processings",
        "--max-connections-per-ip",
        "--io-greeting-timeout",
        "--io-cmd-timeout",
        "--io-data-timeout",
        "--hook-timeout",
        "--greeting-delay",
        "--proxy",
        "--proxy-trusted",
        "--lmtp",
        "--socket",
        "--no-chunking",
        "--no-binarymime",
        "--no-dsn",
        "--no-requiretls",
        "--xclient-trusted",
        "--envelope-dir",
      ]
    ) {
      assert.ok(USAGE.includes(flag), `usage mentions ${flag}`);
    }
  });

  it("the defaults of the limit, timeout and PROXY flags are the server's own", () => {
    const server = new MidiSmtpServer({});
    const o = server.options;
    assert.deepEqual(
      {
        maxConnections: DEFAULT_CONFIG.maxConnections,
        maxProcessings: DEFAULT_CONFIG.maxProcessings,
        maxConnectionsPerIp: DEFAULT_CONFIG.maxConnectionsPerIp,
        ioGreetingTimeout: DEFAULT_CONFIG.ioGreetingTimeout,
        ioCmdTimeout: DEFAULT_CONFIG.ioCmdTimeout,
        ioDataTimeout: DEFAULT_CONFIG.ioDataTimeout,
        hookTimeout: DEFAULT_CONFIG.hookTimeout,
        greetingDelay: DEFAULT_CONFIG.greetingDelay,
        proxyExtension: DEFAULT_CONFIG.proxy,
        proxyTrustedSources: [...DEFAULT_CONFIG.proxyTrusted],
      },
      {
        maxConnections: o.maxConnections,
        maxProcessings: o.maxProcessings,
        maxConnectionsPerIp: o.maxConnectionsPerIp,
        ioGreetingTimeout: o.ioGreetingTimeout,
        ioCmdTimeout: o.ioCmdTimeout,
        ioDataTimeout: o.ioDataTimeout,
        hookTimeout: o.hookTimeout,
        greetingDelay: o.greetingDelay,
        proxyExtension: o.proxyExtension,
        proxyTrustedSources: [...o.proxyTrustedSources.entries],
      },
    );
  });

  it("--max-connections below the default --max-processings lowers it; below an explicit one is an error", () => {
    const lowered = parseCliArgs(["--max-connections", "10"]);
    assert.ok(lowered.action === "run");
    assert.deepEqual([lowered.config.maxConnections, lowered.config.maxProcessings], [10, 10]);
    const above = parseCliArgs(["--max-connections", "5000"]);
    assert.ok(above.action === "run");
    assert.deepEqual([above.config.maxConnections, above.config.maxProcessings], [5000, 1000]);
    const both = parseCliArgs(["--max-connections", "10", "--max-processings", "10"]);
    assert.ok(both.action === "run");
    assert.throws(
      () => parseCliArgs(["--max-connections", "10", "--max-processings", "11"]),
      /--max-connections \(10\) is lower than --max-processings \(11\)/,
    );
  });

  const invalid: Array<[string[], RegExp]> = [
    [["--bogus"], /Unknown option '--bogus'/],
    [["-x"], /Unknown option '-x'/],
    [["extra"], /Unexpected argument 'extra'/],
    [["--ports"], /argument missing/],
    [["--quiet=yes"], /does not take an argument/],
    [["--ports", "70000"], /Invalid port "70000"/],
    [["--ports", "abc"], /Invalid port/],
    [["--ports", "2525,2526"], /More port entries \(2\) than hosts \(1\)/],
    [["--hosts", ""], /No hosts defined/],
    [["--hosts", "a,,b"], /empty identifier/],
    [["--maildir="], /--maildir must not be empty/],
    [["--max-size", "-1"], /ambiguous|--max-size needs a whole number/],
    [["--max-size=-1"], /--max-size needs a whole number, got "-1"/],
    [["--max-size", "1e3"], /--max-size needs a whole number/],
    [["--max-size", "10MB"], /--max-size needs a whole number/],
    [["--max-size", ""], /--max-size needs a whole number/],
    [["--max-recipients", "0"], /--max-recipients must be at least 1/],
    [["--max-recipients", "1.5"], /--max-recipients needs a whole number/],
    [["--crlf-mode", "LF"], /--crlf-mode must be one of CRLF_ENSURE, CRLF_LEAVE, CRLF_STRICT/],
    [["--tls-mode", "STARTTLS"], /--tls-mode must be one of TLS_FORBIDDEN, TLS_OPTIONAL, TLS_REQUIRED, got "STARTTLS"/],
    [["--tls-mode"], /argument missing/],
    [["--tls-port", "99999"], /--tls-port: Invalid port "99999"/],
    [["--tls-port", ""], /--tls-port: No ports defined/],
    [["--tls-port", "465", "--tls-port", "465"], /--tls-port 465 is given twice/],
    [["--tls-port", "2525"], /port 2525 is given both in --ports and --tls-port/],
    [["--tls-key", "key.pem"], /--tls-key needs --tls-cert/],
    [["--tls-mode", "TLS_OPTIONAL", "--tls-key", "key.pem"], /--tls-key needs --tls-cert/],
    [["--tls-cert", "cert.pem"], /--tls-cert is unused while TLS is off: add --tls-mode .* or --tls-port/],
    [["--tls-mode", "TLS_OPTIONAL", "--tls-cert="], /--tls-cert must not be empty/],
    [["--tls-mode", "TLS_OPTIONAL", "--tls-cert", "c.pem", "--tls-key="], /--tls-key must not be empty/],
    [["--auth-mode", "LOGIN"], /--auth-mode must be one of AUTH_FORBIDDEN, AUTH_OPTIONAL, AUTH_REQUIRED/],
    [["--auth-mode", "AUTH_REQUIRED"], /--auth-mode AUTH_REQUIRED needs at least one --auth-user USER:PASSWORD/],
    [["--auth-mode", "AUTH_OPTIONAL", "--auth-user", ":pw"], /--auth-user needs a user name before the colon/],
    [["--auth-mode", "AUTH_OPTIONAL", "--auth-user", "alice:"], /--auth-user alice needs a password after the colon/],
    [["--auth-mode", "AUTH_OPTIONAL", "--auth-user", "a:1", "--auth-user", "a:2"], /--auth-user a is given twice/],
    [["--auth-user", "a:b"], /--auth-user is unused while AUTH is off: add --auth-mode/],
    [["--auth-mechanisms", "PLAIN"], /--auth-mechanisms is unused while AUTH is off/],
    [["--allow-insecure-auth"], /--allow-insecure-auth is unused while AUTH is off/],
    [["--allow-insecure-auth=yes"], /does not take an argument/],
    [
      ["--auth-mode", "AUTH_OPTIONAL", "--auth-user", "a:b", "--auth-mechanisms", " , "],
      /needs at least one mechanism/,
    ],
    [["--auth-mode", "AUTH_OPTIONAL", "--auth-user", "a:b", "--auth-mechanisms", "PLAIN,plain"], /lists PLAIN twice/],
    [["--max-connections", "0"], /--max-connections must be at least 1/],
    [["--max-connections", "off"], /--max-connections needs a whole number, got "off"/],
    [["--max-connections", "1e3"], /--max-connections needs a whole number/],
    [["--max-processings", "0"], /--max-processings must be at least 1/],
    [["--max-processings", "-5"], /ambiguous|--max-processings needs a whole number/],
    [["--max-processings=-5"], /--max-processings needs a whole number, got "-5"/],
    [["--max-connections-per-ip", "0"], /--max-connections-per-ip must be at least 1, or off/],
    [["--max-connections-per-ip", "none"], /--max-connections-per-ip needs a whole number or off, got "none"/],
    [["--max-connections-per-ip"], /argument missing/],
    [["--io-greeting-timeout", "0"], /--io-greeting-timeout must be more than 0 seconds \(off for no limit\)/],
    [["--io-greeting-timeout", "5m"], /--io-greeting-timeout needs a number of seconds or off, got "5m"/],
    [["--io-cmd-timeout", "1e3"], /--io-cmd-timeout needs a number of seconds or off/],
    [["--io-cmd-timeout", ".5"], /--io-cmd-timeout needs a number of seconds or off, got ".5"/],
    [["--io-data-timeout", "99999999"], /--io-data-timeout must be at most 2147483 seconds/],
    [["--io-data-timeout", ""], /--io-data-timeout needs a number of seconds or off/],
    [["--hook-timeout", "0"], /--hook-timeout must be more than 0 seconds/],
    [["--hook-timeout", "never"], /--hook-timeout needs a number of seconds or off, got "never"/],
    [["--greeting-delay", "off"], /--greeting-delay needs a number of seconds, got "off"/],
    [["--greeting-delay", "-1"], /ambiguous|--greeting-delay needs a number of seconds/],
    [["--greeting-delay=-1"], /--greeting-delay needs a number of seconds, got "-1"/],
    [["--proxy=yes"], /does not take an argument/],
    [["--proxy-trusted", "10.0.0.0/8"], /--proxy-trusted is unused without --proxy/],
    [["--proxy", "--proxy-trusted", "10.0.0.0/33"], /--proxy-trusted: .*10\.0\.0\.0\/33/],
    [["--proxy", "--proxy-trusted", "proxy.example"], /--proxy-trusted: .*proxy\.example/],
    [["--proxy", "--proxy-trusted", " , "], /--proxy-trusted needs an address or network/],
    [
      ["--auth-mode", "AUTH_OPTIONAL", "--auth-user", "a:b", "--auth-mechanisms", "PLAIN,DIGEST-MD5"],
      /--auth-mechanisms: unknown mechanism "DIGEST-MD5", use PLAIN, LOGIN, CRAM-MD5, XOAUTH2/,
    ],
    [["--lmtp=yes"], /does not take an argument/],
    [["--log-format", "xml"], /^--log-format must be one of text, json, got "xml"$/],
    [["--log-format="], /^--log-format must be one of text, json, got ""$/],
    [["--log-format"], /argument missing/],
    [["--no-chunking=1"], /does not take an argument/],
    [["--no-dsn", "x"], /Unexpected argument 'x'/],
    [["--chunking"], /Unknown option '--chunking'/],
    [["--xclient-trusted"], /argument missing/],
    [["--xclient-trusted", "10.0.0.0/33"], /^--xclient-trusted: .*10\.0\.0\.0\/33/],
    [["--xclient-trusted", "proxy.example"], /^--xclient-trusted: .*proxy\.example/],
    [["--xclient-trusted", " , "], /^--xclient-trusted needs an address or network/],
    [["--xclient-trusted", "unix"], /^--xclient-trusted unix is unused without --socket/],
    [["--socket"], /argument missing/],
    [["--socket="], /^--socket must not be empty$/],
    [["--socket", "/tmp/s", "--socket", "/tmp//s"], /^--socket \/tmp\/\/s is given twice$/],
    [["--envelope-dir="], /^--envelope-dir must not be empty$/],
    [
      ["--maildir", "/tmp/m", "--envelope-dir", "/tmp/m/new/"],
      /^--envelope-dir must not be the Maildir's new\/, cur\/ or tmp\//,
    ],
  ];
  for (const [argv, message] of invalid) {
    it(`rejects ${JSON.stringify(argv)}`, () => {
      assert.throws(() => parseCliArgs(argv), (err: unknown) => {
        assert.ok(err instanceof CliError, `a CliError, got ${String(err)}`);
        assert.match(err.message, message);
        return true;
      });
    });
  }

  it("--auth-user without a colon: the error does not echo the value (it may be a password)", () => {
    assert.throws(() => parseCliArgs(["--auth-mode", "AUTH_OPTIONAL", "--auth-user", "hunter2secret"]), (err) => {
      assert.ok(err instanceof CliError);
      assert.match(err.message, /--auth-user needs USER:PASSWORD/);
      assert.ok(!err.message.includes("hunter2secret"), err.message);
      return true;
    });
  });
});

for (const transport of TRANSPORTS) {
  describe(`dev server (${transport.name} transport)`, () => {
    it(
      "prints where it listens and stores a nodemailer message in new/, acknowledged after storing",
      TEST_OPTIONS,
      async () => {
        await withDevServer(transport, {}, async ({ port, dir, stdout }) => {
          assert.match(
            stdout.text,
            new RegExp(
              `^midi-smtp-server listening on 127\\.0\\.0\\.1:${port} \\(${transport.name} transport\\), storing mail in .*mail\\n`,
            ),
          );
          const mailer = nodemailer.createTransport({
            host: "127.0.0.1",
            port,
            secure: false,
            ignoreTLS: true,
            name: "nodemailer.test",
          });
          try {
            const info = await mailer.sendMail({
              from: "sender@example.com",
              to: ["one@example.org", "two@example.org"],
              subject: "dev server test",
              text: "Hello\n.\nlone dot above\n",
            });
            assert.deepEqual(info.accepted, ["one@example.org", "two@example.org"]);
            assert.match(info.response, /^250 /);
          } finally {
            mailer.close();
          }
          // The 250 came after deliver() resolved: the file is already in new/.
          const stored = files(dir, "new");
          assert.equal(stored.length, 1);
          assert.deepEqual(files(dir, "tmp"), []);
          assert.deepEqual(files(dir, "cur"), []);
          const { headers, data } = splitStored(join(dir, "new", stored[0]));
          assert.equal(headers[0], "Return-Path: <sender@example.com>");
          assert.equal(headers[1], "Received: from nodemailer.test (127.0.0.1 [127.0.0.1])");
          assert.match(headers[3], /^\tfor <one@example\.org>; /);
          const message = Buffer.from(data).toString("latin1");
          assert.match(message, /^Subject: dev server test\r\n/m);
          assert.ok(message.includes("\r\nHello\r\n.\r\nlone dot above\r\n"), "lone dot kept, unstuffed");

          const lines = stdout.messageLines();
          assert.equal(lines.length, 1);
          const [, , from, to, size, path] = LINE.exec(lines[0])!;
          assert.equal(from, "<sender@example.com>");
          assert.equal(to, "<one@example.org>,<two@example.org>");
          assert.equal(Number(size), data.length);
          assert.equal(path, join(dir, "new", stored[0]));
        });
      },
    );

    it(
      "raw client: pipelined messages with 8-bit, NUL, dot-stuffed and SMTPUTF8 content are stored byte-exact",
      TEST_OPTIONS,
      async () => {
        await withDevServer(transport, {}, async ({ port, dir, stdout }) => {
          const client = await RawClient.connect(port);
          try {
            await client.expect(220);
            const ehlo = await client.command("EHLO raw.client.example");
            for (const ext of ["PIPELINING", "SIZE 26214400", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"]) {
              assert.ok(ehlo.lines.includes(ext), `EHLO advertises ${ext}: ${ehlo.raw}`);
            }
            const high = Buffer.from(Array.from({ length: 128 }, (_, i) => 128 + i)).toString("latin1");
            const wire = "Subject: raw\r\n\r\n..\r\n...two dots\r\n" + high + "\r\n\x00nul\x01\r\n";
            const expected = bytes("Subject: raw\r\n\r\n.\r\n..two dots\r\n" + high + "\r\n\x00nul\x01\r\n");
            await client.send(
              "MAIL FROM:<a@example.com> BODY=8BITMIME\r\nRCPT TO:<b@example.com>\r\nDATA\r\n" + wire + ".\r\n" +
                "MAIL FROM:<>\r\nRCPT TO:<c@example.com>\r\nDATA\r\nSubject: second\r\n\r\nx\r\n.\r\n",
            );
            for (const code of [250, 250, 354, 250, 250, 250, 354, 250]) await client.expect(code);
            // SMTPUTF8: addresses and HELO stay UTF-8 in the trace headers.
            await client.send(
              bytes(
                "MAIL FROM:<j\u00fcrgen@b\u00fccher.example> SMTPUTF8\r\nRCPT TO:<\u00e9@x.example>\r\nDATA\r\n",
                "utf8",
              ),
            );
            for (const code of [250, 250, 354]) await client.expect(code);
            await client.send(bytes("Subject: \u00fc\r\n\r\n\u00fc\r\n.\r\n", "utf8"));
            await client.expect(250);
            await client.command("QUIT");

            const stored = files(dir, "new").map((name) => splitStored(join(dir, "new", name)));
            assert.equal(stored.length, 3);
            const byFrom = (from: string) => stored.find((s) => s.headers[0] === `Return-Path: ${from}`)!;
            const first = byFrom("<a@example.com>");
            assert.deepEqual(first.data, expected);
            assert.equal(first.headers[1], "Received: from raw.client.example (127.0.0.1 [127.0.0.1])");
            assert.deepEqual(byFrom("<>").data, bytes("Subject: second\r\n\r\nx\r\n"));
            // Read back as latin1, so the UTF-8 shows as its bytes.
            const utf8 = byFrom(Buffer.from("<j\u00fcrgen@b\u00fccher.example>", "utf8").toString("latin1"));
            assert.deepEqual(utf8.data, bytes("Subject: \u00fc\r\n\r\n\u00fc\r\n", "utf8"));
            assert.equal(stdout.messageLines().length, 3);
            assert.ok(stdout.text.includes("<j\u00fcrgen@b\u00fccher.example> -> <\u00e9@x.example>"), stdout.text);
          } finally {
            client.close();
          }
        });
      },
    );

    it(
      "a write error answers 451 4.3.0, leaves tmp/ empty, and the next message after repair is stored",
      TEST_OPTIONS,
      async () => {
        await withDevServer(transport, {}, async ({ port, dir, stdout, stderr }) => {
          // Tests run as root, so permissions would not stop the write: put a file where new/ should be.
          rmSync(join(dir, "new"), { recursive: true });
          writeFileSync(join(dir, "new"), "in the way");
          const client = await ehloClient(port);
          try {
            await client.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
            for (const code of [250, 250, 354]) await client.expect(code);
            await client.send("Subject: lost\r\n\r\nbody\r\n.\r\n");
            const reply = await client.expect(451);
            assert.match(reply.raw, /^451 4\.3\.0 /);
            assert.deepEqual(files(dir, "tmp"), []);
            assert.match(stderr.text, /\[ERROR\] \[\w{12}\] message [0-9A-F]{12} not stored: /);
            assert.equal(stdout.messageLines().length, 0);
            // The session goes on; once new/ is back, the retry is stored.
            rmSync(join(dir, "new"));
            mkdirSync(join(dir, "new"));
            await client.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
            for (const code of [250, 250, 354]) await client.expect(code);
            await client.send("Subject: retry\r\n\r\nbody\r\n.\r\n");
            await client.expect(250);
            const stored = files(dir, "new");
            assert.equal(stored.length, 1);
            assert.deepEqual(splitStored(join(dir, "new", stored[0])).data, bytes("Subject: retry\r\n\r\nbody\r\n"));
            assert.deepEqual(files(dir, "tmp"), []);
          } finally {
            client.close();
          }
        });
      },
    );

    it(
      "--quiet prints no message lines; --max-size, --max-recipients and --crlf-mode reach the server",
      TEST_OPTIONS,
      async () => {
        await withDevServer(
          transport,
          { quiet: true, maxSize: 2000, maxRecipients: 2, crlfMode: "CRLF_STRICT" },
          async ({ port, dir, stdout }) => {
            const client = await RawClient.connect(port);
            try {
              await client.expect(220);
              const ehlo = await client.command("EHLO c.example");
              assert.ok(ehlo.lines.includes("SIZE 2000"), ehlo.raw);
              await client.send(
                "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@x.example>\r\nRCPT TO:<c@x.example>\r\nRCPT TO:<d@x.example>\r\n",
              );
              for (const code of [250, 250, 250]) await client.expect(code);
              assert.match((await client.expect(452)).raw, /^452 4\.5\.3 /);
              await client.send("DATA\r\n");
              await client.expect(354);
              await client.send("Subject: bare lf\nx\r\n.\r\n");
              await client.expect(500);
              await client.send("MAIL FROM:<a@example.com> SIZE=2001\r\n");
              await client.expect(552);
              await client.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@x.example>\r\nDATA\r\n");
              for (const code of [250, 250, 354]) await client.expect(code);
              await client.send("Subject: ok\r\n\r\nquiet\r\n.\r\n");
              await client.expect(250);
            } finally {
              client.close();
            }
            assert.equal(files(dir, "new").length, 1);
            assert.equal(stdout.messageLines().length, 0);
            assert.match(stdout.text, /^midi-smtp-server listening on /);
          },
        );
      },
    );

    it("serves many clients at once", TEST_OPTIONS, async () => {
      await withDevServer(transport, { quiet: true }, async ({ port, dir }) => {
        const send = async (i: number) => {
          const client = await ehloClient(port);
          try {
            await client.send(
              `MAIL FROM:<s${i}@example.com>\r\nRCPT TO:<r@example.com>\r\nDATA\r\nSubject: ${i}\r\n\r\n${i}\r\n.\r\n`,
            );
            for (const code of [250, 250, 354, 250]) await client.expect(code);
          } finally {
            client.close();
          }
        };
        await Promise.all(Array.from({ length: 30 }, (_, i) => send(i)));
        assert.equal(files(dir, "new").length, 30);
        assert.deepEqual(files(dir, "tmp"), []);
      });
    });
  });
}

// ---------------------------------------------------------------------------
// TLS and AUTH

const PASSWORD = "s3cr:et";
const WRONG_PASSWORD = "n0t-the-pa55word";
const FINGERPRINT = /^(?:[0-9A-F]{2}:){31}[0-9A-F]{2}$/;

/** Holds the throw-away certificate the TLS tests pin. */
const scratch = scratchFolder("cli-tls");
let certificateCache: (TestCertificate & { pem: string; fingerprint: string }) | undefined;

/** A throw-away self-signed certificate for 127.0.0.1 (EC P-256: quick to make), made with openssl once per run. */
function testCertificate(): TestCertificate & { pem: string; fingerprint: string } {
  if (certificateCache) return certificateCache;
  const made = scratch.selfSigned("cert", { cn: "localhost", san: "DNS:localhost,IP:127.0.0.1" });
  certificateCache = { ...made, pem: made.cert, fingerprint: new X509Certificate(made.cert).fingerprint256 };
  return certificateCache;
}

/** The configuration the command line `argv` makes, for withDevServer (which sets ports and the Maildir). */
function fromFlags(argv: string[]): Partial<DevServerConfig> {
  const command = parseCliArgs(["--ports", "0", ...argv]);
  assert.ok(command.action === "run");
  const { maildir: _maildir, ...config } = command.config;
  return config;
}

/** The port of `server.addresses[index]`. */
function portAt(server: MidiSmtpServer, index: number): number {
  return Number(/:(\d+)$/.exec(server.addresses[index])![1]);
}

/** A nodemailer transport that pins `ca` and logs the SMTP dialogue (credentials masked by nodemailer) into `log`. */
function tlsMailer(
  port: number,
  options: { secure?: boolean; ca?: string; auth?: Record<string, string>; log?: string[] },
) {
  const { secure = false, ca, auth, log } = options;
  const push = (_entry: unknown, message: string, ...args: unknown[]) => log?.push(format(message, ...args));
  return nodemailer.createTransport({
    host: "127.0.0.1",
    port,
    secure,
    requireTLS: !secure,
    name: "nodemailer.test",
    tls: ca ? { ca: [ca] } : { rejectUnauthorized: false },
    auth,
    connectionTimeout: 5000,
    greetingTimeout: 5000,
    socketTimeout: 5000,
    logger: { trace: push, debug: push, info: push, warn: push, error: push, fatal: push },
    debug: log !== undefined,
  });
}

/** Sends one message with a fresh transport and closes it. */
async function sendOne(mailer: ReturnType<typeof nodemailer.createTransport>, subject: string): Promise<void> {
  try {
    const info = await mailer.sendMail({
      from: "sender@example.com",
      to: "rcpt@example.org",
      subject,
      text: `${subject}\n`,
    });
    assert.deepEqual(info.accepted, ["rcpt@example.org"]);
  } finally {
    mailer.close();
  }
}

/** The stored messages as `"subject: protocol"` (the protocol in their Received header), sorted. */
function storedProtocols(dir: string): string[] {
  return files(dir, "new").map((name) => {
    const { headers, data } = splitStored(join(dir, "new", name), "ESMTPS?A?");
    const protocol = / with (\S+) id /.exec(headers[2])![1];
    const subject = /^Subject: (.*)\r$/m.exec(Buffer.from(data).toString("latin1"))![1];
    return `${subject}: ${protocol}`;
  }).sort();
}

/** PEM of a DER certificate. */
function pemOf(der: Uint8Array): string {
  const base64 = Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n").replace(/\n$/, "");
  return `-----BEGIN CERTIFICATE-----\n${base64}\n-----END CERTIFICATE-----\n`;
}

/**
 * Connects to `port`, runs EHLO and STARTTLS (or, if `implicit`, TLS at once)
 * without verifying the server, and resolves with the certificate it showed.
 */
function peerCertificate(port: number, implicit = false): Promise<{ fingerprint: string; pem: string }> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const secured = (socket: tls.TLSSocket) => {
        const peer = socket.getPeerCertificate();
        resolve({ fingerprint: peer.fingerprint256, pem: pemOf(peer.raw) });
        // end(), not destroy(): a client that vanishes right after its side of the handshake leaves the
        // server's side pending until tlsHandshakeTimeout (10 s), and stop() waits for it.
        socket.end();
      };
      if (implicit) {
        const socket: tls.TLSSocket = tls.connect(
          { host: "127.0.0.1", port, rejectUnauthorized: false },
          () => secured(socket),
        );
        socket.on("error", reject);
        return;
      }
      const plain = net.connect(port, "127.0.0.1");
      plain.on("error", reject);
      let text = "";
      let step = 0;
      plain.on("data", (chunk: Buffer) => {
        text += chunk.toString("latin1");
        if (!/^\d{3} .*\r\n/m.test(text)) return; // a whole reply yet?
        const reply = text;
        text = "";
        if (step === 0) plain.write("EHLO tls.client.example\r\n");
        else if (step === 1) {
          if (!/^250[ -]STARTTLS\r$/m.test(reply)) return reject(new Error(`no STARTTLS in ${reply}`));
          plain.write("STARTTLS\r\n");
        } else {
          if (!reply.startsWith("220 ")) return reject(new Error(`STARTTLS refused: ${reply}`));
          plain.removeAllListeners("data");
          const socket: tls.TLSSocket = tls.connect(
            { socket: plain, rejectUnauthorized: false },
            () => secured(socket),
          );
          socket.on("error", reject);
        }
        step++;
      });
    }),
    5000,
    implicit ? "TLS handshake" : "STARTTLS",
  );
}

for (const transport of TRANSPORTS) {
  describe(`dev server with TLS and AUTH (${transport.name} transport)`, () => {
    it(
      "TLS_REQUIRED + AUTH_REQUIRED, own certificate: PLAIN, LOGIN, CRAM-MD5 and XOAUTH2 over STARTTLS, stored as ESMTPSA",
      TEST_OPTIONS,
      async () => {
        const cert = testCertificate();
        const config = fromFlags([
          "--tls-mode",
          "TLS_REQUIRED",
          "--tls-cert",
          cert.certPath,
          "--tls-key",
          cert.keyPath,
          "--auth-mode",
          "AUTH_REQUIRED",
          "--auth-user",
          `alice:${PASSWORD}`,
          "--auth-user",
          "bob:other",
          "--auth-mechanisms",
          "PLAIN,LOGIN,CRAM-MD5,XOAUTH2",
        ]);
        await withDevServer(transport, config, async ({ server, port, dir, stdout, stderr }) => {
          assert.equal(server.tlsFingerprint, cert.fingerprint);
          const lines = stdout.text.split("\n");
          assert.match(lines[0], /^midi-smtp-server listening on /);
          assert.equal(lines[1], "TLS: STARTTLS required");
          assert.equal(lines[2], `TLS: certificate ${cert.certPath}, SHA-256 fingerprint ${cert.fingerprint}`);
          assert.equal(
            lines[3],
            "AUTH: required, over TLS only; mechanisms PLAIN LOGIN CRAM-MD5 XOAUTH2; users alice, bob",
          );
          assert.equal(stderr.text, "", "no warning");

          // Before STARTTLS: no AUTH offered, no mail.
          const client = await RawClient.connect(port);
          try {
            await client.expect(220);
            const ehlo = await client.command("EHLO raw.client.example");
            assert.ok(ehlo.lines.includes("STARTTLS"), ehlo.raw);
            assert.ok(!ehlo.lines.some((l) => l.startsWith("AUTH")), ehlo.raw);
            assert.equal((await client.command("MAIL FROM:<a@example.com>")).code, 530);
            assert.equal((await client.command("AUTH PLAIN")).code, 530);
          } finally {
            client.close();
          }

          const log: string[] = [];
          for (const method of ["PLAIN", "LOGIN", "CRAM-MD5"]) {
            await sendOne(
              tlsMailer(port, { ca: cert.pem, auth: { user: "alice", pass: PASSWORD, method }, log }),
              `via ${method}`,
            );
            assert.ok(log.some((l) => l.includes(`AUTH ${method}`)), `nodemailer used ${method}`);
          }
          await sendOne(
            tlsMailer(port, { ca: cert.pem, auth: { type: "OAuth2", user: "alice", accessToken: PASSWORD }, log }),
            "via XOAUTH2",
          );
          assert.ok(log.some((l) => l.includes("AUTH XOAUTH2")), "nodemailer used XOAUTH2");

          // A wrong password, a wrong user and a right password of another user all get 535.
          for (
            const [user, pass, method] of [
              ["alice", WRONG_PASSWORD, "PLAIN"],
              ["alice", WRONG_PASSWORD, "CRAM-MD5"],
              ["mallory", PASSWORD, "LOGIN"],
              ["bob", PASSWORD, "PLAIN"],
            ]
          ) {
            await assert.rejects(
              sendOne(tlsMailer(port, { ca: cert.pem, auth: { user, pass, method } }), "refused"),
              (err: { code?: string; responseCode?: number }) => {
                assert.equal(err.code, "EAUTH", String(err));
                assert.equal(err.responseCode, 535, String(err));
                return true;
              },
              `${user} with ${method}`,
            );
          }
          await assert.rejects(
            sendOne(
              tlsMailer(port, { ca: cert.pem, auth: { type: "OAuth2", user: "alice", accessToken: WRONG_PASSWORD } }),
              "refused",
            ),
            (err: { code?: string }) => err.code === "EAUTH",
          );

          assert.deepEqual(storedProtocols(dir), [
            "via CRAM-MD5: ESMTPSA",
            "via LOGIN: ESMTPSA",
            "via PLAIN: ESMTPSA",
            "via XOAUTH2: ESMTPSA",
          ]);
          assert.match(stderr.text, /\[WARN\] \[\w{12}\] AUTH PLAIN failed for "alice" from 127\.0\.0\.1\n/);
          assert.match(stderr.text, /\[WARN\] \[\w{12}\] AUTH LOGIN failed for "mallory" from 127\.0\.0\.1\n/);
          assert.match(stderr.text, /\[WARN\] \[\w{12}\] AUTH CRAM-MD5 failed for "alice" from 127\.0\.0\.1\n/);
          for (const text of [stdout.text, stderr.text]) {
            assert.ok(!text.includes(PASSWORD) && !text.includes(WRONG_PASSWORD), `no password printed: ${text}`);
          }
        });
      },
    );

    it(
      "implicit TLS with --tls-port 0: nodemailer secure: true, with AUTH (ESMTPSA) and without (ESMTPS)",
      TEST_OPTIONS,
      async () => {
        const cert = testCertificate();
        const config = fromFlags([
          "--tls-port",
          "0",
          "--tls-cert",
          cert.certPath,
          "--tls-key",
          cert.keyPath,
          "--auth-mode",
          "AUTH_OPTIONAL",
          "--auth-user",
          `alice:${PASSWORD}`,
        ]);
        await withDevServer(transport, config, async ({ server, port, dir, stdout, stderr }) => {
          assert.equal(server.addresses.length, 2);
          const tlsPort = portAt(server, 1);
          assert.notEqual(tlsPort, port);
          assert.ok(stdout.text.includes(`\nTLS: no STARTTLS; implicit TLS on 127.0.0.1:${tlsPort}\n`), stdout.text);
          assert.ok(
            stdout.text.includes(`\nTLS: certificate ${cert.certPath}, SHA-256 fingerprint ${cert.fingerprint}\n`),
          );
          // AUTH is offered on the TLS port only: the dev server says so.
          assert.match(stderr.text, /warning: AUTH will be offered only on the implicit TLS ports/);

          const authed = tlsMailer(tlsPort, {
            secure: true,
            ca: cert.pem,
            auth: { user: "alice", pass: PASSWORD, method: "PLAIN" },
          });
          await sendOne(authed, "implicit with auth");
          await sendOne(tlsMailer(tlsPort, { secure: true, ca: cert.pem }), "implicit without auth");
          // The plain port offers neither STARTTLS nor AUTH.
          const client = await RawClient.connect(port);
          try {
            await client.expect(220);
            const ehlo = await client.command("EHLO raw.client.example");
            assert.ok(!ehlo.lines.some((l) => l === "STARTTLS" || l.startsWith("AUTH")), ehlo.raw);
          } finally {
            client.close();
          }
          const plain = nodemailer.createTransport({ host: "127.0.0.1", port, ignoreTLS: true, name: "plain.test" });
          await sendOne(plain, "plain");
          assert.deepEqual(storedProtocols(dir), [
            "implicit with auth: ESMTPSA",
            "implicit without auth: ESMTPS",
            "plain: ESMTP",
          ]);
        });
      },
    );

    it(
      "--allow-insecure-auth: AUTH without TLS (ESMTPA); acting as another user is refused",
      TEST_OPTIONS,
      async () => {
        const config = fromFlags([
          "--auth-mode",
          "AUTH_REQUIRED",
          "--auth-user",
          `alice:${PASSWORD}`,
          "--allow-insecure-auth",
        ]);
        await withDevServer(transport, config, async ({ port, dir, stdout, stderr }) => {
          assert.match(
            stdout.text,
            /^AUTH: required, with or without TLS; mechanisms PLAIN LOGIN CRAM-MD5; users alice$/m,
          );
          assert.doesNotMatch(stdout.text, /^TLS:/m);
          assert.equal(stderr.text, "", "no warning");
          const plain = (text: string) => Buffer.from(text, "utf8").toString("base64");
          const client = await RawClient.connect(port);
          try {
            await client.expect(220);
            const ehlo = await client.command("EHLO raw.client.example");
            assert.ok(ehlo.lines.includes("AUTH PLAIN LOGIN CRAM-MD5"), ehlo.raw);
            assert.equal((await client.command("MAIL FROM:<a@example.com>")).code, 530);
            assert.equal((await client.command(`AUTH PLAIN ${plain(`bob\0alice\0${PASSWORD}`)}`)).code, 535);
            assert.equal((await client.command(`AUTH PLAIN ${plain(`alice\0alice\0${PASSWORD}`)}`)).code, 235);
            await client.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
            for (const code of [250, 250, 354]) await client.expect(code);
            await client.send("Subject: insecure\r\n\r\nbody\r\n.\r\n");
            await client.expect(250);
          } finally {
            client.close();
          }
          assert.deepEqual(storedProtocols(dir), ["insecure: ESMTPA"]);
          assert.match(stderr.text, /AUTH PLAIN failed for "alice"/);
          assert.ok(!stderr.text.includes(PASSWORD));
        });
      },
    );

    it("AUTH with TLS off: a warning that AUTH is not offered, and what to add", TEST_OPTIONS, async () => {
      const config = fromFlags(["--auth-mode", "AUTH_REQUIRED", "--auth-user", `alice:${PASSWORD}`]);
      await withDevServer(transport, config, async ({ port, stderr }) => {
        assert.match(
          stderr.text,
          /^midi-smtp-server: warning: AUTH will not be offered: it is offered only over TLS, and TLS is off .*so with AUTH_REQUIRED no client can send mail; add --tls-mode TLS_OPTIONAL .* or --allow-insecure-auth/m,
        );
        const client = await ehloClient(port);
        try {
          assert.equal((await client.command("AUTH PLAIN")).code, 538);
          assert.equal((await client.command("MAIL FROM:<a@example.com>")).code, 530);
        } finally {
          client.close();
        }
      });
    });
  });
}

for (const transport of TRANSPORTS) {
  describe(`dev server limits, timeouts and PROXY (${transport.name} transport)`, () => {
    it("the limit and timeout flags reach the server's options", TEST_OPTIONS, async () => {
      const config = fromFlags([
        "--max-connections",
        "40",
        "--max-processings",
        "30",
        "--max-connections-per-ip",
        "off",
        "--io-greeting-timeout",
        "11",
        "--io-cmd-timeout",
        "12.5",
        "--io-data-timeout",
        "off",
        "--hook-timeout",
        "14",
        "--greeting-delay",
        "0.01",
      ]);
      await withDevServer(transport, config, ({ server, stdout }) => {
        const o = server.options;
        assert.deepEqual(
          [o.maxConnections, o.maxProcessings, o.maxConnectionsPerIp, o.ioGreetingTimeout, o.ioCmdTimeout],
          [40, 30, null, 11, 12.5],
        );
        assert.deepEqual([o.ioDataTimeout, o.hookTimeout, o.greetingDelay, o.proxyExtension], [null, 14, 0.01, false]);
        assert.doesNotMatch(stdout.text, /^PROXY:/m);
        return Promise.resolve();
      });
    });

    it("--max-connections-per-ip 1: a second connection from the same address gets 421", TEST_OPTIONS, async () => {
      await withDevServer(transport, fromFlags(["--max-connections-per-ip", "1"]), async ({ port }) => {
        const first = await ehloClient(port);
        try {
          const second = await RawClient.connect(port);
          try {
            assert.match((await second.expect(421)).raw, /^421 4\.7\.0 /);
          } finally {
            second.close();
          }
        } finally {
          first.close();
        }
      });
    });

    it("--io-cmd-timeout 0.5: a silent client gets 421 4.4.2 and is closed", TEST_OPTIONS, async () => {
      await withDevServer(transport, fromFlags(["--io-cmd-timeout", "0.5"]), async ({ port }) => {
        const client = await ehloClient(port);
        try {
          const started = Date.now();
          assert.match((await client.expect(421)).raw, /^421 4\.4\.2 /);
          assert.ok(Date.now() - started < 4000, "well before the default 300 s");
        } finally {
          client.close();
        }
      });
    });

    it("--greeting-delay 0.5: the 220 comes only after the delay", TEST_OPTIONS, async () => {
      await withDevServer(transport, fromFlags(["--greeting-delay", "0.5"]), async ({ port }) => {
        const started = Date.now();
        const client = await RawClient.connect(port);
        try {
          await client.expect(220);
          assert.ok(Date.now() - started >= 450, `220 after ${Date.now() - started} ms`);
        } finally {
          client.close();
        }
      });
    });

    it(
      "--proxy: a PROXY header from loopback is honoured (Received names the real client); none closes unserved",
      TEST_OPTIONS,
      async () => {
        await withDevServer(transport, fromFlags(["--proxy"]), async ({ port, dir, stdout }) => {
          assert.match(stdout.text, /^PROXY: required from 127\.0\.0\.0\/8, ::1\/128$/m);
          const client = await RawClient.connect(port);
          try {
            await client.send("PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\n");
            await client.expect(220);
            await client.command("EHLO behind.proxy.example");
            await client.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
            for (const code of [250, 250, 354]) await client.expect(code);
            await client.send("Subject: proxied\r\n\r\nbody\r\n.\r\n");
            await client.expect(250);
          } finally {
            client.close();
          }
          const [name] = files(dir, "new");
          assert.match(
            splitStored(join(dir, "new", name)).headers[1],
            /^Received: from behind\.proxy\.example \(.*\[192\.0\.2\.7\]\)$/,
          );
          // A client that speaks SMTP at once is not a proxy: closed, never greeted.
          const bare = await RawClient.connect(port);
          try {
            await bare.send("EHLO direct.example\r\n");
            await until(() => bare.closed, "the close", 8000);
            assert.doesNotMatch(bare.pending, /^220/);
          } finally {
            bare.close();
          }
        });
      },
    );

    it("--proxy --proxy-trusted 10.0.0.0/8: a PROXY header from loopback is not trusted", TEST_OPTIONS, async () => {
      const config = fromFlags(["--proxy", "--proxy-trusted", "10.0.0.0/8", "--proxy-trusted", "192.0.2.0/24"]);
      await withDevServer(transport, config, async ({ port, dir, stdout }) => {
        assert.match(stdout.text, /^PROXY: required from 10\.0\.0\.0\/8, 192\.0\.2\.0\/24$/m);
        const client = await RawClient.connect(port);
        try {
          await client.send("PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\n");
          await until(() => client.closed, "the close", 8000);
          assert.doesNotMatch(client.pending, /^220/);
        } finally {
          client.close();
        }
        assert.deepEqual(files(dir, "new"), []);
      });
    });

    it(
      "--hook-timeout 0.5 and a delivery slower than that: the client gets 421, and nothing is kept in new/ or tmp/",
      TEST_OPTIONS,
      async () => {
        let slow: SlowMaildir | undefined;
        await withDevServer(
          transport,
          fromFlags(["--hook-timeout", "0.5"]),
          async ({ port, dir, stderr }) => {
            const client = await sendUpToDot(port, "too slow");
            try {
              assert.match((await client.expect(421)).raw, /^421 4\.3\.0 /);
            } finally {
              client.close();
            }
            // The delivery went on after the 421: it must notice that nobody waits for it any more.
            await Promise.all(slow!.deliveries);
            assert.deepEqual(files(dir, "new"), [], "a message the client was told to retry is not kept");
            assert.deepEqual(files(dir, "tmp"), []);
            assert.match(stderr.text, /\[ERROR\] \[\w{12}\] message [0-9A-F]{12} not stored: /);
          },
          (dir) => slow = new SlowMaildir(dir, 1500),
        );
      },
    );

    it(
      "stopDevServer waits for a delivery in progress: the client gets its 250, the file is complete in new/, " +
        "and new connections are refused meanwhile",
      TEST_OPTIONS,
      async () => {
        let slow: SlowMaildir | undefined;
        await withDevServer(
          transport,
          {},
          async ({ server, port, dir }) => {
            const body = "x".repeat(100_000) + "\r\nthe end\r\n";
            const client = await sendUpToDot(port, "slow", body);
            try {
              await until(() => slow!.deliveries.length === 1, "the delivery to begin");
              // Longer than stop()'s default wait of 2 s: the old stop cut the session off before the 250.
              const stopping = stopDevServer(server, 10);
              await until(() => server.isShutdown(), "the stop to begin");
              assert.ok(await refused(port), "a new connection is refused while stopping");
              assert.match((await client.expect(250)).raw, /^250 /);
              assert.equal(await stopping, true, "every delivery finished");
            } finally {
              client.close();
            }
            const [name] = files(dir, "new");
            assert.deepEqual(splitStored(join(dir, "new", name)).data, bytes(`Subject: slow\r\n\r\n${body}`));
            assert.deepEqual(files(dir, "tmp"), []);
          },
          (dir) => slow = new SlowMaildir(dir, 3000),
        );
      },
    );
  });
}

describe("runDevServer start-up", () => {
  it(
    "a Maildir that cannot be created (under /proc) fails the start at once, naming it",
    { ...TEST_OPTIONS, skip: !existsSync("/proc/self") },
    async () => {
      const stdout = new Sink();
      const started = Date.now();
      await assert.rejects(
        runDevServer({ ...DEFAULT_CONFIG, ports: "0", maildir: "/proc/midi-mail" }, {
          transport: TRANSPORTS[0],
          stdout,
          stderr: new Sink(),
        }),
        /^Error: Maildir \/proc\/midi-mail cannot be created or written: /,
      );
      assert.ok(Date.now() - started < 5000);
      assert.equal(stdout.text, "", "never listened");
    },
  );

  it("a start-up step that never finishes: rejects after io.startTimeout, naming the step", TEST_OPTIONS, async () => {
    const base = mkdtempSync(join(tmpdir(), "midi-cli-"));
    try {
      const config = { ...DEFAULT_CONFIG, ports: "0", maildir: join(base, "mail") };
      const neverListens: Transport = { name: "stuck", listen: () => new Promise(() => {}) };
      const stdout = new Sink();
      await assert.rejects(
        runDevServer(config, { transport: neverListens, startTimeout: 0.3, stdout, stderr: new Sink() }),
        /^DeadlineError: start-up did not finish within 0\.3 s: still starting to listen on 127\.0\.0\.1 /,
      );
      class StuckMaildir extends Maildir {
        override init(): Promise<void> {
          return new Promise(() => {});
        }
      }
      await assert.rejects(
        runDevServer(config, {
          transport: TRANSPORTS[0],
          maildir: new StuckMaildir(config.maildir),
          startTimeout: 0.3,
          stdout,
          stderr: new Sink(),
        }),
        new RegExp(`start-up did not finish within 0\\.3 s: still creating the Maildir ${config.maildir}$`),
      );
      assert.equal(stdout.text, "", "never listened");
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});

describe("runDevServer with a bad TLS or AUTH configuration", () => {
  it(
    "rejects a configuration parseCliArgs would refuse, and a certificate file it cannot read",
    TEST_OPTIONS,
    async () => {
      const base = mkdtempSync(join(tmpdir(), "midi-cli-"));
      try {
        const maildir = join(base, "mail");
        await assert.rejects(
          runDevServer({ ...DEFAULT_CONFIG, ports: "0", maildir, authMode: "AUTH_OPTIONAL" }, {
            transport: TRANSPORTS[0],
          }),
          (err) => err instanceof CliError && /needs at least one --auth-user/.test(err.message),
        );
        await assert.rejects(
          runDevServer(
            {
              ...DEFAULT_CONFIG,
              ports: "0",
              maildir,
              authMode: "AUTH_OPTIONAL",
              authUsers: [{ user: "", password: "x" }],
            },
            { transport: TRANSPORTS[0] },
          ),
          /--auth-user needs a user name/,
        );
        const missing = join(base, "missing.pem");
        const stdout = new Sink();
        await assert.rejects(
          runDevServer(
            { ...DEFAULT_CONFIG, ports: "0", maildir, tlsMode: "TLS_REQUIRED", tlsCert: missing },
            { transport: TRANSPORTS[0], stdout, stderr: new Sink() },
          ),
          (err) => err instanceof Error && err.message.includes(missing),
        );
        assert.equal(stdout.text, "", "never listened");
      } finally {
        rmSync(base, { recursive: true, force: true });
      }
    },
  );
});

// ---------------------------------------------------------------------------
// The CLI as a child process of the runtime running this file.

/** The command that runs `script` with this runtime. */
function runtimeCommand(script: string, args: string[]): [string, string[]] {
  switch (runtime) {
    case "deno":
      return [process.execPath, ["run", "-A", script, ...args]];
    case "bun":
      return [process.execPath, [script, ...args]];
    default:
      return [process.execPath, ["--import", "tsx", script, ...args]];
  }
}

/** A spawned CLI with its output collected. */
class Cli {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  readonly exited: Promise<{ code: number | null; signal: string | null }>;

  constructor(args: string[], script = CLI) {
    const [command, argv] = runtimeCommand(script, args);
    this.child = spawn(command, argv, {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1" },
    });
    this.child.stdout!.setEncoding("utf8").on("data", (d: string) => this.stdout += d);
    this.child.stderr!.setEncoding("utf8").on("data", (d: string) => this.stderr += d);
    this.exited = new Promise((resolve) => this.child.on("close", (code, signal) => resolve({ code, signal })));
  }

  /** Waits for the exit, failing after `ms`. */
  exit(ms = 15_000): Promise<{ code: number | null; signal: string | null }> {
    return withTimeout(
      this.exited,
      ms,
      `CLI exit; stdout ${JSON.stringify(this.stdout)}, stderr ${JSON.stringify(this.stderr)}`,
    );
  }

  /**
   * Sends `signal`. Not child.kill(): Deno's node:child_process then reports
   * the signal as the cause of exit even when the child exits 0 by itself.
   */
  signal(signal: "SIGTERM" | "SIGINT"): void {
    process.kill(this.child.pid!, signal);
  }

  /** Makes sure the process is gone. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGKILL");
      await withTimeout(this.exited, 5000, "SIGKILL").catch(() => {});
    }
  }
}

/**
 * Writes `dir/run_cli.mjs`, which runs the CLI in-process with `argv` and the
 * `io` expression (JavaScript, after `prelude`): how a child process gets
 * what only runDevServer's io can give, e.g. a slow Maildir.
 */
function cliScript(dir: string, argv: string[], io: string, prelude = ""): string {
  const path = join(dir, "run_cli.mjs");
  writeFileSync(
    path,
    [
      `import process from "node:process";`,
      `import { runCli } from ${JSON.stringify(pathToFileURL(CLI).href)};`,
      `import { Maildir } from ${JSON.stringify(pathToFileURL(MAILDIR).href)};`,
      prelude,
      `await runCli(${JSON.stringify(argv)}, ${io});`,
    ].join("\n"),
  );
  return path;
}

/** A FIFO nobody writes to: opening it for reading blocks (in the kernel) until a writer comes. */
function fifo(dir: string): string {
  const path = join(dir, "cert.fifo");
  execFileSync("mkfifo", [path]);
  return path;
}

/** How the child ended, in words, for assertion messages. */
function ending(cli: Cli, exit: { code: number | null; signal: string | null }): string {
  return `exit ${JSON.stringify(exit)}; stdout ${JSON.stringify(cli.stdout)}, stderr ${JSON.stringify(cli.stderr)}`;
}

/**
 * Talks to the Unix socket at `path`: sends each line (CRLF added; `""`
 * sends nothing) and reads one reply of the given code; resolves with the
 * raw replies.
 */
function unixDialogue(path: string, steps: Array<[string, number]>): Promise<string[]> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = net.connect({ path });
      const replies: string[] = [];
      let buffer = "";
      let step = -1;
      const next = () => {
        step++;
        if (step === steps.length) {
          socket.destroy();
          return resolve(replies);
        }
        const [line] = steps[step];
        if (line !== "") socket.write(`${line}\r\n`);
        read();
      };
      const read = () => {
        const reply = /^(?:\d{3}-.*\r\n)*\d{3} .*\r\n/.exec(buffer);
        if (!reply) return;
        buffer = buffer.slice(reply[0].length);
        replies.push(reply[0]);
        if (!reply[0].startsWith(String(steps[step][1]))) {
          socket.destroy();
          return reject(new Error(`${JSON.stringify(steps[step][0])}: expected ${steps[step][1]}, got ${reply[0]}`));
        }
        next();
      };
      socket.on("data", (chunk: Buffer) => {
        buffer += chunk.toString("latin1");
        read();
      });
      socket.on("error", reject);
      socket.once("connect", next);
    }),
    10_000,
    `the dialogue on ${path}`,
  );
}

describe(`CLI as a ${runtime} child process`, () => {
  it("--ports 0: listens, stores a message, prints its line, and exits 0 on SIGTERM", CHILD_TEST_OPTIONS, async () => {
    const dir = mkdtempSync(join(tmpdir(), "midi-cli-child-"));
    const cli = new Cli(["--ports", "0", "--maildir", dir]);
    try {
      await until(() => /listening on/.test(cli.stdout) || cli.child.exitCode !== null, "the listening line", 20_000);
      const m = /^midi-smtp-server listening on 127\.0\.0\.1:(\d+) \((\w+) transport\), storing mail in (.*)$/m.exec(
        cli.stdout,
      );
      assert.ok(m, `listening line; stdout ${JSON.stringify(cli.stdout)}, stderr ${JSON.stringify(cli.stderr)}`);
      assert.equal(m[2], runtime);
      assert.equal(m[3], dir);
      const client = await ehloClient(Number(m[1]));
      try {
        await client.send(
          "MAIL FROM:<child@example.com>\r\nRCPT TO:<r@example.com>\r\nDATA\r\nSubject: child\r\n\r\nhi\r\n.\r\n",
        );
        for (const code of [250, 250, 354, 250]) await client.expect(code);
        await client.command("QUIT");
      } finally {
        client.close();
      }
      // The report (here the listening line alone), the hint, then one line per message.
      await until(() => LINE.test(cli.stdout.split("\n")[2] ?? ""), "the message line");
      assert.equal(cli.stdout.split("\n")[1], "Press Ctrl-C to stop.");
      const [name] = files(dir, "new");
      assert.ok(name, "a file in new/");
      assert.match(
        cli.stdout.split("\n")[2],
        new RegExp(` <child@example\\.com> -> <r@example\\.com> 22 bytes .*${name}$`),
      );
      assert.deepEqual(splitStored(join(dir, "new", name)).data, bytes("Subject: child\r\n\r\nhi\r\n"));
      cli.signal("SIGTERM");
      assert.deepEqual(await cli.exit(), { code: 0, signal: null }, `stderr ${JSON.stringify(cli.stderr)}`);
      assert.match(cli.stderr, /SIGTERM received, stopping/);
      assert.match(
        cli.stdout.split("\n").at(-2)!,
        /^midi-smtp-server stopped after \d+s: 1 message stored, 1 connection, 0 refused, 0 error replies$/,
      );
    } finally {
      await cli.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it(
    "--tls-mode TLS_OPTIONAL: prints the self-signed certificate's fingerprint, the one STARTTLS shows (ESMTPS)",
    CHILD_TEST_OPTIONS,
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "midi-cli-child-"));
      const cli = new Cli(["--tls-mode", "TLS_OPTIONAL", "--ports", "0", "--maildir", dir]);
      try {
        await until(() => /^TLS: self-signed/m.test(cli.stdout) || cli.child.exitCode !== null, "the TLS line", 20_000);
        const port = /listening on 127\.0\.0\.1:(\d+) /.exec(cli.stdout)?.[1];
        const m = /^TLS: self-signed certificate, SHA-256 fingerprint (\S+)$/m.exec(cli.stdout);
        assert.ok(port && m, `stdout ${JSON.stringify(cli.stdout)}, stderr ${JSON.stringify(cli.stderr)}`);
        assert.match(m[1], FINGERPRINT);
        assert.match(cli.stdout, /^TLS: STARTTLS offered$/m);
        const seen = await peerCertificate(Number(port));
        assert.equal(seen.fingerprint, m[1]);
        // Pinned: the certificate the client saw is trusted as it is (its SAN holds 127.0.0.1).
        await sendOne(tlsMailer(Number(port), { ca: seen.pem }), "pinned");
        assert.deepEqual(storedProtocols(dir), ["pinned: ESMTPS"]);
        cli.signal("SIGTERM");
        assert.deepEqual(await cli.exit(), { code: 0, signal: null }, `stderr ${JSON.stringify(cli.stderr)}`);
      } finally {
        await cli.kill();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it("SIGINT stops it too, with exit 0", CHILD_TEST_OPTIONS, async () => {
    const dir = mkdtempSync(join(tmpdir(), "midi-cli-child-"));
    const cli = new Cli(["--ports", "0", "--maildir", join(dir, "deep", "mail"), "--quiet"]);
    try {
      await until(() => /listening on/.test(cli.stdout) || cli.child.exitCode !== null, "the listening line", 20_000);
      assert.deepEqual(files(join(dir, "deep", "mail"), "new"), [], "Maildir created");
      cli.signal("SIGINT");
      assert.deepEqual(await cli.exit(), { code: 0, signal: null }, `stderr ${JSON.stringify(cli.stderr)}`);
    } finally {
      await cli.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a bad flag prints an error and exits 2; --help and --version exit 0", CHILD_TEST_OPTIONS, async () => {
    const bad = new Cli(["--max-size", "lots"]);
    try {
      assert.equal((await bad.exit()).code, 2);
      assert.match(bad.stderr, /--max-size needs a whole number, got "lots"/);
      assert.match(bad.stderr, /--help/);
      assert.equal(bad.stdout, "");
    } finally {
      await bad.kill();
    }
    const help = new Cli(["--help"]);
    try {
      assert.equal((await help.exit()).code, 0);
      assert.equal(help.stdout, USAGE);
    } finally {
      await help.kill();
    }
    const version = new Cli(["--version"]);
    try {
      assert.equal((await version.exit()).code, 0);
      assert.equal(version.stdout, `midi-smtp-server ${VERSION}\n`);
    } finally {
      await version.kill();
    }
  });

  it("a port in use: exit 1 with a clear message", CHILD_TEST_OPTIONS, async () => {
    const dir = mkdtempSync(join(tmpdir(), "midi-cli-child-"));
    const first = new Cli(["--ports", "0", "--maildir", dir, "--quiet"]);
    let second: Cli | undefined;
    try {
      await until(
        () => /listening on/.test(first.stdout) || first.child.exitCode !== null,
        "the listening line",
        20_000,
      );
      const port = /127\.0\.0\.1:(\d+)/.exec(first.stdout)![1];
      second = new Cli(["--ports", port, "--maildir", dir]);
      assert.equal((await second.exit()).code, 1);
      assert.match(second.stderr, /cannot start: /);
    } finally {
      await first.kill();
      await second?.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it(
    "--maildir /proc/mail (cannot be created): exit 1 at once, naming the Maildir",
    { ...CHILD_TEST_OPTIONS, skip: !existsSync("/proc/self") },
    async () => {
      const started = Date.now();
      const cli = new Cli(["--ports", "0", "--maildir", "/proc/mail"]);
      try {
        const exit = await cli.exit(20_000);
        assert.equal(exit.code, 1, ending(cli, exit));
        assert.match(
          cli.stderr,
          /^midi-smtp-server: cannot start: Maildir \/proc\/mail cannot be created or written: /m,
        );
        assert.doesNotMatch(cli.stdout, /listening on/);
        assert.ok(Date.now() - started < 15_000, "well within the start-up deadline");
      } finally {
        await cli.kill();
      }
    },
  );

  it(
    "SIGTERM while starting (a --tls-cert FIFO nobody writes to): ends at once, as SIGTERM would",
    { ...CHILD_TEST_OPTIONS, skip: process.platform === "win32" },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "midi-cli-child-"));
      const cert = fifo(dir);
      const cli = new Cli([
        "--ports",
        "0",
        "--maildir",
        join(dir, "mail"),
        "--tls-mode",
        "TLS_OPTIONAL",
        "--tls-cert",
        cert,
      ]);
      try {
        // The Maildir is made before the certificate is read: then start-up hangs on the FIFO.
        await until(() => existsSync(join(dir, "mail", "cur")) || cli.child.exitCode !== null, "the Maildir", 20_000);
        await delay(300);
        cli.signal("SIGTERM");
        const exit = await cli.exit(5000);
        assert.ok(exit.signal === "SIGTERM" || exit.code === 143, ending(cli, exit));
        assert.match(cli.stderr, /SIGTERM received while starting, exiting/);
        assert.doesNotMatch(cli.stdout, /listening on/);
      } finally {
        await cli.kill();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it(
    "a start-up past its deadline ends the process, saying why, even with a step stuck in the kernel",
    { ...CHILD_TEST_OPTIONS, skip: process.platform === "win32" },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "midi-cli-child-"));
      const argv = [
        "--ports",
        "0",
        "--maildir",
        join(dir, "mail"),
        "--tls-mode",
        "TLS_OPTIONAL",
        "--tls-cert",
        fifo(dir),
      ];
      const cli = new Cli([], cliScript(dir, argv, "{ startTimeout: 1 }"));
      try {
        const exit = await cli.exit(20_000);
        // Node's process.exit() waits for the stuck read; the CLI's watchdog then ends it with SIGKILL.
        assert.ok(exit.code === 1 || (runtime === "node" && exit.signal === "SIGKILL"), ending(cli, exit));
        assert.match(
          cli.stderr,
          /cannot start: start-up did not finish within 1 s: still starting to listen on 127\.0\.0\.1 \(host names, TLS certificate, ports\)/,
        );
      } finally {
        await cli.kill();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it(
    "SIGTERM during a slow delivery: it is stored and acknowledged (250) before exit 0; new connections are refused",
    CHILD_TEST_OPTIONS,
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "midi-cli-child-"));
      const mail = join(dir, "mail");
      const slowMaildir = `class SlowMaildir extends Maildir {
        async deliver(data, headers, options) {
          process.stderr.write("test: delivery started\\n");
          await new Promise((resolve) => setTimeout(resolve, 3500));
          return await super.deliver(data, headers, options);
        }
      }`;
      const script = cliScript(
        dir,
        ["--ports", "0", "--maildir", mail],
        `{ maildir: new SlowMaildir(${JSON.stringify(mail)}) }`,
        slowMaildir,
      );
      const cli = new Cli([], script);
      let client: RawClient | undefined;
      try {
        await until(() => /listening on/.test(cli.stdout) || cli.child.exitCode !== null, "the listening line", 20_000);
        const port = Number(/listening on 127\.0\.0\.1:(\d+) /.exec(cli.stdout)?.[1]);
        assert.ok(port > 0, `stdout ${JSON.stringify(cli.stdout)}, stderr ${JSON.stringify(cli.stderr)}`);
        const body = "y".repeat(200_000) + "\r\nlast line\r\n";
        client = await sendUpToDot(port, "slow", body);
        await until(() => cli.stderr.includes("test: delivery started"), "the delivery to begin");
        cli.signal("SIGTERM");
        await until(() => /SIGTERM received, stopping/.test(cli.stderr), "the stop to begin");
        assert.match(cli.stderr, /waiting up to 30 s for 1 delivery in progress/);
        assert.ok(await refused(port), "a new connection is refused while stopping");
        // The old stop cut sessions off after 2 s with 421 and exited while the file was being written.
        assert.match((await client.expect(250)).raw, /^250 /);
        const exit = await cli.exit();
        assert.deepEqual(exit, { code: 0, signal: null }, ending(cli, exit));
        const [name] = files(mail, "new");
        assert.ok(name, "a file in new/");
        assert.deepEqual(splitStored(join(mail, "new", name)).data, bytes(`Subject: slow\r\n\r\n${body}`));
        assert.deepEqual(files(mail, "tmp"), []);
      } finally {
        client?.close();
        await cli.kill();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it(
    "--lmtp --socket --envelope-dir: says so at start, answers LHLO (with CHUNKING, BINARYMIME, DSN) over TCP and " +
      "the Unix socket, and writes each message's envelope (BCC and DSN included) next to it",
    { ...CHILD_TEST_OPTIONS, skip: process.platform === "win32" },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "midi-cli-child-"));
      const mail = join(dir, "mail");
      const envelopes = join(dir, "envelopes");
      const socket = join(dir, "lmtp.sock");
      const cli = new Cli(
        ["--ports", "0", "--maildir", mail, "--lmtp", "--socket", socket, "--envelope-dir", envelopes],
      );
      try {
        await until(() => /^Envelopes: /m.test(cli.stdout) || cli.child.exitCode !== null, "the report", 20_000);
        const port = Number(/listening on 127\.0\.0\.1:(\d+) /.exec(cli.stdout)?.[1]);
        assert.ok(port > 0, `stdout ${JSON.stringify(cli.stdout)}, stderr ${JSON.stringify(cli.stderr)}`);
        assert.match(cli.stdout, /^LMTP: clients send LHLO/m);
        assert.ok(cli.stdout.includes(`\nUnix socket: ${socket}\n`), cli.stdout);
        assert.ok(cli.stdout.includes(`\nEnvelopes: one JSON file per message in ${envelopes}\n`), cli.stdout);
        const tcp = await RawClient.connect(port);
        try {
          await tcp.expect(220);
          const lhlo = await tcp.command("LHLO tcp.client.example");
          assert.equal(lhlo.code, 250, lhlo.raw);
          for (const keyword of ["CHUNKING", "BINARYMIME", "DSN"]) assert.ok(lhlo.lines.includes(keyword), lhlo.raw);
          assert.ok(!lhlo.lines.includes("REQUIRETLS"), "offered over TLS only");
        } finally {
          tcp.close();
        }
        const replies = await unixDialogue(socket, [
          ["", 220],
          ["LHLO unix.client.example", 250],
          ["MAIL FROM:<a@x> RET=HDRS ENVID=QQ314159+2B1", 250],
          ["RCPT TO:<b@y> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+40y", 250],
          ["RCPT TO:<bcc@y>", 250],
          ["DATA", 354],
          ["To: <b@y>\r\nSubject: child lmtp\r\n\r\nhi\r\n.", 250],
          ["", 250], // LMTP: one reply per recipient
          ["QUIT", 221],
        ]);
        assert.match(replies[1], /^250-.*\r\n(?:250-.*\r\n)*250[ -]/);
        await until(() => LINE.test(cli.stdout.split("\n").at(-2) ?? ""), "the message line");
        const [name] = files(mail, "new");
        assert.ok(name, "a file in new/");
        assert.deepEqual(readdirSync(envelopes), [`${name}.json`]);
        const envelope = JSON.parse(readFileSync(join(envelopes, `${name}.json`), "utf8"));
        assert.equal(envelope.messageFile, name);
        assert.equal(envelope.protocol, "LMTP");
        assert.deepEqual([envelope.client.ip, envelope.client.host, envelope.client.helo], [
          null,
          "localhost",
          "unix.client.example",
        ]);
        assert.deepEqual(envelope.dsn, { ret: "HDRS", envid: "QQ314159+1" });
        assert.deepEqual(envelope.recipients, [
          {
            address: "b@y",
            notify: ["SUCCESS", "FAILURE"],
            orcpt: { type: "rfc822", address: "b@y" },
            params: { NOTIFY: "SUCCESS,FAILURE", ORCPT: "rfc822;b+40y" },
          },
          { address: "bcc@y", notify: null, orcpt: null, params: {} },
        ]);
        const { headers, data } = splitStored(join(mail, "new", name), "LMTP");
        assert.equal(headers[1], "Received: from unix.client.example (localhost)");
        assert.equal(envelope.size, data.length);
        cli.signal("SIGTERM");
        assert.deepEqual(await cli.exit(), { code: 0, signal: null }, `stderr ${JSON.stringify(cli.stderr)}`);
        assert.ok(!existsSync(socket), "the socket file is removed on stop");
      } finally {
        await cli.kill();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it(
    "the hint follows the whole start-up report; on SIGTERM a final line counts messages stored, sessions, " +
      "clients refused and error replies",
    CHILD_TEST_OPTIONS,
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "midi-cli-child-"));
      const [mail, envelopes] = [join(dir, "mail"), join(dir, "envelopes")];
      const cli = new Cli(
        ["--ports", "0", "--maildir", mail, "--envelope-dir", envelopes, "--quiet", "--max-connections-per-ip", "1"],
      );
      try {
        await until(() => /^Press Ctrl-C/m.test(cli.stdout) || cli.child.exitCode !== null, "the hint", 20_000);
        const lines = cli.stdout.split("\n");
        assert.match(lines[0], /^midi-smtp-server listening on /);
        assert.deepEqual(lines.slice(1), [
          `Envelopes: one JSON file per message in ${envelopes}`,
          "Press Ctrl-C to stop.",
          "",
        ]);
        const port = Number(/listening on 127\.0\.0\.1:(\d+) /.exec(lines[0])![1]);
        const client = await ehloClient(port);
        try {
          for (const subject of ["one", "two"]) {
            await client.send(`MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nSubject: ${subject}\r\n\r\nhi\r\n.\r\n`);
            for (const code of [250, 250, 354, 250]) await client.expect(code);
          }
          assert.equal((await client.command("BOGUS")).code, 500);
          // A second connection from the same address while the first is open: refused before a session.
          const refused = await RawClient.connect(port);
          try {
            await refused.expect(421);
          } finally {
            refused.close();
          }
          await client.command("QUIT");
        } finally {
          client.close();
        }
        assert.equal(files(mail, "new").length, 2);
        cli.signal("SIGTERM");
        const exit = await cli.exit();
        assert.deepEqual(exit, { code: 0, signal: null }, ending(cli, exit));
        assert.match(
          cli.stdout.split("\n").at(-2)!,
          /^midi-smtp-server stopped after \d+s: 2 messages stored, 1 connection, 1 refused, 1 error reply$/,
        );
        assert.equal(cli.stdout.split("\n").length, 5, "the report, the hint and the final line: --quiet");
      } finally {
        await cli.kill();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it(
    "--log-format json: log lines (with and without a session) and the message line are JSON objects",
    CHILD_TEST_OPTIONS,
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "midi-cli-child-"));
      const cli = new Cli([
        ...["--ports", "0", "--maildir", dir, "--log-format", "json", "--max-connections-per-ip", "1"],
        ...["--auth-mode", "AUTH_OPTIONAL", "--allow-insecure-auth", "--auth-user", "alice:s3cret"],
      ]);
      const json = (text: string) => text.split("\n").filter((line) => line.startsWith("{")).map((l) => JSON.parse(l));
      try {
        await until(() => /^Press Ctrl-C/m.test(cli.stdout) || cli.child.exitCode !== null, "the hint", 20_000);
        const port = Number(/listening on 127\.0\.0\.1:(\d+) /.exec(cli.stdout)?.[1]);
        assert.ok(port > 0, ending(cli, { code: cli.child.exitCode, signal: null }));
        const client = await ehloClient(port);
        try {
          const wrong = Buffer.from("\0alice\0wrong").toString("base64");
          assert.equal((await client.command(`AUTH PLAIN ${wrong}`)).code, 535);
          const refused = await RawClient.connect(port);
          try {
            await refused.expect(421);
          } finally {
            refused.close();
          }
          await client.send("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
          for (const code of [250, 250, 354]) await client.expect(code);
          await client.send("Subject: json\r\n\r\nhi\r\n.\r\n");
          await client.expect(250);
          await client.command("QUIT");
        } finally {
          client.close();
        }
        await until(() => json(cli.stdout).length === 1, "the message line");
        cli.signal("SIGTERM");
        const exit = await cli.exit();
        assert.deepEqual(exit, { code: 0, signal: null }, ending(cli, exit));
        // Every stderr line is a JSON object, but the program's own (signal, stop).
        const stderr = cli.stderr.split("\n").filter((line) => line !== "" && !line.startsWith("midi-smtp-server: "));
        const logs = stderr.map((line) => JSON.parse(line));
        const time = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
        const auth = logs.find((l) => /^AUTH PLAIN failed/.test(l.msg));
        assert.ok(auth, cli.stderr);
        assert.deepEqual(Object.keys(auth), ["time", "level", "sessionId", "msg", "remoteIp"]);
        assert.match(auth.time, time);
        assert.match(auth.sessionId, /^[0-9A-HJKMNP-TV-Z]{12}$/);
        assert.deepEqual([auth.level, auth.msg, auth.remoteIp], [
          "warn",
          'AUTH PLAIN failed for "alice" from 127.0.0.1',
          "127.0.0.1",
        ]);
        const refusal = logs.find((l) => /^refused /.test(l.msg));
        assert.ok(refusal, cli.stderr);
        assert.deepEqual(Object.keys(refusal), ["time", "level", "msg"], "outside a session: no sessionId");
        assert.deepEqual([refusal.level, refusal.msg], ["warn", "refused 127.0.0.1: maxConnectionsPerIp (1) reached"]);
        const [message] = json(cli.stdout);
        assert.deepEqual(Object.keys(message), ["time", "level", "event", "sessionId", "from", "to", "size", "file"]);
        assert.match(message.time, time);
        const [name] = files(dir, "new");
        assert.deepEqual({ ...message, time: "" }, {
          time: "",
          level: "info",
          event: "message",
          sessionId: auth.sessionId, // the same session
          from: "a@x",
          to: ["b@y"],
          size: 21,
          file: join(dir, "new", name),
        });
        // The report, the hint and the final line stay text.
        assert.match(cli.stdout, /^Press Ctrl-C to stop\.$/m);
        assert.match(cli.stdout, /^midi-smtp-server stopped after \d+s: 1 message stored, 1 connection, 1 refused, /m);
      } finally {
        await cli.kill();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it("a bad --log-format: exit 2 with a clear message", CHILD_TEST_OPTIONS, async () => {
    const bad = new Cli(["--log-format", "yaml"]);
    try {
      assert.equal((await bad.exit()).code, 2);
      assert.match(bad.stderr, /^midi-smtp-server: --log-format must be one of text, json, got "yaml"$/m);
      assert.equal(bad.stdout, "");
    } finally {
      await bad.kill();
    }
  });

  it(
    "--workers 2: one hint from the supervisor; on SIGTERM each worker prints its counts, then the supervisor",
    CHILD_TEST_OPTIONS,
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "midi-cli-child-"));
      const port = await freePort();
      const cli = new Cli(["--workers", "2", "--ports", String(port), "--maildir", dir, "--quiet"]);
      try {
        await until(() => /^Press Ctrl-C/m.test(cli.stdout) || cli.child.exitCode !== null, "the hint", 25_000);
        assert.equal(cli.stdout.match(/^Press Ctrl-C to stop\.$/gm)?.length, 1, cli.stdout);
        assert.match(cli.stdout, /^Workers: 2 processes .*\nPress Ctrl-C to stop\.\n$/m);
        for (const subject of ["w1", "w2", "w3"]) {
          const client = await ehloClient(port);
          try {
            await client.send(`MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nSubject: ${subject}\r\n\r\nhi\r\n.\r\n`);
            for (const code of [250, 250, 354, 250]) await client.expect(code);
            await client.command("QUIT");
          } finally {
            client.close();
          }
        }
        cli.signal("SIGTERM");
        const exit = await cli.exit(25_000);
        assert.deepEqual(exit, { code: 0, signal: null }, ending(cli, exit));
        const lines = cli.stdout.split("\n");
        const workers = lines.map((line) =>
          /^midi-smtp-server worker ([12]) stopped after \d+s: (\d+) messages? stored, (\d+) connections?, 0 refused, 0 error replies$/
            .exec(line)
        ).filter((m) => m !== null);
        assert.deepEqual(workers.map((m) => m[1]).sort(), ["1", "2"], cli.stdout);
        assert.equal(workers.reduce((sum, m) => sum + Number(m[2]), 0), 3, "every message counted once");
        assert.equal(workers.reduce((sum, m) => sum + Number(m[3]), 0), 3, "every connection counted once");
        assert.match(lines.at(-2)!, /^midi-smtp-server stopped after \d+s: 2 workers, counts above$/);
      } finally {
        await cli.kill();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  // Deno runs a symlinked script under its own name (relative imports would
  // not resolve); an npm bin symlink is only ever run by Node or Bun.
  it("runs when started through a bin-style symlink", { ...CHILD_TEST_OPTIONS, skip: runtime === "deno" }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "midi-cli-bin-"));
    const link = join(dir, "midi-smtp-server");
    symlinkSync(CLI, link);
    const cli = new Cli(["--version"], link);
    try {
      assert.deepEqual(await cli.exit(), { code: 0, signal: null });
      assert.equal(cli.stdout, `midi-smtp-server ${VERSION}\n`);
    } finally {
      await cli.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
