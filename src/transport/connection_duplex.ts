/**
 * Any {@link Connection} as a node `Duplex`, so that `node:tls` can run a
 * server handshake over it. Used where the TLS layer must read bytes that
 * were already taken off the socket: the ClientHello that Bun's SNI path
 * peeks at, and a ClientHello that arrived behind a PROXY header.
 *
 * @module
 */
import { Duplex } from "node:stream";
import type { Connection } from "./types.ts";

/** A {@link Connection} as a node `Duplex`, pulled one `read()` at a time. */
export class ConnectionDuplex extends Duplex {
  #conn: Connection;
  #replay: Uint8Array | undefined;

  /** `replay`: bytes already read from `conn` that the TLS layer gets first. */
  constructor(conn: Connection, replay?: Uint8Array) {
    super({ allowHalfOpen: true });
    this.#conn = conn;
    this.#replay = replay !== undefined && replay.length > 0 ? replay : undefined;
  }

  override _read(): void {
    const replay = this.#replay;
    if (replay) {
      this.#replay = undefined;
      this.push(replay);
      return;
    }
    this.#conn.read().then((chunk) => {
      if (!this.destroyed) this.push(chunk);
    }, (err) => this.destroy(err));
  }

  override _write(chunk: Uint8Array, _encoding: string, callback: (err?: Error | null) => void): void {
    this.#conn.write(chunk).then(() => callback(), callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    // The peer may already be gone: a failed FIN is not an error worth reporting.
    this.#conn.closeWrite().then(() => callback(), () => callback());
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.#conn.close();
    callback(err);
  }
}
