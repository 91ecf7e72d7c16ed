/**
 * Reads a PROXY protocol header off a fresh connection, with a deadline,
 * before anything is sent: the parsing itself is {@link parseProxyHeader}'s.
 *
 * @module
 */
import type { Connection } from "./transport/types.ts";
import { parseProxyHeader, type ProxyHeader, ProxyProtocolError } from "./proxy_protocol.ts";
import { concatBytes } from "./bytes.ts";

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
 * or `timeoutMs` passes; the caller closes the connection then.
 */
export async function readProxyHeader(conn: Connection, timeoutMs: number): Promise<ProxyHeaderRead> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), timeoutMs));
  try {
    let data: Uint8Array = new Uint8Array(0);
    for (;;) {
      const chunk = await Promise.race([conn.read(), timeout]);
      if (chunk === "timeout") {
        throw new ProxyProtocolError(`no complete PROXY header within ${timeoutMs / 1000} s`);
      }
      if (chunk === null) throw new ProxyProtocolError("connection closed before a complete PROXY header");
      data = data.length === 0 ? chunk : concatBytes([data, chunk]);
      const result = parseProxyHeader(data, MAX_PROXY_HEADER);
      if (result.status === "done") return { header: result.header, rest: data.subarray(result.consumed) };
    }
  } finally {
    clearTimeout(timer);
  }
}
