/**
 * The dev server's protocol extensions and envelope files, in-process on every transport of the runtime, run under
 * all three runtimes:
 *
 *   deno test -A tests/dev_server_extensions.test.ts
 *   bun test ./tests/dev_server_extensions.test.ts
 *   node --import tsx --test tests/dev_server_extensions.test.ts
 *
 * CHUNKING, BINARYMIME, DSN and REQUIRETLS (offered by default, each with a --no- flag), --envelope-dir (one JSON
 * file per message: BCC recipients and DSN requests), --lmtp, --socket (a Unix socket) and --xclient-trusted, each
 * through the flags as a user gives them. The CLI as a child process is in tests/cli.test.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseCliArgs } from "../src/dev_server/args.ts";
import { runDevServer } from "../src/dev_server/run.ts";
import type { EnvelopeRecord } from "../src/dev_server/envelope_file.ts";
import type { MidiSmtpServer } from "../src/server.ts";
import type { Transport } from "../src/transport/types.ts";
import { ehloClient, RawClient, type Reply, TRANSPORTS, withTimeout } from "./helpers.ts";
import { scratchFolder, type TestCertificate } from "./scratch.ts";

const TEST_OPTIONS = { timeout: 15_000 };
const BODY_TIMEOUT_MS = 10_000;

/** Collects what the dev server writes. */
class Sink {
  text = "";
  write(text: string): boolean {
    this.text += text;
    return true;
  }
}

interface DevServer {
  server: MidiSmtpServer;
  port: number;
  /** The folder holding the Maildir (`mail/`), the envelopes (`envelopes/`) and any socket. */
  base: string;
  maildir: string;
  envelopes: string;
  stdout: Sink;
  stderr: Sink;
}

/**
 * Runs `body` with a dev server started from the command line `argv` (given
 * the scratch folder, for paths in it) plus `--ports 0`, a fresh Maildir and
 * `--envelope-dir`; always stops it and removes the folder.
 */
async function withDevServer(
  transport: Transport,
  argv: string[] | ((base: string) => string[]),
  body: (dev: DevServer) => Promise<void>,
): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), "midi-ext-"));
  const maildir = join(base, "mail");
  const envelopes = join(base, "envelopes");
  const flags = typeof argv === "function" ? argv(base) : argv;
  const command = parseCliArgs(["--ports", "0", "--maildir", maildir, "--envelope-dir", envelopes, ...flags]);
  assert.ok(command.action === "run");
  const stdout = new Sink();
  const stderr = new Sink();
  const server = await runDevServer(command.config, { stdout, stderr, transport });
  try {
    const port = Number(/:(\d+)$/.exec(server.addresses[0])![1]);
    await withTimeout(
      body({ server, port, base, maildir, envelopes, stdout, stderr }),
      BODY_TIMEOUT_MS,
      "test body",
    );
  } finally {
    await server.stop({ gracefully: false, waitSecondsBeforeClose: 0 });
    rmSync(base, { recursive: true, force: true });
  }
}

/** The messages in `maildir/new`, sorted by name. */
function stored(maildir: string): string[] {
  return readdirSync(join(maildir, "new")).sort();
}

/** The envelope record of the Maildir file `name`. */
function envelopeOf(envelopes: string, name: string): EnvelopeRecord {
  return JSON.parse(readFileSync(join(envelopes, `${name}.json`), "utf8"));
}

/** A stored file's `Received` header (its three lines joined) and the message after the trace headers. */
function splitStored(path: string): { received: string; id: string; data: Uint8Array } {
  const bytes = new Uint8Array(readFileSync(path));
  const text = Buffer.from(bytes).toString("latin1");
  let offset = 0;
  for (let i = 0; i < 4; i++) offset = text.indexOf("\r\n", offset) + 2;
  const lines = text.slice(0, offset - 2).split("\r\n");
  assert.match(lines[0], /^Return-Path: /);
  return {
    received: lines.slice(1).join("\r\n"),
    id: / id ([0-9A-F]{12})\r\n/.exec(lines.slice(1).join("\r\n") + "\r\n")![1],
    data: bytes.subarray(offset),
  };
}

/** Sends the lines of a transaction and checks the reply to each, in order. */
async function transaction(client: RawClient | SocketClient, steps: Array<[string, number]>): Promise<Reply[]> {
  const replies: Reply[] = [];
  for (const [line, code] of steps) {
    await client.send(line);
    replies.push(await client.expect(code));
  }
  return replies;
}

/** A minimal SMTP client over a Unix socket (node:net, as on every runtime). */
class SocketClient {
  #socket: net.Socket;
  #buffer = "";
  #closed = false;
  #wake: (() => void) | undefined;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on("data", (d: Buffer) => {
      this.#buffer += d.toString("latin1");
      this.#wake?.();
    });
    socket.on("close", () => {
      this.#closed = true;
      this.#wake?.();
    });
    socket.on("error", () => {});
  }

  /** Connects to the Unix socket at `path`. */
  static connect(path: string): Promise<SocketClient> {
    return withTimeout(
      new Promise((resolve, reject) => {
        const socket = net.connect({ path });
        socket.once("connect", () => resolve(new SocketClient(socket)));
        socket.once("error", reject);
      }),
      5000,
      `connect to ${path}`,
    );
  }

  /** Sends text as latin1. */
  send(text: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#socket.write(Buffer.from(text, "latin1"), (err) => err ? reject(err) : resolve());
    });
  }

  /** The next complete reply. */
  async reply(ms = 5000): Promise<Reply> {
    const deadline = Date.now() + ms;
    for (;;) {
      const end = /^(?:\d{3}-.*\r\n)*\d{3} .*\r\n/.exec(this.#buffer);
      if (end) {
        const raw = end[0];
        this.#buffer = this.#buffer.slice(raw.length);
        const lines = raw.split("\r\n").slice(0, -1);
        return { code: Number(lines[0].slice(0, 3)), lines: lines.map((l) => l.slice(4)), raw };
      }
      if (this.#closed) throw new Error(`closed before a complete reply; received ${JSON.stringify(this.#buffer)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; received so far ${JSON.stringify(this.#buffer)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  /** Reads a reply and checks its code. */
  async expect(code: number): Promise<Reply> {
    const reply = await this.reply();
    if (reply.code !== code) throw new Error(`expected ${code}, got ${JSON.stringify(reply.raw)}`);
    return reply;
  }

  /** Sends a line (CRLF added) and returns the reply. */
  async command(line: string): Promise<Reply> {
    await this.send(`${line}\r\n`);
    return await this.reply();
  }

  /** Closes the connection. */
  close(): void {
    this.#socket.destroy();
  }
}

/** Holds the throw-away certificate of the TLS tests. */
const scratch = scratchFolder("dev-ext-tls");
let certificate: TestCertificate | undefined;

/** `--tls-mode TLS_OPTIONAL` with a throw-away certificate for 127.0.0.1 (made with openssl once per run). */
function tlsFlags(): string[] {
  certificate ??= scratch.selfSigned("cert", { cn: "localhost", san: "DNS:localhost,IP:127.0.0.1" });
  return ["--tls-mode", "TLS_OPTIONAL", "--tls-cert", certificate.certPath, "--tls-key", certificate.keyPath];
}

const EXTENSIONS = ["CHUNKING", "BINARYMIME", "DSN"];

for (const transport of TRANSPORTS) {
  describe(`dev server extensions (${transport.name} transport)`, () => {
    it(
      "EHLO offers CHUNKING, BINARYMIME and DSN; REQUIRETLS only after STARTTLS, where MAIL may carry it " +
        "(the envelope says so, with TLS and AUTH)",
      TEST_OPTIONS,
      async () => {
        const auth = ["--auth-mode", "AUTH_OPTIONAL", "--auth-user", "alice:s3cret"];
        await withDevServer(transport, [...tlsFlags(), ...auth], async ({ port, maildir, envelopes }) => {
          const client = await RawClient.connect(port);
          try {
            await client.expect(220);
            const plain = await client.ehlo("tls.client.example");
            for (const keyword of [...EXTENSIONS, "STARTTLS"]) assert.ok(plain.includes(keyword), plain.join("|"));
            assert.ok(!plain.includes("REQUIRETLS"), `not offered without TLS: ${plain.join("|")}`);
            const early = await client.command("MAIL FROM:<a@x.example> REQUIRETLS");
            assert.ok(early.code >= 500, `REQUIRETLS refused without TLS: ${early.raw}`);
            await client.startTls({ rejectUnauthorized: false });
            const secure = await client.ehlo("tls.client.example");
            for (const keyword of [...EXTENSIONS, "REQUIRETLS"]) assert.ok(secure.includes(keyword), secure.join("|"));
            const plainAuth = Buffer.from("\0alice\0s3cret").toString("base64");
            assert.equal((await client.command(`AUTH PLAIN ${plainAuth}`)).code, 235);
            await transaction(client, [
              ["MAIL FROM:<a@x.example> REQUIRETLS\r\n", 250],
              ["RCPT TO:<b@y.example>\r\n", 250],
              ["DATA\r\n", 354],
              ["Subject: requiretls\r\n\r\nbody\r\n.\r\n", 250],
            ]);
          } finally {
            client.close();
          }
          const [name] = stored(maildir);
          const envelope = envelopeOf(envelopes, name);
          assert.equal(envelope.requireTls, true);
          assert.equal(envelope.protocol, "ESMTPSA");
          assert.match(envelope.client.tls?.protocol ?? "", /^TLSv1\.[23]$/);
          assert.ok(envelope.client.tls?.cipher, "the cipher is named");
          assert.deepEqual(envelope.client.auth, { authenticationId: "alice", authorizationId: "alice" });
          assert.deepEqual(envelope.mailParams, { REQUIRETLS: true });
          assert.match(splitStored(join(maildir, "new", name)).received, / with ESMTPSA id /);
        });
      },
    );

    it(
      "--no-chunking, --no-dsn and --no-requiretls: none offered, and their commands and parameters refused",
      TEST_OPTIONS,
      async () => {
        const flags = [...tlsFlags(), "--no-chunking", "--no-dsn", "--no-requiretls"];
        await withDevServer(transport, flags, async ({ port, maildir }) => {
          const client = await ehloClient(port);
          try {
            await client.startTls({ rejectUnauthorized: false });
            const keywords = await client.ehlo();
            for (const keyword of [...EXTENSIONS, "REQUIRETLS"]) {
              assert.ok(!keywords.includes(keyword), `${keyword} not offered: ${keywords.join("|")}`);
            }
            for (const line of ["MAIL FROM:<a@x.example> RET=HDRS", "MAIL FROM:<a@x.example> REQUIRETLS"]) {
              const reply = await client.command(line);
              assert.ok(reply.code >= 500, `${line}: ${reply.raw}`);
            }
            await transaction(client, [["MAIL FROM:<a@x.example>\r\n", 250], ["RCPT TO:<b@y.example>\r\n", 250]]);
            const notify = await client.command("RCPT TO:<c@y.example> NOTIFY=NEVER");
            assert.ok(notify.code >= 500, notify.raw);
            const bdat = await client.command("BDAT 0 LAST");
            assert.ok(bdat.code >= 500, bdat.raw);
          } finally {
            client.close();
          }
          assert.deepEqual(stored(maildir), []);
        });
        await withDevServer(transport, ["--no-binarymime"], async ({ port }) => {
          const client = await RawClient.connect(port);
          try {
            await client.expect(220);
            const keywords = await client.ehlo();
            assert.ok(keywords.includes("CHUNKING") && keywords.includes("DSN"), keywords.join("|"));
            assert.ok(!keywords.includes("BINARYMIME"), keywords.join("|"));
          } finally {
            client.close();
          }
        });
      },
    );

    it(
      "--envelope-dir: a JSON file per message, named after its Maildir file, with BCC recipients and DSN decoded; " +
        "a BINARYMIME message in BDAT chunks is stored byte-exact",
      TEST_OPTIONS,
      async () => {
        await withDevServer(transport, [], async ({ port, maildir, envelopes, stdout }) => {
          assert.match(stdout.text, new RegExp(`^Envelopes: one JSON file per message in ${envelopes}$`, "m"));
          const client = await RawClient.connect(port);
          const clientPort = client.localPort;
          const binary = "Subject: binary\r\n\r\n\x00\x01\xff bare\nLF and bare\rCR\r\n..no stuffing";
          try {
            await client.expect(220);
            await client.ehlo("raw.client.example");
            await transaction(client, [
              ["MAIL FROM:<a@x> RET=HDRS ENVID=QQ314159+2B1\r\n", 250],
              ["RCPT TO:<b@y> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+40y\r\n", 250],
              ["RCPT TO:<hidden@y>\r\n", 250],
              ["DATA\r\n", 354],
              ["To: <b@y>\r\nSubject: dsn\r\n\r\nBCC and DSN\r\n.\r\n", 250],
            ]);
            // BDAT in two chunks, the first one pipelined with MAIL and RCPT.
            const first = binary.slice(0, 20);
            const rest = binary.slice(20);
            await client.send(
              `MAIL FROM:<c@x> BODY=BINARYMIME\r\nRCPT TO:<d@y>\r\nBDAT ${first.length}\r\n${first}`,
            );
            for (const code of [250, 250, 250]) await client.expect(code);
            await transaction(client, [[`BDAT ${rest.length} LAST\r\n${rest}`, 250]]);
          } finally {
            client.close();
          }
          const names = stored(maildir);
          assert.equal(names.length, 2);
          assert.deepEqual(
            readdirSync(envelopes).sort(),
            names.map((name) => `${name}.json`),
            "one file each, no temp",
          );
          const records = names.map((name) => envelopeOf(envelopes, name));
          const dsn = records.find((r) => r.from === "a@x")!;
          const name = dsn.messageFile;
          const file = splitStored(join(maildir, "new", name));
          assert.equal(dsn.id, file.id, "the id of the Received header");
          assert.equal(dsn.size, file.data.length);
          assert.ok(stdout.text.includes(` ${file.data.length} bytes ${join(maildir, "new", name)}\n`), stdout.text);
          assert.match(dsn.receivedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
          assert.deepEqual(
            { ...dsn, receivedAt: "", id: "", messageFile: "", server: null },
            {
              version: 1,
              id: "",
              messageFile: "",
              receivedAt: "",
              protocol: "ESMTP",
              client: {
                ip: "127.0.0.1",
                host: "127.0.0.1",
                port: clientPort,
                helo: "raw.client.example",
                heloMode: "EHLO",
                xclient: null,
                proxy: null,
                tls: null,
                auth: null,
              },
              server: null,
              from: "a@x",
              mailParams: { RET: "HDRS", ENVID: "QQ314159+2B1" },
              bodyType: null,
              smtputf8: false,
              dsn: { ret: "HDRS", envid: "QQ314159+1" },
              requireTls: false,
              recipients: [
                {
                  address: "b@y",
                  notify: ["SUCCESS", "FAILURE"],
                  orcpt: { type: "rfc822", address: "b@y" },
                  params: { NOTIFY: "SUCCESS,FAILURE", ORCPT: "rfc822;b+40y" },
                },
                // The BCC recipient: named nowhere in the message.
                { address: "hidden@y", notify: null, orcpt: null, params: {} },
              ],
              xforward: null,
              size: file.data.length,
            },
          );
          assert.deepEqual(dsn.server, { host: "127.0.0.1", ip: "127.0.0.1", port });
          assert.ok(!Buffer.from(file.data).toString("latin1").includes("hidden@y"));

          const chunked = records.find((r) => r.from === "c@x")!;
          assert.equal(chunked.bodyType, "BINARYMIME");
          const bytes = splitStored(join(maildir, "new", chunked.messageFile)).data;
          assert.equal(Buffer.from(bytes).toString("latin1"), binary, "every octet as sent");
          assert.equal(chunked.size, binary.length);
        });
      },
    );

    it(
      "an envelope file that cannot be written: 451, and the message is taken out of new/ again",
      TEST_OPTIONS,
      async () => {
        await withDevServer(transport, [], async ({ port, maildir, envelopes, stderr }) => {
          // Tests run as root, so permissions would not stop the write: put a file where the folder was.
          rmSync(envelopes, { recursive: true });
          writeFileSync(envelopes, "in the way");
          const client = await ehloClient(port);
          try {
            const replies = await transaction(client, [
              ["MAIL FROM:<a@x.example>\r\n", 250],
              ["RCPT TO:<b@y.example>\r\n", 250],
              ["DATA\r\n", 354],
              ["Subject: lost\r\n\r\nbody\r\n.\r\n", 451],
            ]);
            assert.match(replies[3].raw, /^451 4\.3\.0 /);
          } finally {
            client.close();
          }
          assert.deepEqual(stored(maildir), [], "no message without its envelope: the retry would duplicate it");
          assert.deepEqual(readdirSync(join(maildir, "tmp")), []);
          assert.match(
            stderr.text,
            /\[ERROR\] \[\w{12}\] message [0-9A-F]{12} not stored: envelope file not written: /,
          );
        });
      },
    );

    it(
      "--lmtp: LHLO is answered and EHLO refused; one reply per recipient; received `with LMTP`",
      TEST_OPTIONS,
      async () => {
        await withDevServer(transport, ["--lmtp"], async ({ port, maildir, envelopes, stdout }) => {
          assert.match(stdout.text, /^LMTP: clients send LHLO/m);
          const client = await RawClient.connect(port);
          try {
            await client.expect(220);
            assert.equal((await client.command("EHLO smtp.client.example")).code, 500);
            const lhlo = await client.command("LHLO lmtp.client.example");
            assert.equal(lhlo.code, 250, lhlo.raw);
            for (const keyword of EXTENSIONS) assert.ok(lhlo.lines.includes(keyword), lhlo.raw);
            await transaction(client, [
              ["MAIL FROM:<a@x.example>\r\n", 250],
              ["RCPT TO:<one@y.example>\r\n", 250],
              ["RCPT TO:<two@y.example>\r\n", 250],
              ["DATA\r\n", 354],
            ]);
            await client.send("Subject: lmtp\r\n\r\nbody\r\n.\r\n");
            // RFC 2033 4.2: one reply per accepted recipient, in RCPT order.
            assert.match((await client.expect(250)).raw, /one@y\.example/);
            assert.match((await client.expect(250)).raw, /two@y\.example/);
          } finally {
            client.close();
          }
          const [name] = stored(maildir);
          assert.match(
            splitStored(join(maildir, "new", name)).received,
            /^Received: from lmtp\.client\.example .*\r\n\tby .* with LMTP id /,
          );
          const envelope = envelopeOf(envelopes, name);
          assert.deepEqual([envelope.protocol, envelope.client.heloMode], ["LMTP", "LHLO"]);
          assert.deepEqual(envelope.recipients.map((r) => r.address), ["one@y.example", "two@y.example"]);
        });
      },
    );

    it(
      "--socket: serves on a Unix socket too; the Received header names the client without an empty address",
      { ...TEST_OPTIONS, skip: process.platform === "win32" },
      async () => {
        const argv = (base: string) => ["--socket", join(base, "smtp.sock")];
        await withDevServer(transport, argv, async ({ server, base, maildir, envelopes, stdout }) => {
          const path = join(base, "smtp.sock");
          assert.deepEqual(server.socketPaths, [path]);
          assert.match(stdout.text, new RegExp(`^Unix socket: ${path}$`, "m"));
          const client = await SocketClient.connect(path);
          try {
            await client.expect(220);
            const ehlo = await client.command("EHLO unix.client.example");
            assert.equal(ehlo.code, 250, ehlo.raw);
            await transaction(client, [
              ["MAIL FROM:<a@x.example>\r\n", 250],
              ["RCPT TO:<b@y.example>\r\n", 250],
              ["DATA\r\n", 354],
              ["Subject: unix\r\n\r\nbody\r\n.\r\n", 250],
            ]);
          } finally {
            client.close();
          }
          const [name] = stored(maildir);
          const { received } = splitStored(join(maildir, "new", name));
          assert.match(
            received,
            /^Received: from unix\.client\.example \(localhost\)\r\n\tby localhost with ESMTP id /,
          );
          const envelope = envelopeOf(envelopes, name);
          assert.deepEqual(
            [envelope.client.ip, envelope.client.host, envelope.client.port],
            [null, "localhost", null],
          );
        });
      },
    );

    it(
      "--xclient-trusted 127.0.0.1: XCLIENT is offered, and the Received header and the envelope show the client it named",
      TEST_OPTIONS,
      async () => {
        await withDevServer(
          transport,
          ["--xclient-trusted", "127.0.0.1"],
          async ({ port, maildir, envelopes, stdout }) => {
            assert.match(stdout.text, /^XCLIENT: trusted from 127\.0\.0\.1\/32$/m);
            const client = await RawClient.connect(port);
            try {
              await client.expect(220);
              const keywords = await client.ehlo("proxy.example");
              assert.ok(keywords.some((k) => k.startsWith("XCLIENT ")), keywords.join("|"));
              await transaction(client, [
                ["XCLIENT NAME=real.example ADDR=192.0.2.9 PORT=4242 HELO=real.helo LOGIN=carol\r\n", 220],
                ["EHLO after.xclient\r\n", 250],
                ["MAIL FROM:<a@x.example>\r\n", 250],
                ["RCPT TO:<b@y.example>\r\n", 250],
                ["DATA\r\n", 354],
                ["Subject: xclient\r\n\r\nbody\r\n.\r\n", 250],
              ]);
            } finally {
              client.close();
            }
            const [name] = stored(maildir);
            assert.match(
              splitStored(join(maildir, "new", name)).received,
              /^Received: from after\.xclient \(real\.example \[192\.0\.2\.9\]\)\r\n\tby .* with ESMTPA id /,
            );
            const envelope = envelopeOf(envelopes, name);
            assert.deepEqual(
              [envelope.client.ip, envelope.client.host, envelope.client.port, envelope.client.helo],
              ["192.0.2.9", "real.example", 4242, "after.xclient"],
            );
            assert.deepEqual(envelope.client.xclient, {
              name: "real.example",
              addr: "192.0.2.9",
              port: 4242,
              helo: "real.helo",
              login: "carol",
            });
            assert.deepEqual(envelope.client.auth, { authenticationId: "carol", authorizationId: "carol" });
          },
        );
        // Without the flag nobody may: not offered, and refused.
        await withDevServer(transport, [], async ({ port }) => {
          const client = await RawClient.connect(port);
          try {
            await client.expect(220);
            const keywords = await client.ehlo();
            assert.ok(!keywords.some((k) => k.startsWith("XCLIENT")), keywords.join("|"));
            assert.equal((await client.command("XCLIENT ADDR=192.0.2.9")).code, 550);
          } finally {
            client.close();
          }
        });
      },
    );

    it("--proxy: the envelope has the client the PROXY header named, and the proxy itself", TEST_OPTIONS, async () => {
      await withDevServer(transport, ["--proxy"], async ({ port, maildir, envelopes }) => {
        const client = await RawClient.connect(port);
        const proxyPort = client.localPort;
        try {
          await client.send("PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n");
          await client.expect(220);
          await client.ehlo("behind.proxy.example");
          await transaction(client, [
            ["MAIL FROM:<a@x.example>\r\n", 250],
            ["RCPT TO:<b@y.example>\r\n", 250],
            ["DATA\r\n", 354],
            ["Subject: proxied\r\n\r\nbody\r\n.\r\n", 250],
          ]);
        } finally {
          client.close();
        }
        const [name] = stored(maildir);
        const envelope = envelopeOf(envelopes, name);
        assert.deepEqual([envelope.client.ip, envelope.client.port], ["192.0.2.7", 40000]);
        assert.deepEqual(envelope.client.proxy, {
          version: 1,
          command: "PROXY",
          sourceIp: "192.0.2.7",
          sourcePort: 40000,
          destIp: "198.51.100.1",
          destPort: 25,
          proxyIp: "127.0.0.1",
          proxyPort,
        });
        assert.ok(existsSync(join(envelopes, `${name}.json`)));
      });
    });
  });
}
