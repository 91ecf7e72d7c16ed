/**
 * Picking the certificate for SNI by reading the TLS ClientHello ourselves.
 * Bun 1.4's node:tls ignores `SNICallback` when it runs over a wrapped stream
 * (a `Duplex`), which is how Bun's own connections, and on any runtime a
 * connection whose first bytes were already read (behind a PROXY header), get
 * TLS. So with `options.sni` the ClientHello is read first, the certificate
 * chosen by its server name, and the bytes replayed into the TLS layer. Reads
 * are pull-based, so that is cheap and exact.
 *
 * @module
 */
import { concatBytes } from "../bytes.ts";
import type { Connection, TlsServerOptions } from "./types.ts";

/** Longest ClientHello read while looking for the SNI name (real ones are well under 2 KiB). */
const CLIENT_HELLO_LIMIT = 64 * 1024;
/** Handshake deadline when the options give none (as in node_tls.ts, which this parser does not import). */
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
const EMPTY = new Uint8Array(0);

/**
 * The TLS options to run the handshake over `conn` with, and the bytes to
 * replay into it first: `initial` as given, or, with `options.sni`, the whole
 * ClientHello (starting with `initial`) and the certificate its server name
 * picks. Closes `conn` and rejects if no ClientHello comes in time.
 */
export async function certificateByClientHello(
  conn: Connection,
  options: TlsServerOptions,
  initial: Uint8Array | undefined,
): Promise<{ tlsOptions: TlsServerOptions; replay: Uint8Array | undefined }> {
  if (!options.sni) return { tlsOptions: options, replay: initial };
  const timeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const started = Date.now();
  try {
    const [replay, serverName] = await readClientHello(conn, timeoutMs, initial ?? EMPTY);
    const picked = options.sni(serverName);
    const tlsOptions = {
      ...options,
      ...(picked && { cert: picked.cert, key: picked.key }),
      sni: undefined,
      handshakeTimeoutMs: Math.max(1, timeoutMs - (Date.now() - started)),
    };
    return { tlsOptions, replay };
  } catch (err) {
    conn.close();
    throw err;
  }
}

/**
 * Reads until `conn` holds a whole ClientHello; returns its bytes (to replay)
 * and its SNI name (`""` if none). Fails on EOF or after `timeoutMs`.
 */
async function readClientHello(
  conn: Connection,
  timeoutMs: number,
  initial: Uint8Array,
): Promise<[Uint8Array, string]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => {
      timedOut = true;
      resolve(null);
    }, timeoutMs);
  });
  try {
    let data: Uint8Array = initial;
    for (;;) {
      if (data.length > 0) {
        const name = clientHelloServerName(data);
        if (name !== undefined) return [data, name];
        if (data.length > CLIENT_HELLO_LIMIT) return [data, ""]; // not a sane ClientHello: let TLS fail it
      }
      const chunk = await Promise.race([conn.read(), timeout]);
      if (chunk === null) {
        throw new Error(timedOut ? "TLS handshake timed out" : "connection closed during the TLS handshake");
      }
      data = data.length === 0 ? chunk : concatBytes([data, chunk]);
    }
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The SNI host name in the TLS ClientHello at the start of `data`:
 * `undefined` while more bytes are needed, `""` when there is none (or the
 * bytes are not a ClientHello, which the TLS layer will then reject).
 */
export function clientHelloServerName(data: Uint8Array): string | undefined {
  // The handshake message may span several records (content type 22): join their payloads.
  const parts: Uint8Array[] = [];
  let size = 0;
  let need = -1;
  let offset = 0;
  while (need < 0 || size < need) {
    if (data.length < offset + 5) return undefined;
    if (data[offset] !== 22) return "";
    const length = (data[offset + 3] << 8) | data[offset + 4];
    if (data.length < offset + 5 + length) return undefined;
    parts.push(data.subarray(offset + 5, offset + 5 + length));
    size += length;
    offset += 5 + length;
    if (need < 0 && size >= 4) {
      const head = concatBytes(parts);
      if (head[0] !== 1) return ""; // not a ClientHello
      need = 4 + ((head[1] << 16) | (head[2] << 8) | head[3]);
    }
  }
  const hello = concatBytes(parts).subarray(4, need);
  // client_version (2), random (32), then session_id, cipher_suites and
  // compression_methods, each behind a 1- or 2-byte length, then extensions.
  let p = 34;
  const skip = (lengthBytes: 1 | 2): boolean => {
    if (p + lengthBytes > hello.length) return false;
    p += lengthBytes + (lengthBytes === 1 ? hello[p] : (hello[p] << 8) | hello[p + 1]);
    return p <= hello.length;
  };
  if (!skip(1) || !skip(2) || !skip(1) || p + 2 > hello.length) return "";
  const end = Math.min(hello.length, p + 2 + ((hello[p] << 8) | hello[p + 1]));
  p += 2;
  while (p + 4 <= end) {
    const type = (hello[p] << 8) | hello[p + 1];
    const length = (hello[p + 2] << 8) | hello[p + 3];
    p += 4;
    if (type === 0) {
      // server_name: list length (2), name_type (1; 0 = host_name), name length (2), name
      const nameLength = (hello[p + 3] << 8) | hello[p + 4];
      if (length < 5 || hello[p + 2] !== 0 || 5 + nameLength > length || p + length > end) return "";
      return new TextDecoder().decode(hello.subarray(p + 5, p + 5 + nameLength));
    }
    p += length;
  }
  return "";
}
