/**
 * The load generator's engine: `sessions` concurrent SMTP client slots, each
 * a small state machine over one `node:net` socket at a time, sharing one
 * pool of messages. Every reply code is checked (220, the EHLO 250, 250 per
 * MAIL and RCPT, 354, 250 after the dot, 221; with BDAT 250 per chunk and
 * 250 after the LAST one, in place of 354 and the dot); any other reply, a lost
 * connection or a socket error counts as a failure, fails the message in
 * progress and the slot goes on with a new connection. A message is claimed
 * before it is tried, so a dead server ends the run instead of looping.
 * With `proxyHeader`, every connection first writes a PROXY protocol header
 * (as a balancer in front of the server would), then waits for the 220.
 * With `connect`, connections are opened by that function instead of plain
 * TCP (TLS: see tls.ts). With a wire built for BDAT (`bdatChunk`), the
 * message goes as BDAT chunks and the server must offer CHUNKING.
 *
 * @module
 */
import * as net from "node:net";
import { performance } from "node:perf_hooks";
import type { Buffer } from "node:buffer";
import type { Wire } from "./message.ts";
import type { ProxyVersion } from "./proxy.ts";
import { type ReplyHandler, ReplyParser } from "./replies.ts";

/** What one load run does. */
export interface LoadOptions {
  /** Server address. */
  readonly host: string;
  /** Server port. */
  readonly port: number;
  /** Concurrent connections. */
  readonly sessions: number;
  /** Messages to send in total. */
  readonly messages: number;
  /** Messages per connection before QUIT and a new connection; 0 keeps each connection for as many as it gets. */
  readonly perConnection: number;
  /** Recipients per message. */
  readonly recipients: number;
  /**
   * Send MAIL, the RCPTs and DATA in one write (when the server offers PIPELINING), else one command at a time.
   * With BDAT, MAIL, the RCPTs and every chunk go in one write; else each chunk waits for the previous one's 250.
   */
  readonly pipelining: boolean;
  /**
   * Send the message with BDAT (RFC 3030) in chunks of this many bytes, 0 for one `BDAT <size> LAST`; absent: DATA.
   * Only says what the wire holds (build it with `buildWire(..., bdatChunk)`): the load itself follows the wire.
   */
  readonly bdatChunk?: number;
  /** Give up after this many milliseconds (the result says `timedOut`). */
  readonly timeoutMs: number;
  /** Send a PROXY protocol header of this version as the first bytes of every connection (default: none). */
  readonly proxyHeader?: ProxyVersion;
  /** Opens each connection (default: plain TCP to host:port). Not with `proxyHeader`. */
  readonly connect?: Connector;
}

/**
 * Opens one connection another way than plain TCP (e.g. implicit TLS, or
 * STARTTLS): resolves with the socket the session goes on with, or rejects
 * with what went wrong (counted as the connection's failure).
 */
export type Connector = (host: string, port: number) => Promise<Connected>;

/** A connection opened by a {@link Connector}. */
export interface Connected {
  /** The socket the session goes on with; nothing may have been read off it past what `greeted` says. */
  readonly socket: net.Socket;
  /**
   * The greeting has been read already (and more: after STARTTLS the session
   * starts over, RFC 3207), so the session goes on with EHLO, not with waiting for the 220.
   */
  readonly greeted: boolean;
}

/** What one load run measured. */
export interface LoadResult {
  /** Messages the server accepted (250 after the dot). */
  okMessages: number;
  /** Messages that failed (an unexpected reply or a lost connection while they were in progress). */
  failedMessages: number;
  /** Every unexpected reply, lost connection or socket error, the QUIT reply included. */
  failures: number;
  /** The first failure, described. */
  firstFailure: string | undefined;
  /** Connections opened. */
  connections: number;
  /** Connections where PIPELINING was asked for but the server did not offer it (sent lock-step). */
  pipeliningUnavailable: number;
  /** Wall time from the first connect to the last reply, ms. */
  elapsedMs: number;
  /** Message bytes the server accepted (before dot-stuffing). */
  payloadBytes: number;
  /** The run hit `timeoutMs`. */
  timedOut: boolean;
}

const GREETING = 0, EHLO = 1, TXN = 2, QUIT = 3, CLOSED = 4, CONNECTING = 5;
const PIPELINING = "PIPELINING";
const CHUNKING = "CHUNKING";

/** Whether the EHLO line `buf[start, end)` is the keyword `word` (alone or with parameters), in any case. */
function isKeyword(buf: Uint8Array, start: number, end: number, word: string): boolean {
  const n = word.length;
  if (end - start < n || (end - start > n && buf[start + n] !== 0x20)) return false;
  for (let i = 0; i < n; i++) {
    // ASCII upper-casing: keywords are case-insensitive.
    if ((buf[start + i] & 0xdf) !== word.charCodeAt(i)) return false;
  }
  return true;
}

/** Shared state of one run. */
class Pool {
  remaining: number;
  activeSlots = 0;
  readonly result: LoadResult = {
    okMessages: 0,
    failedMessages: 0,
    failures: 0,
    firstFailure: undefined,
    connections: 0,
    pipeliningUnavailable: 0,
    elapsedMs: 0,
    payloadBytes: 0,
    timedOut: false,
  };
  stopped = false;
  onIdle: () => void = () => {};

  constructor(messages: number, readonly proxyHeaders: readonly Buffer[]) {
    this.remaining = messages;
  }

  /** The PROXY header of the next connection (they are taken in turn), or undefined without PROXY. */
  nextProxyHeader(): Buffer | undefined {
    const headers = this.proxyHeaders;
    return headers.length === 0 ? undefined : headers[this.result.connections % headers.length];
  }

  /** Takes one message from the pool; false when none is left. */
  claim(): boolean {
    if (this.stopped || this.remaining === 0) return false;
    this.remaining--;
    return true;
  }

  failure(what: string): void {
    this.result.failures++;
    this.result.firstFailure ??= what;
  }

  slotDone(): void {
    if (--this.activeSlots === 0) this.onIdle();
  }
}

/** One client slot: opens connections one after the other until the pool is empty. */
class Slot implements ReplyHandler {
  #socket: net.Socket | undefined;
  #parser = new ReplyParser();
  #phase = CLOSED;
  /** Replies received in the current transaction: 0 MAIL, 1..r RCPT, r+1 DATA, r+2 the dot (BDAT: r+1+i chunk i). */
  #step = 0;
  #sentOnConnection = 0;
  #hasMessage = false;
  #offersPipelining = false;
  #offersChunking = false;
  #pipelined = false;
  /** Counts `connect` calls, so that a connection that comes too late (after a timeout) is dropped. */
  #attempt = 0;

  constructor(readonly pool: Pool, readonly options: LoadOptions, readonly wire: Wire) {}

  /** Claims a message and connects; or ends the slot when the pool is empty. */
  start(): void {
    if (!this.pool.claim()) {
      this.pool.slotDone();
      return;
    }
    this.#hasMessage = true;
    this.#connect();
  }

  /** Drops the connection without counting anything (timeout). */
  abort(): void {
    this.#phase = CLOSED;
    this.#socket?.destroy();
    this.#socket = undefined;
  }

  #connect(): void {
    this.#parser.reset();
    this.#sentOnConnection = 0;
    const connector = this.options.connect;
    if (connector) {
      this.pool.result.connections++;
      this.#phase = CONNECTING;
      const attempt = ++this.#attempt;
      const current = () => this.#phase === CONNECTING && this.#attempt === attempt;
      connector(this.options.host, this.options.port).then(({ socket, greeted }) => {
        if (!current()) return socket.destroy();
        this.#attach(socket);
        if (greeted) this.#ehlo();
      }, (err: Error) => {
        // On one line: OpenSSL's messages end in a newline.
        if (current()) this.#fail(`connect: ${err.message.replace(/\s+/g, " ").trim()}`);
      });
      return;
    }
    const socket = net.connect({ host: this.options.host, port: this.options.port });
    const proxy = this.pool.nextProxyHeader();
    this.pool.result.connections++;
    this.#attach(socket);
    // The PROXY header goes out as soon as the connection is up (Node queues it until then), before the 220.
    if (proxy) socket.write(proxy);
  }

  /** Makes `socket` this slot's connection, waiting for the greeting. */
  #attach(socket: net.Socket): void {
    this.#socket = socket;
    this.#phase = GREETING;
    socket.setNoDelay(true);
    // Events of a socket this slot has already left behind are ignored.
    socket.on("data", (chunk: Buffer) => {
      if (this.#socket === socket) this.#parser.feed(chunk, this);
    });
    socket.on("error", (err: Error & { code?: string }) => {
      if (this.#socket === socket) this.#fail(`socket error: ${err.code ?? err.message}`);
    });
    socket.on("close", () => {
      if (this.#socket === socket && this.#phase !== CLOSED) this.#fail(`connection closed by the server`);
    });
  }

  replyLine(buf: Uint8Array, start: number, end: number): void {
    if (isKeyword(buf, start, end, PIPELINING)) this.#offersPipelining = true;
    else if (isKeyword(buf, start, end, CHUNKING)) this.#offersChunking = true;
  }

  reply(code: number): void {
    switch (this.#phase) {
      case GREETING:
        if (code !== 220) return this.#fail(`greeting: expected 220, got ${code}`);
        return this.#ehlo();
      case EHLO:
        this.#parser.wantLines = false;
        if (code !== 250) return this.#fail(`EHLO: expected 250, got ${code}`);
        if (this.wire.chunks.length > 0 && !this.#offersChunking) return this.#fail("EHLO: CHUNKING not offered");
        this.#pipelined = this.options.pipelining && this.#offersPipelining;
        if (this.options.pipelining && !this.#offersPipelining) this.pool.result.pipeliningUnavailable++;
        this.#phase = TXN;
        return this.#startTransaction();
      case TXN:
        return this.#transactionReply(code);
      case QUIT:
        if (code !== 221) this.pool.failure(`QUIT: expected 221, got ${code}`);
        return this.#closeAndContinue(false);
    }
  }

  #ehlo(): void {
    this.#phase = EHLO;
    this.#offersPipelining = false;
    this.#offersChunking = false;
    this.#parser.wantLines = true;
    this.#socket!.write(this.wire.ehlo);
  }

  #startTransaction(): void {
    this.#step = 0;
    const wire = this.wire;
    const chunked = wire.chunks.length > 0;
    this.#socket!.write(this.#pipelined ? (chunked ? wire.chunkGroup : wire.group) : wire.mail);
  }

  #transactionReply(code: number): void {
    const r = this.options.recipients;
    const step = this.#step++;
    const chunks = this.wire.chunks;
    if (step <= r) {
      if (code !== 250) return this.#fail(`${step === 0 ? "MAIL" : "RCPT"}: expected 250, got ${code}`);
      if (!this.#pipelined) {
        this.#socket!.write(step < r ? this.wire.rcpts[step] : chunks.length > 0 ? chunks[0] : this.wire.data);
      }
      return;
    }
    if (chunks.length > 0) {
      // BDAT: a 250 per chunk; the one after the LAST chunk accepts the message.
      const chunk = step - r - 1;
      if (chunk < chunks.length - 1) {
        if (code !== 250) return this.#fail(`BDAT chunk ${chunk + 1}/${chunks.length}: expected 250, got ${code}`);
        if (!this.#pipelined) this.#socket!.write(chunks[chunk + 1]);
        return;
      }
      if (code !== 250) return this.#fail(`BDAT LAST: expected 250, got ${code}`);
    } else {
      if (step === r + 1) {
        if (code !== 354) return this.#fail(`DATA: expected 354, got ${code}`);
        this.#socket!.write(this.wire.body);
        return;
      }
      if (code !== 250) return this.#fail(`end of data: expected 250, got ${code}`);
    }
    const result = this.pool.result;
    result.okMessages++;
    result.payloadBytes += this.wire.payloadBytes;
    this.#hasMessage = false;
    this.#sentOnConnection++;
    const per = this.options.perConnection;
    if ((per === 0 || this.#sentOnConnection < per) && this.pool.claim()) {
      this.#hasMessage = true;
      this.#startTransaction();
    } else {
      this.#phase = QUIT;
      this.#socket!.write(this.wire.quit);
    }
  }

  /** Counts a failure, fails the message in progress, drops the connection and goes on. */
  #fail(what: string): void {
    this.pool.failure(what);
    if (this.#hasMessage) {
      this.pool.result.failedMessages++;
      this.#hasMessage = false;
    }
    this.#closeAndContinue(true);
  }

  #closeAndContinue(destroy: boolean): void {
    const socket = this.#socket;
    this.#phase = CLOSED;
    this.#socket = undefined;
    this.#parser.reset();
    // After a 221 the server closes too; end() lets both sides finish cleanly.
    if (destroy) socket?.destroy();
    else socket?.end();
    if (this.pool.stopped) return;
    // Next connection from a fresh stack, not from inside this socket's event handler.
    setImmediate(() => this.start());
  }
}

/**
 * Runs one load: resolves when every message has been tried (or on timeout).
 * With `options.proxyHeader`, `proxyHeaders` are the headers to send, taken
 * in turn, one per connection (see proxy.ts, `buildProxyHeaders`).
 */
export function runLoad(
  options: LoadOptions,
  wire: Wire,
  proxyHeaders: readonly Buffer[] = [],
): Promise<LoadResult> {
  if (options.proxyHeader !== undefined && proxyHeaders.length === 0) {
    return Promise.reject(new Error(`proxyHeader ${options.proxyHeader}: no PROXY headers given`));
  }
  if (options.proxyHeader !== undefined && options.connect) {
    return Promise.reject(new Error("proxyHeader and connect cannot go together"));
  }
  if ((options.bdatChunk !== undefined) !== (wire.chunks.length > 0)) {
    return Promise.reject(new Error("bdatChunk and the wire disagree: build the wire with buildWire(..., bdatChunk)"));
  }
  const pool = new Pool(options.messages, options.proxyHeader === undefined ? [] : proxyHeaders);
  const slots = Array.from({ length: Math.max(1, options.sessions) }, () => new Slot(pool, options, wire));
  pool.activeSlots = slots.length;
  return new Promise((resolve) => {
    const started = performance.now();
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      pool.result.elapsedMs = performance.now() - started;
      resolve(pool.result);
    };
    const timer = setTimeout(() => {
      pool.stopped = true;
      pool.result.timedOut = true;
      for (const slot of slots) slot.abort();
      finish();
    }, options.timeoutMs);
    pool.onIdle = finish;
    for (const slot of slots) slot.start();
  });
}
