/**
 * The server on Unix socket paths (`socketPaths`), with every transport of
 * the running runtime and real clients: node:net / node:tls (clients in all
 * three runtimes) and Python's smtplib. What is proved: whole sessions and
 * STARTTLS over the socket, TCP and Unix listeners side by side, the socket
 * file's life (a stale one replaced, a live one or any other file refused and
 * left alone, removed on stop, start/stop/start), and the admission path of a
 * Unix client (no PROXY header and no per-IP limits, but maxConnections and
 * the processing slots). Transport-level Unix tests are in transport.test.ts
 * and transport_unix_socket.test.ts.
 *
 *   node_modules/.bin/deno test -A --no-check tests/unix_socket.test.ts
 *   node_modules/.bin/bun test --timeout 60000 ./tests/unix_socket.test.ts
 *   node --import tsx --test tests/unix_socket.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import { MidiSmtpServer, type MidiSmtpServerOptions, type SmtpdContext } from "../mod.ts";
import type { Transport } from "../src/transport/types.ts";
import { UnixSocketError } from "../src/transport/unix_socket.ts";
import { delay, RawClient, testOptions, TRANSPORTS, withTimeout } from "./helpers.ts";

const TEST = { timeout: 60_000 };
const REPLY_LINE = /^(\d{3})([ -])(.*)$/;
/** Python 3 runs the smtplib test; without it that test is skipped. */
const PYTHON = spawnSync("python3", ["--version"]).status === 0;

/** One SMTP reply. */
interface Reply {
  code: number;
  lines: string[];
  raw: string;
}

/**
 * A line-based SMTP client over a Unix socket (helpers.ts's RawClient speaks
 * TCP only): replies one by one, and STARTTLS with node:tls over the socket.
 */
class UnixClient {
  #socket: net.Socket;
  #buffer = "";
  #closed = false;
  #wake: (() => void) | undefined;
  #onData = (data: Uint8Array) => {
    this.#buffer += Buffer.from(data).toString("latin1");
    this.#wake?.();
  };
  #onClose = () => {
    this.#closed = true;
    this.#wake?.();
  };

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    this.#attach(socket);
  }

  #attach(socket: net.Socket): void {
    this.#socket = socket;
    socket.on("data", this.#onData);
    socket.on("close", this.#onClose);
    socket.on("error", () => {});
  }

  /** Connects to the socket at `path`. */
  static connect(path: string): Promise<UnixClient> {
    return withTimeout(
      new Promise((resolve, reject) => {
        const socket = net.connect({ path });
        socket.once("connect", () => resolve(new UnixClient(socket)));
        socket.once("error", reject);
      }),
      5000,
      `connect to ${path}`,
    );
  }

  /** Whether the server closed the connection. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The TLS socket once STARTTLS ran. */
  get tlsSocket(): tls.TLSSocket | undefined {
    return this.#socket instanceof tls.TLSSocket ? this.#socket : undefined;
  }

  send(text: string): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#socket.destroyed) return reject(new Error("socket closed"));
      this.#socket.write(Buffer.from(text, "latin1"), (err) => err ? reject(err) : resolve());
    });
  }

  /** Reads the next complete reply. */
  async reply(ms = 5000): Promise<Reply> {
    const end = (buffer: string) => {
      let offset = 0;
      for (;;) {
        const eol = buffer.indexOf("\r\n", offset);
        if (eol < 0) return -1;
        const m = REPLY_LINE.exec(buffer.slice(offset, eol));
        offset = eol + 2;
        if (!m || m[2] === " ") return offset;
      }
    };
    const deadline = Date.now() + ms;
    while (end(this.#buffer) < 0) {
      if (this.#closed) throw new Error(`closed before a complete reply; got ${JSON.stringify(this.#buffer)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${ms} ms; got ${JSON.stringify(this.#buffer)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
    const raw = this.#buffer.slice(0, end(this.#buffer));
    this.#buffer = this.#buffer.slice(raw.length);
    const lines = raw.split("\r\n").slice(0, -1);
    return { code: Number(lines[0].slice(0, 3)), lines: lines.map((l) => l.slice(4)), raw };
  }

  /** Reads a reply and checks its code. */
  async expect(code: number, ms = 5000): Promise<Reply> {
    const r = await this.reply(ms);
    assert.equal(r.code, code, r.raw);
    return r;
  }

  /** Sends a line and reads the reply. */
  async command(line: string): Promise<Reply> {
    await this.send(line + "\r\n");
    return await this.reply();
  }

  /** STARTTLS, its 220, and the client handshake over the same socket (self-signed: not verified). */
  async startTls(): Promise<void> {
    await this.send("STARTTLS\r\n");
    await this.expect(220);
    const raw = this.#socket;
    raw.off("data", this.#onData);
    raw.off("close", this.#onClose);
    assert.equal(this.#buffer, "", "nothing may follow the 220 in plaintext");
    const secure = await withTimeout(
      new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect({ socket: raw, rejectUnauthorized: false }, () => resolve(s));
        s.once("error", reject);
      }),
      5000,
      "STARTTLS handshake",
    );
    this.#attach(secure);
  }

  /** Resolves once the server has closed the connection. */
  async waitClosed(ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.#closed) {
      if (Date.now() > deadline) throw new Error("connection still open");
      await delay(10);
    }
  }

  close(): void {
    this.#socket.destroy();
  }
}

/** A fresh directory for socket files (short: a socket path must stay under 104 bytes), removed afterwards. */
async function inTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "smtp-ux-"));
  assert.ok(Buffer.byteLength(join(dir, "smtp.sock")) < 104, `temporary directory too long for a socket: ${dir}`);
  try {
    await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A server with quiet test options on a free TCP port (and the given `socketPaths`). */
function makeServer(transport: Transport, options: MidiSmtpServerOptions): MidiSmtpServer {
  return new MidiSmtpServer(testOptions(transport, options));
}

function stopNow(server: MidiSmtpServer): Promise<void> {
  return server.stop({ gracefully: false, waitSecondsBeforeClose: 0 });
}

/** Runs `body` with a started server listening on `<dir>/smtp.sock` (and a TCP port), stopped afterwards. */
async function withUnixServer(
  transport: Transport,
  options: MidiSmtpServerOptions,
  body: (server: MidiSmtpServer, path: string, dir: string) => Promise<void>,
): Promise<void> {
  await inTempDir(async (dir) => {
    const path = join(dir, "smtp.sock");
    const server = makeServer(transport, { socketPaths: path, ...options });
    await server.start();
    try {
      await body(server, path, dir);
    } finally {
      await stopNow(server);
    }
  });
}

/** The TCP port a started server listens on. */
function tcpPort(server: MidiSmtpServer): number {
  const address = server.addresses[0];
  return Number(address.slice(address.lastIndexOf(":") + 1));
}

/** A socket file nobody listens on, as a crashed server leaves it (bound, renamed out of libuv's unlink, closed). */
async function staleSocket(path: string): Promise<bigint> {
  const bound = `${path}.binding`;
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen({ path: bound }, () => resolve()));
  renameSync(bound, path);
  await new Promise((resolve) => server.close(resolve));
  const stat = lstatSync(path, { bigint: true });
  assert.ok(stat.isSocket());
  return stat.ino;
}

/** Connects, expects the 220 greeting, and returns the client. */
async function greeted(path: string): Promise<UnixClient> {
  const client = await UnixClient.connect(path);
  await client.expect(220);
  return client;
}

interface Received {
  from: string;
  to: string[];
  data: string;
  encrypted: boolean;
}

/** An `onMessageDataEvent` that records what arrives. */
function messageRecorder(): { messages: Received[]; onMessageDataEvent(ctx: SmtpdContext): void } {
  const messages: Received[] = [];
  return {
    messages,
    onMessageDataEvent(ctx) {
      messages.push({
        from: ctx.envelope.from,
        to: [...ctx.envelope.to],
        data: Buffer.from(ctx.message.data).toString("latin1"),
        encrypted: ctx.server.encrypted !== null,
      });
    },
  };
}

/** Runs a Python script; resolves with its stdout, rejects with its stderr. */
function python(script: string, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("python3", ["-c", script, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`python3 failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

/** smtplib over AF_UNIX: `SMTP.connect()` takes no path, so `_get_socket` makes the Unix socket. */
const SMTPLIB_CLIENT = `
import smtplib, socket, ssl, sys

class UnixSMTP(smtplib.SMTP):
    def _get_socket(self, host, port, timeout):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(host)
        return sock

path = sys.argv[1]
client = UnixSMTP()
code, _ = client.connect(path)
assert code == 220, code
client._host = "localhost"  # the TLS server name: the path is none
code, features = client.ehlo("python.example")
assert code == 250 and client.has_extn("starttls"), features
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE  # self-signed
client.starttls(context=context)
print("tls", client.sock.version())
refused = client.sendmail("py@example.com", ["one@example.com", "two@example.com"], "Subject: py\\r\\n\\r\\nfrom python\\r\\n")
print("refused", len(refused))
print("quit", client.quit()[0])
`;

for (const transport of TRANSPORTS) {
  describe(`Unix sockets (${transport.name} transport)`, () => {
    it(
      "a whole session over the socket: EHLO, MAIL, RCPT, DATA, QUIT; the message reaches the hook",
      TEST,
      async () => {
        const recorder = messageRecorder();
        await withUnixServer(transport, { onMessageDataEvent: recorder.onMessageDataEvent }, async (server, path) => {
          assert.deepEqual(server.socketPaths, [path]);
          assert.ok(lstatSync(path).isSocket(), "a socket file at the path");
          const client = await greeted(path);
          const ehlo = await client.command("EHLO unix.example");
          assert.equal(ehlo.code, 250, ehlo.raw);
          assert.equal((await client.command("MAIL FROM:<sender@example.com>")).code, 250);
          assert.equal((await client.command("RCPT TO:<rcpt@example.com>")).code, 250);
          assert.equal((await client.command("DATA")).code, 354);
          await client.send("Subject: over a Unix socket\r\n\r\nHello.\r\n.\r\n");
          assert.equal((await client.reply()).code, 250);
          assert.equal((await client.command("QUIT")).code, 221);
          await client.waitClosed();
          assert.equal(recorder.messages.length, 1);
          const [message] = recorder.messages;
          assert.equal(message.from, "<sender@example.com>");
          assert.deepEqual(message.to, ["<rcpt@example.com>"]);
          assert.match(message.data, /^Subject: over a Unix socket\r\n\r\nHello\.\r\n$/);
          assert.equal(message.encrypted, false);
        });
      },
    );

    it("STARTTLS over the socket (TLS_OPTIONAL, self-signed certificate)", TEST, async () => {
      const recorder = messageRecorder();
      await withUnixServer(
        transport,
        { tlsMode: "TLS_OPTIONAL", onMessageDataEvent: recorder.onMessageDataEvent },
        async (_server, path) => {
          const client = await greeted(path);
          const before = await client.command("EHLO unix.example");
          assert.ok(before.lines.includes("STARTTLS"), before.raw);
          await client.startTls();
          assert.match(client.tlsSocket?.getProtocol() ?? "", /^TLSv1\.[23]$/);
          const after = await client.command("EHLO unix.example");
          assert.equal(after.code, 250, after.raw);
          assert.ok(!after.lines.includes("STARTTLS"), "no STARTTLS once TLS runs");
          assert.equal((await client.command("MAIL FROM:<tls@example.com>")).code, 250);
          assert.equal((await client.command("RCPT TO:<rcpt@example.com>")).code, 250);
          assert.equal((await client.command("DATA")).code, 354);
          await client.send("Subject: encrypted\r\n\r\nsecret\r\n.\r\n");
          assert.equal((await client.reply()).code, 250);
          assert.equal((await client.command("QUIT")).code, 221);
          client.close();
          assert.equal(recorder.messages.length, 1);
          assert.equal(recorder.messages[0].encrypted, true);
          assert.match(recorder.messages[0].data, /secret/);
        },
      );
    });

    it("Python's smtplib delivers over the socket, with STARTTLS", { ...TEST, skip: !PYTHON }, async () => {
      const recorder = messageRecorder();
      await withUnixServer(
        transport,
        { tlsMode: "TLS_OPTIONAL", onMessageDataEvent: recorder.onMessageDataEvent },
        async (_server, path) => {
          const out = await python(SMTPLIB_CLIENT, path);
          assert.match(out, /^tls TLSv1\.[23]\nrefused 0\nquit 221\n$/);
          assert.equal(recorder.messages.length, 1);
          assert.deepEqual(recorder.messages[0].to, ["<one@example.com>", "<two@example.com>"]);
          assert.equal(recorder.messages[0].encrypted, true);
          assert.match(recorder.messages[0].data, /from python/);
        },
      );
    });

    it("TCP and two Unix listeners at once; addresses stays TCP only; the log names the paths", TEST, async () => {
      const lines: string[] = [];
      await inTempDir(async (dir) => {
        const paths = [join(dir, "a.sock"), join(dir, "b.sock")];
        const server = makeServer(transport, {
          socketPaths: paths,
          loggerSeverity: "info",
          onLoggingEvent: (_ctx, _severity, msg) => void lines.push(msg),
        });
        await server.start();
        try {
          assert.deepEqual(server.socketPaths, paths);
          assert.equal(server.addresses.length, 1);
          assert.match(server.addresses[0], /^127\.0\.0\.1:\d+$/);
          const tcp = await RawClient.connect(tcpPort(server));
          await tcp.expect(220);
          const a = await greeted(paths[0]);
          const b = await greeted(paths[1]);
          for (const client of [a, b]) assert.equal((await client.command("EHLO unix.example")).code, 250);
          tcp.close();
          a.close();
          b.close();
          const listening = lines.find((line) => line.startsWith("listening on "));
          assert.equal(
            listening,
            `listening on ${server.addresses[0]}, unix:${paths[0]}, unix:${paths[1]} (${transport.name} transport)`,
          );
        } finally {
          await stopNow(server);
        }
        assert.equal(existsSync(paths[0]) || existsSync(paths[1]), false, "both socket files removed");
      });
    });

    it(
      "socketPaths is empty before start and after stop(); stop() removes the file; start/stop/start",
      TEST,
      async () => {
        await inTempDir(async (dir) => {
          const path = join(dir, "smtp.sock");
          const server = makeServer(transport, { socketPaths: path });
          assert.deepEqual(server.socketPaths, []);
          for (let round = 1; round <= 2; round++) {
            await server.start();
            assert.deepEqual(server.socketPaths, [path], `round ${round}`);
            const client = await greeted(path);
            assert.equal((await client.command("QUIT")).code, 221);
            client.close();
            await server.stop();
            assert.deepEqual(server.socketPaths, [], `round ${round}`);
            assert.equal(existsSync(path), false, `round ${round}: the socket file is removed on stop()`);
            await assert.rejects(UnixClient.connect(path), `round ${round}: nobody listens after stop()`);
          }
        });
      },
    );

    it("a stale socket file from an earlier run is replaced", TEST, async () => {
      await inTempDir(async (dir) => {
        const path = join(dir, "smtp.sock");
        const staleInode = await staleSocket(path);
        const server = makeServer(transport, { socketPaths: path });
        await server.start();
        try {
          assert.notEqual(lstatSync(path, { bigint: true }).ino, staleInode, "a new socket file");
          (await greeted(path)).close();
        } finally {
          await stopNow(server);
        }
        assert.equal(existsSync(path), false);
      });
    });

    it("a socket another server answers on is not taken over: start() fails, that server keeps it", TEST, async () => {
      await withUnixServer(transport, {}, async (first, path) => {
        const inode = lstatSync(path, { bigint: true }).ino;
        const second = makeServer(transport, { socketPaths: path });
        await assert.rejects(second.start(), (err: Error) => {
          assert.ok(err instanceof UnixSocketError, String(err));
          assert.equal(err.message, `cannot listen on Unix socket ${path}: a server is listening on it already`);
          return true;
        });
        assert.ok(second.isStopped());
        assert.deepEqual(second.socketPaths, []);
        assert.equal(lstatSync(path, { bigint: true }).ino, inode, "the file is untouched");
        assert.deepEqual(first.socketPaths, [path]);
        (await greeted(path)).close();
      });
    });

    it(
      "a regular file or a directory at the path: start() fails with a clear error, leaves it alone",
      TEST,
      async () => {
        await inTempDir(async (dir) => {
          const path = join(dir, "smtp.sock");
          writeFileSync(path, "precious data");
          const server = makeServer(transport, { socketPaths: path });
          await assert.rejects(server.start(), (err: Error) => {
            assert.ok(err instanceof UnixSocketError, String(err));
            assert.equal(
              err.message,
              `cannot listen on Unix socket ${path}: a regular file is there, not a socket ` +
                "(left alone: remove it or choose another path)",
            );
            return true;
          });
          assert.equal(readFileSync(path, "utf8"), "precious data");
          assert.ok(server.isStopped());
          assert.deepEqual(server.socketPaths, []);
          // Nothing of the failed start is left over: with the file gone, the same server starts.
          rmSync(path);
          await server.start();
          try {
            (await greeted(path)).close();
          } finally {
            await stopNow(server);
          }

          const sub = join(dir, "sub");
          mkdirSync(sub);
          await assert.rejects(
            makeServer(transport, { socketPaths: sub }).start(),
            /a directory is there, not a socket/,
          );
          assert.ok(lstatSync(sub).isDirectory());
        });
      },
    );

    it("stop() leaves a file alone that replaced the socket meanwhile", TEST, async () => {
      await inTempDir(async (dir) => {
        const path = join(dir, "smtp.sock");
        const server = makeServer(transport, { socketPaths: path });
        await server.start();
        try {
          rmSync(path);
          writeFileSync(path, "someone else's");
        } finally {
          await stopNow(server);
        }
        assert.equal(readFileSync(path, "utf8"), "someone else's");
      });
    });

    it("per-IP limits do not apply: maxConnectionsPerIp 1 and three concurrent clients all get 220", TEST, async () => {
      await withUnixServer(
        transport,
        { maxConnectionsPerIp: 1, maxConnectionRatePerIp: 1 },
        async (server, path) => {
          const clients = await Promise.all([greeted(path), greeted(path), greeted(path)]);
          assert.equal(server.connections(), 3);
          for (const client of clients) assert.equal((await client.command("NOOP")).code, 250);
          // The limits are on: the second TCP client from 127.0.0.1 is refused.
          const tcp = await RawClient.connect(tcpPort(server));
          await tcp.expect(220);
          const refused = await RawClient.connect(tcpPort(server));
          assert.equal((await refused.reply()).code, 421);
          for (const client of [...clients]) client.close();
          tcp.close();
          refused.close();
        },
      );
    });

    it("no PROXY header is expected on the socket (proxyExtension on)", TEST, async () => {
      await withUnixServer(transport, { proxyExtension: true }, async (_server, path) => {
        const client = await greeted(path);
        assert.equal((await client.command("EHLO unix.example")).code, 250);
        client.close();
      });
    });

    it("Unix clients count against maxConnections", TEST, async () => {
      await withUnixServer(transport, { maxConnections: 1, maxProcessings: 1 }, async (server, path) => {
        const first = await greeted(path);
        const second = await UnixClient.connect(path);
        assert.equal((await second.reply()).code, 421);
        await second.waitClosed();
        assert.equal(server.connections(), 1);
        first.close();
      });
    });

    it("Unix clients wait for a processing slot (maxProcessings, queueTimeout)", TEST, async () => {
      await withUnixServer(transport, { maxProcessings: 1, queueTimeout: 0.3 }, async (server, path) => {
        const first = await greeted(path);
        const started = Date.now();
        const second = await UnixClient.connect(path);
        const reply = await second.reply();
        assert.equal(reply.code, 421, reply.raw);
        assert.ok(Date.now() - started >= 250, "refused only after queueTimeout");
        assert.equal(server.processings(), 1);
        first.close();
      });
    });
  });
}
