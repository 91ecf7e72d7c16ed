/**
 * A byte stream as a node `Duplex`, so that `node:tls` can run a server
 * handshake over it. This is how TLS reaches the sockets node:tls cannot take
 * itself: every Deno and Bun connection, and on node:net a connection whose
 * first bytes were already read (the ClientHello that the SNI path peeks at,
 * or one that arrived behind a PROXY header). Those bytes are replayed first.
 *
 * @module
 */
import { Duplex } from "node:stream";
import { setImmediate } from "node:timers";

/**
 * What the duplex reads from and writes to. Any `Connection` is one; the
 * Deno transport passes its raw `Deno.Conn` behind a reused read buffer
 * instead, which is faster for TLS than its plain connection's reads.
 */
export interface ByteSource {
  /** The next bytes (the duplex keeps the array), or `null` at EOF; a rejection destroys the duplex. */
  read(): Promise<Uint8Array | null>;
  /** Writes all of `data`; resolves once it is sent. */
  write(data: Uint8Array): Promise<void>;
  /** Sends FIN; reading goes on. */
  closeWrite(): Promise<void>;
  /** Closes both directions; must not throw. */
  close(): void;
}

/** A {@link ByteSource} as a node `Duplex`, pulled one `read()` at a time when the TLS layer asks. */
export class ConnectionDuplex extends Duplex {
  #source: ByteSource;
  #replay: Uint8Array | undefined;

  /** `replay`: bytes already read from `source` that the TLS layer gets first. */
  constructor(source: ByteSource, replay?: Uint8Array) {
    super({ allowHalfOpen: true });
    this.#source = source;
    this.#replay = replay !== undefined && replay.length > 0 ? replay : undefined;
  }

  override _read(): void {
    const replay = this.#replay;
    if (replay) {
      this.#replay = undefined;
      // Not at once: Deno's TLSSocket (2.9) hands input that is already buffered
      // to the handshake inside its _start() (a tick after construction) and,
      // if that input fails the handshake there, crashes the whole process
      // (TypeError: its _handle is gone). Pushed a macrotask later, the bytes
      // come after _start(), like any read from a socket.
      setImmediate(() => {
        if (!this.destroyed) this.push(replay);
      });
      return;
    }
    // Pulled, not flowing: nothing is taken off the socket before TLS asks for it.
    this.#source.read().then((chunk) => {
      if (!this.destroyed) this.push(chunk);
    }, (err) => this.destroy(err));
  }

  override _write(chunk: Uint8Array, _encoding: string, callback: (err?: Error | null) => void): void {
    this.#source.write(chunk).then(() => callback(), callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    // The peer may already be gone: a failed FIN is not an error worth reporting.
    this.#source.closeWrite().then(() => callback(), () => callback());
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.#source.close();
    callback(err);
  }
}
