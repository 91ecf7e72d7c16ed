/**
 * Hands accepted connections to the server's callback for the transports
 * that run their own accept loop (Deno, Bun).
 *
 * @module
 */
import type { Connection } from "./types.ts";

/**
 * Wraps `onConnection` so that a throw closes only that connection and is
 * reported asynchronously (as node:net would report it): the listener keeps
 * accepting.
 */
export function connectionDeliverer(onConnection: (conn: Connection) => void): (conn: Connection) => void {
  return (conn) => {
    try {
      onConnection(conn);
    } catch (err) {
      conn.close();
      queueMicrotask(() => {
        throw err;
      });
    }
  };
}
