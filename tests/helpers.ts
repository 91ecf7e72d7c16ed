/**
 * Test helpers shared by the suites: the transports to run every session
 * test with, a server started on a free port, and a raw SMTP client over
 * node:net (which works as a client in all three runtimes).
 */
import * as net from "node:net";
import * as tls from "node:tls";
import nodemailer from "nodemailer";
import assert from "node:assert/strict";
import { MidiSmtpServer, type MidiSmtpServerOptions } from "../mod.ts";
import { detectRuntime, loadTransport } from "../src/transport/detect.ts";
import type { Transport } from "../src/transport/types.ts";

/** The runtime running this test file. */
export const runtime = detectRuntime();

/** Every transport to test on this runtime: the native one, plus node:net where that is a different one. */
export async function transportsUnderTest(): Promise<Transport[]> {
  const native = await loadTransport(runtime);
  if (runtime === "node") return [native];
  return [native, await loadTransport("node")];
}

/** Loaded once per test file: use at module level with top-level await. */
export const TRANSPORTS: Transport[] = await transportsUnderTest();

/** Options that keep test servers quiet and on a free loopback port. */
export function testOptions(transport: Transport, options: MidiSmtpServerOptions = {}): MidiSmtpServerOptions {
  return {
    hosts: "127.0.0.1",
    ports: 0,
    transport,
    loggerSeverity: "fatal",
    onLoggingEvent() {},
    ...options,
  };
}

/** A started server and where to reach it. */
export interface RunningServer {
  server: MidiSmtpServer;
  host: string;
  port: number;
  /** Stops the server at once (non-graceful). */
  close(): Promise<void>;
}

/** Starts a server (or subclass instance) on a free port. */
export async function startServer(
  transport: Transport,
  options: MidiSmtpServerOptions = {},
  make: (o: MidiSmtpServerOptions) => MidiSmtpServer = (o) => new MidiSmtpServer(o),
): Promise<RunningServer> {
  const server = make(testOptions(transport, options));
  await server.start();
  const address = server.addresses[0];
  const colon = address.lastIndexOf(":");
  const host = address.slice(0, colon).replace(/^\[|\]$/g, "");
  const port = Number(address.slice(colon + 1));
  return { server, host, port, close: () => server.stop({ gracefully: false, waitSecondsBeforeClose: 0 }) };
}

/** One SMTP reply: its code and text lines (without the code). */
export interface Reply {
  code: number;
  lines: string[];
  /** The raw reply as received, CRLFs included. */
  raw: string;
}

const REPLY_LINE = /^(\d{3})([ -])(.*)$/;

/**
 * A raw SMTP client for exact wire tests: send bytes as you like (split,
 * pipelined, malformed) and read replies one by one.
 */
export class RawClient {
  #socket!: net.Socket;
  #buffer = "";
  #closed = false;
  #wake: (() => void) | undefined;
  #onData = (d: Buffer) => {
    this.#buffer += d.toString("latin1");
    this.#wake?.();
  };
  #onClose = () => {
    this.#closed = true;
    this.#wake?.();
  };

  private constructor(socket: net.Socket) {
    this.#attach(socket);
  }

  #attach(socket: net.Socket): void {
    this.#socket = socket;
    socket.on("data", this.#onData);
    socket.on("close", this.#onClose);
    socket.on("error", () => {});
  }

  /** Connects to `host:port`, from `localAddress` if given (e.g. `"127.0.0.2"`: another client address on loopback). */
  static connect(port: number, host = "127.0.0.1", localAddress?: string): Promise<RawClient> {
    return withTimeout(
      new Promise((resolve, reject) => {
        const socket = net.connect({ port, host, localAddress });
        socket.once("connect", () => resolve(new RawClient(socket)));
        socket.once("error", reject);
      }),
      5000,
      "TCP connect",
    );
  }

  /** Connects with implicit TLS (rejects if the handshake or the verification fails). */
  static connectTls(port: number, options: tls.ConnectionOptions, host = "127.0.0.1"): Promise<RawClient> {
    return withTimeout(
      new Promise((resolve, reject) => {
        const socket = tls.connect({ port, host, ...options }, () => resolve(new RawClient(socket)));
        socket.once("error", (err) => {
          socket.destroy();
          reject(err);
        });
      }),
      5000,
      "implicit TLS connect",
    );
  }

  /** The server's certificate (once TLS runs). */
  get peerCertificate(): tls.PeerCertificate {
    return (this.#socket as tls.TLSSocket).getPeerCertificate();
  }

  /** Runs the client side of a TLS handshake over the current socket (after the server's 220 to STARTTLS). */
  async upgradeTls(options: tls.ConnectionOptions): Promise<void> {
    const raw = this.#socket;
    raw.off("data", this.#onData);
    raw.off("close", this.#onClose);
    assert.equal(this.#buffer, "", "nothing may follow the 220 in plaintext");
    const secure = await withTimeout(
      new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect({ socket: raw, ...options }, () => resolve(s));
        s.once("error", (err) => {
          s.destroy();
          reject(err);
        });
      }),
      5000,
      "STARTTLS handshake",
    );
    this.#attach(secure);
  }

  /** STARTTLS, its 220, and the handshake. */
  async startTls(options: tls.ConnectionOptions): Promise<void> {
    const r = await this.command("STARTTLS");
    assert.equal(r.raw, "220 2.0.0 Ready to start TLS\r\n");
    await this.upgradeTls(options);
  }

  /** EHLO; returns the keywords (the reply lines after the first). */
  async ehlo(name = "client.example"): Promise<string[]> {
    const r = await this.command(`EHLO ${name}`);
    assert.equal(r.code, 250, r.raw);
    return r.lines.slice(1);
  }

  /** The client's own port (the server sees the connection come from it). */
  get localPort(): number {
    return this.#socket.localPort ?? 0;
  }

  /** Whether the server closed the connection. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Everything received and not yet read as a reply. */
  get pending(): string {
    return this.#buffer;
  }

  /** Sends text (as latin1: one char per byte) or bytes. */
  send(data: string | Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#socket.destroyed) return reject(new Error("socket closed"));
      this.#socket.write(
        typeof data === "string" ? Buffer.from(data, "latin1") : data,
        (err) => err ? reject(err) : resolve(),
      );
    });
  }

  /** Waits until `predicate(buffer)` holds, the socket closes, or `ms` passes. */
  async #waitFor(predicate: (buffer: string) => boolean, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!predicate(this.#buffer)) {
      if (this.#closed) return;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms; received so far: ${JSON.stringify(this.#buffer)}`);
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

  /** Reads the next complete reply (multi-line replies as one). */
  async reply(ms = 5000): Promise<Reply> {
    const complete = (buffer: string) => {
      let offset = 0;
      for (;;) {
        const eol = buffer.indexOf("\r\n", offset);
        if (eol < 0) return -1;
        const m = REPLY_LINE.exec(buffer.slice(offset, eol));
        offset = eol + 2;
        if (!m || m[2] === " ") return offset;
      }
    };
    await this.#waitFor((b) => complete(b) >= 0, ms);
    const end = complete(this.#buffer);
    if (end < 0) {
      throw new Error(`connection closed before a complete reply; received: ${JSON.stringify(this.#buffer)}`);
    }
    const raw = this.#buffer.slice(0, end);
    this.#buffer = this.#buffer.slice(end);
    const lines = raw.split("\r\n").slice(0, -1);
    const first = REPLY_LINE.exec(lines[0]);
    if (!first) throw new Error(`malformed reply: ${JSON.stringify(raw)}`);
    return { code: Number(first[1]), lines: lines.map((l) => l.slice(4)), raw };
  }

  /** Reads a reply and checks its code; returns it. */
  async expect(code: number, ms = 5000): Promise<Reply> {
    const r = await this.reply(ms);
    if (r.code !== code) throw new Error(`expected ${code}, got ${JSON.stringify(r.raw)}`);
    return r;
  }

  /** Sends a line (CRLF added) and returns the reply. */
  async command(line: string, ms = 5000): Promise<Reply> {
    await this.send(line + "\r\n");
    return await this.reply(ms);
  }

  /** Resolves once the server closed the connection (or after `ms`, then rejects). */
  async waitClosed(ms = 5000): Promise<void> {
    await this.#waitFor(() => false, ms).catch((err) => {
      if (!this.#closed) throw err;
    });
    if (!this.#closed) throw new Error("connection still open");
  }

  /** Closes the connection (only the outermost socket: destroying one that a TLSSocket wraps crashes Node 20). */
  close(): void {
    this.#socket.destroy();
  }

  /** Sends FIN and keeps reading (a half-close). */
  halfClose(): void {
    this.#socket.end();
  }

  /** Resets the connection (RST), as a client that vanishes. */
  reset(): void {
    this.#socket.resetAndDestroy();
  }
}

/** Connects, reads the 220 and sends EHLO; returns the client. */
export async function ehloClient(port: number, host = "127.0.0.1", name = "client.example"): Promise<RawClient> {
  const client = await RawClient.connect(port, host);
  await client.expect(220);
  await client.send(`EHLO ${name}\r\n`);
  await client.expect(250);
  return client;
}

/** Rejects with a message naming `what` if `promise` takes longer than `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) =>
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
    ),
  ]).finally(() => clearTimeout(timer));
}

/** A nodemailer transport, as the tests use it. */
export type Mailer = ReturnType<typeof nodemailer.createTransport>;

/** A nodemailer transport to `127.0.0.1:port` with 5 s timeouts, `extra` options on top. */
export function createMailer(port: number, extra: Record<string, unknown> = {}): Mailer {
  return nodemailer.createTransport(
    {
      host: "127.0.0.1",
      port,
      name: "nodemailer.example",
      connectionTimeout: 5000,
      greetingTimeout: 5000,
      socketTimeout: 5000,
      ...extra,
    } as Parameters<typeof nodemailer.createTransport>[0],
  );
}

/** Runs `body` with {@link createMailer}'s transport, then closes it. */
export async function withMailer(
  port: number,
  extra: Record<string, unknown>,
  body: (mailer: Mailer) => Promise<void>,
): Promise<void> {
  const mailer = createMailer(port, extra);
  try {
    await body(mailer);
  } finally {
    mailer.close();
  }
}

/** Sleeps `ms`. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Adds `text` to an error's message where every runner shows it: Node's reporter prints the stack, made
 * when the error was, so the stack's copy of the message is replaced as well.
 */
export function addToError(err: Error, text: string): void {
  const before = err.message;
  err.message += text;
  if (typeof err.stack === "string" && before !== "" && err.stack.includes(before)) {
    err.stack = err.stack.replace(before, err.message);
  } else if (typeof err.stack === "string") {
    err.stack += text;
  }
}
