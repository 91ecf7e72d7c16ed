/**
 * A connection with bytes in front: what the server read past the end of a
 * PROXY header is handed to the session as if it were still unread.
 *
 * @module
 */
import type { Connection, SocketAddress, TlsInfo, TlsServerOptions } from "./types.ts";
import { concatBytes } from "../bytes.ts";

/** Wraps `inner` so that the first `read()` returns `prefix`. */
export class PrefixedConnection implements Connection {
  #inner: Connection;
  #prefix: Uint8Array | undefined;

  /** @param inner the connection @param prefix bytes already read from it, returned first */
  constructor(inner: Connection, prefix: Uint8Array) {
    this.#inner = inner;
    this.#prefix = prefix.length > 0 ? prefix : undefined;
  }

  get localAddress(): SocketAddress {
    return this.#inner.localAddress;
  }

  get remoteAddress(): SocketAddress {
    return this.#inner.remoteAddress;
  }

  get tls(): TlsInfo | undefined {
    return this.#inner.tls;
  }

  read(): Promise<Uint8Array | null> {
    const prefix = this.#prefix;
    if (prefix) {
      this.#prefix = undefined;
      return Promise.resolve(prefix);
    }
    return this.#inner.read();
  }

  write(data: Uint8Array): Promise<void> {
    return this.#inner.write(data);
  }

  closeWrite(): Promise<void> {
    return this.#inner.closeWrite();
  }

  close(): void {
    this.#prefix = undefined;
    this.#inner.close();
  }

  startTls(options: TlsServerOptions, reply: Uint8Array): Promise<Connection> {
    // Unread bytes here came before the 220 to STARTTLS: plaintext that is dropped, never run.
    this.#prefix = undefined;
    return this.#inner.startTls(options, reply);
  }

  acceptTls(options: TlsServerOptions, received?: Uint8Array): Promise<Connection> {
    const prefix = this.#prefix;
    this.#prefix = undefined;
    const all = prefix === undefined ? received : received ? concatBytes([prefix, received]) : prefix;
    return this.#inner.acceptTls(options, all);
  }
}
