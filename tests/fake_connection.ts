/**
 * A scripted, in-memory {@link Connection} for the transport unit tests: the
 * test feeds what the "client" sends with `feed()`/`end()` and looks at what
 * was written, closed and upgraded.
 */
import type { Connection, SocketAddress, TlsInfo, TlsServerOptions } from "../src/transport/types.ts";

const ADDRESS: SocketAddress = { hostname: "127.0.0.1", port: 2525, family: "IPv4" };

/** A {@link Connection} whose reads come from `feed()` and whose writes are recorded. */
export class FakeConnection implements Connection {
  readonly localAddress: SocketAddress = ADDRESS;
  readonly remoteAddress: SocketAddress = { ...ADDRESS, port: 40000 };
  readonly tls: TlsInfo | undefined = undefined;
  /** Everything written, one entry per `write()`. */
  readonly written: Uint8Array[] = [];
  /** How often `closeWrite()` / `close()` were called. */
  closeWrites = 0;
  closes = 0;
  /** The arguments of the last `startTls()` / `acceptTls()`. */
  startedTls: { options: TlsServerOptions; reply: Uint8Array } | undefined;
  acceptedTls: { options: TlsServerOptions; received: Uint8Array | undefined } | undefined;
  /** Set to make the next `read()` reject with it. */
  readError: Error | undefined;
  #chunks: Array<Uint8Array | null> = [];
  #waiter: ((chunk: Uint8Array | null) => void) | undefined;

  /** Makes `chunk` the next read (or hands it to a pending one). */
  feed(chunk: Uint8Array): void {
    this.#deliver(chunk);
  }

  /** Ends the input: reads give `null` from here on. */
  end(): void {
    this.#deliver(null);
  }

  #deliver(chunk: Uint8Array | null): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    if (waiter) waiter(chunk);
    else this.#chunks.push(chunk);
  }

  read(): Promise<Uint8Array | null> {
    if (this.readError) return Promise.reject(this.readError);
    if (this.#chunks.length > 0) {
      const chunk = this.#chunks[0];
      if (chunk !== null) this.#chunks.shift(); // EOF stays: every later read gives null too
      return Promise.resolve(chunk);
    }
    if (this.closes > 0) return Promise.resolve(null);
    return new Promise((resolve) => this.#waiter = resolve);
  }

  write(data: Uint8Array): Promise<void> {
    if (this.closes > 0) return Promise.reject(new Error("connection closed"));
    this.written.push(data);
    return Promise.resolve();
  }

  closeWrite(): Promise<void> {
    this.closeWrites++;
    return Promise.resolve();
  }

  close(): void {
    this.closes++;
    this.#deliver(null);
  }

  startTls(options: TlsServerOptions, reply: Uint8Array): Promise<Connection> {
    this.startedTls = { options, reply };
    return Promise.resolve(this);
  }

  acceptTls(options: TlsServerOptions, received?: Uint8Array): Promise<Connection> {
    this.acceptedTls = { options, received };
    return Promise.resolve(this);
  }
}

/** The bytes of `text` (latin1). */
export function bytes(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/** `data` as a latin1 string. */
export function text(data: Uint8Array | null | undefined): string | null {
  return data == null ? null : String.fromCharCode(...data);
}
