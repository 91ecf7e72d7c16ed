/**
 * Reads a PROXY protocol header off a fresh connection, with a deadline,
 * before anything is sent: the parsing itself is {@link parseProxyHeader}'s.
 *
 * @module
 */
import type { Connection } from "./transport/types.ts";
import { parseProxyHeader, type ProxyHeader, ProxyProtocolError } from "./proxy_protocol.ts";
import { concatBytes } from "./bytes.ts";
import type { Deadlines } from "./session/deadlines.ts";

/** A header and the client bytes that came behind it in the same reads. */
export interface ProxyHeaderRead {
  /** What the proxy said. */
  readonly header: ProxyHeader;
  /** Bytes after the header (SMTP commands, or a TLS ClientHello): they belong to the session. */
  readonly rest: Uint8Array;
}

/** Largest v2 header accepted (16 bytes + addresses + TLVs). */
export const MAX_PROXY_HEADER = 4096;

/**
 * Reads until `conn` has sent a whole, valid header. Rejects with a
 * {@link ProxyProtocolError} when it is malformed, the client closes first,
 * or `timeoutMs` passes (then `conn` is closed); the caller closes the
 * connection on any rejection. `deadlines` is the server's shared clock: a
 * timer and a promise race per connection cost more than the header itself.
 */
export async function readProxyHeader(
  conn: Connection,
  timeoutMs: number,
  deadlines: Deadlines,
): Promise<ProxyHeaderRead> {
  let timedOut = false;
  deadlines.set(conn, timeoutMs, () => {
    timedOut = true;
    conn.close(); // the pending read resolves null
  });
  try {
    let data: Uint8Array | undefined;
    for (;;) {
      const chunk = await conn.read();
      if (chunk === null) {
        throw new ProxyProtocolError(
          timedOut
            ? `no complete PROXY header within ${timeoutMs / 1000} s`
            : "connection closed before a complete PROXY header",
        );
      }
      data = data === undefined ? chunk : concatBytes([data, chunk]);
      const result = parseProxyHeader(data, MAX_PROXY_HEADER);
      if (result.status === "done") return { header: result.header, rest: data.subarray(result.consumed) };
    }
  } finally {
    deadlines.remove(conn);
  }
}
