/**
 * PROXY protocol (HAProxy, versions 1 and 2) header reader and writers. No
 * I/O: the caller buffers what arrives and asks again until the header is
 * complete, then keeps the bytes after it as the client's first data (a
 * client may send its EHLO or TLS ClientHello in the same segment).
 *
 * Every rule is checked as soon as the bytes for it are in: a connection
 * that starts with `GET /` is refused at its first byte, a bad v1 field at
 * the character that spoils it, a v2 length over the limit at byte 16, so a
 * stalled or hostile peer is never waited for longer than needed.
 *
 * @module
 */
import { concatBytes } from "./bytes.ts";
import { formatIp, parseDecimal, parseIp, parseIpText } from "./cidr.ts";

/** TLVs of a v2 header (all empty for v1). */
export interface ProxyTlvs {
  /** PP2_TYPE_ALPN: the protocol negotiated between client and proxy. */
  alpn?: string;
  /** PP2_TYPE_AUTHORITY: the host name the client asked for (usually its TLS SNI). */
  authority?: string;
  /** PP2_TYPE_UNIQUE_ID: the proxy's opaque id of the connection (at most 128 bytes). */
  uniqueId?: Uint8Array;
  /** PP2_TYPE_SSL: TLS between the client and the proxy (not on this socket). */
  ssl?: ProxySslInfo;
  /** PP2_TYPE_NETNS: the proxy-side network namespace. */
  netns?: string;
  /** PP2_TYPE_CRC32C: the checksum the header carried (already verified). */
  crc32c?: number;
  /** TLVs of types not listed above, in header order (NOOP padding is dropped). */
  raw: Array<{ type: number; value: Uint8Array }>;
}

/** The PP2_TYPE_SSL TLV: how the client talked TLS to the proxy. */
export interface ProxySslInfo {
  /** Bits: 0x01 the client used TLS, 0x02 it sent a certificate on this connection, 0x04 in this TLS session. */
  client: number;
  /** 0 when the client certificate was verified. */
  verify: number;
  /** TLS version, e.g. `"TLSv1.3"`. */
  version?: string;
  /** Common name of the client certificate. */
  cn?: string;
  /** Cipher suite name. */
  cipher?: string;
  /** Signature algorithm of the client certificate. */
  sigAlg?: string;
  /** Key algorithm of the client certificate. */
  keyAlg?: string;
}

/** A complete, valid PROXY header. */
export interface ProxyHeader {
  /** Protocol version of the header. */
  version: 1 | 2;
  /** "PROXY": addresses below are the real client's; "LOCAL" (v2 health check) and "UNKNOWN" (v1): keep the socket's own addresses. */
  command: "PROXY" | "LOCAL" | "UNKNOWN";
  /** The family the header declares (`"UNSPEC"` for LOCAL and UNKNOWN). */
  family: "IPv4" | "IPv6" | "UNSPEC";
  /** The real client's address, canonical; v4-mapped IPv6 is given as IPv4 even when `family` is `"IPv6"`. */
  sourceIp?: string;
  /** The real client's port. */
  sourcePort?: number;
  /** The address the client connected to (the proxy's listener), canonical as `sourceIp`. */
  destIp?: string;
  /** The port the client connected to. */
  destPort?: number;
  /** TLVs (v2 only; `raw: []` for v1). */
  tlvs: ProxyTlvs;
}

/** What {@link parseProxyHeader} found. */
export type ProxyParseResult =
  /** The bytes so far are a valid start: call again with more. */
  | { status: "incomplete" }
  /** A whole header: it is `bytes[0..consumed)`, the rest belongs to the client. */
  | { status: "done"; header: ProxyHeader; consumed: number };

/** The header is malformed, truncated by a wrong length, of a wrong version, or fails its checksum. */
export class ProxyProtocolError extends Error {
  /** What is wrong, in a few words (for the log). */
  readonly reason: string;

  /**
   * Creates the error.
   * @param reason what is wrong, in a few words
   */
  constructor(reason: string) {
    super(`Invalid PROXY protocol header: ${reason}`);
    this.name = "ProxyProtocolError";
    this.reason = reason;
  }
}

const CR = 0x0d;
const LF = 0x0a;
const INCOMPLETE: ProxyParseResult = Object.freeze({ status: "incomplete" });
const V2_SIGNATURE = new Uint8Array([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED = 16;
/** Longest v1 line, CRLF included: `PROXY UNKNOWN` with two full IPv6 addresses and 5-digit ports. */
const V1_MAX = 107;
const V1_PREFIX = "PROXY ";
const V1_PROTOCOLS = ["TCP4", "TCP6", "UNKNOWN"];
/** Address block size per v2 family/transport byte (TCP and UDP over IPv4 and IPv6, Unix stream and datagram). */
const V2_BLOCK: Readonly<Record<number, number>> = {
  0x00: 0,
  0x11: 12,
  0x12: 12,
  0x21: 36,
  0x22: 36,
  0x31: 216,
  0x32: 216,
};

const TLV_ALPN = 0x01;
const TLV_AUTHORITY = 0x02;
const TLV_CRC32C = 0x03;
const TLV_NOOP = 0x04;
const TLV_UNIQUE_ID = 0x05;
const TLV_SSL = 0x20;
const TLV_NETNS = 0x30;
const KNOWN_TLVS = new Set([TLV_ALPN, TLV_AUTHORITY, TLV_CRC32C, TLV_UNIQUE_ID, TLV_SSL, TLV_NETNS]);
const SSL_SUB_TLVS = { 0x21: "version", 0x22: "cn", 0x23: "cipher", 0x24: "sigAlg", 0x25: "keyAlg" } as const;
type SslText = (typeof SSL_SUB_TLVS)[keyof typeof SSL_SUB_TLVS];
const MAX_UNIQUE_ID = 128;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

// ---------------------------------------------------------------------------
// CRC32c (Castagnoli, RFC 4960 appendix B): reflected polynomial 0x82F63B78.

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** Runs the CRC register over `bytes` (no initial or final inversion). */
function crc32cUpdate(crc: number, bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) crc = CRC32C_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return crc;
}

/**
 * The CRC32c (Castagnoli) of `bytes`, as used by the PP2_TYPE_CRC32C TLV.
 *
 * @example
 * ```ts
 * crc32c(new TextEncoder().encode("123456789")); // => 0xe3069283
 * ```
 */
export function crc32c(bytes: Uint8Array): number {
  return (crc32cUpdate(0xffffffff, bytes) ^ 0xffffffff) >>> 0;
}

/** The CRC of a whole header with the 4 checksum bytes at `valueAt` taken as zero. */
function headerCrc(header: Uint8Array, valueAt: number): number {
  let crc = crc32cUpdate(0xffffffff, header.subarray(0, valueAt));
  crc = crc32cUpdate(crc, new Uint8Array(4));
  crc = crc32cUpdate(crc, header.subarray(valueAt + 4));
  return (crc ^ 0xffffffff) >>> 0;
}

// ---------------------------------------------------------------------------
// reading

function fail(reason: string): never {
  throw new ProxyProtocolError(reason);
}

/**
 * Reads a PROXY protocol header (v1 or v2) from the start of `bytes`, the
 * connection's first bytes as buffered so far.
 *
 * Returns `incomplete` only while the bytes can still become a valid header;
 * as soon as they cannot, it throws. On `done`, `consumed` is the exact
 * header length: keep `bytes.subarray(consumed)` as client data.
 *
 * @param bytes everything received so far (not only the newest chunk)
 * @param maxV2Length largest v2 header accepted, its 16 fixed bytes included (v1 is always at most 107)
 * @throws {ProxyProtocolError} when the bytes are not (the start of) a valid header
 *
 * @example
 * ```ts
 * const bytes = new TextEncoder().encode("PROXY TCP4 192.0.2.10 198.51.100.5 56324 25\r\nEHLO a\r\n");
 * const result = parseProxyHeader(bytes);
 * if (result.status === "done") {
 *   result.header.sourceIp; // => "192.0.2.10"
 *   new TextDecoder().decode(bytes.subarray(result.consumed)); // => "EHLO a\r\n"
 * }
 * parseProxyHeader(bytes.subarray(0, 10)); // => { status: "incomplete" }
 * ```
 */
export function parseProxyHeader(bytes: Uint8Array, maxV2Length = 4096): ProxyParseResult {
  if (bytes.length === 0) return INCOMPLETE;
  if (bytes[0] === V2_SIGNATURE[0]) return parseV2(bytes, maxV2Length);
  if (bytes[0] === V1_PREFIX.charCodeAt(0)) return parseV1(bytes);
  fail("not a PROXY protocol header");
}

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

function parseV1(bytes: Uint8Array): ProxyParseResult {
  const limit = Math.min(bytes.length, V1_MAX);
  let cr = -1;
  for (let i = 0; i < limit; i++) {
    // A lone LF or CR never ends the line (nor may stand inside it).
    if (bytes[i] === LF) fail("LF without CR");
    if (bytes[i] === CR) {
      cr = i;
      break;
    }
  }
  if (cr < 0) {
    // The CRLF can no longer fit in 107 bytes.
    if (bytes.length >= V1_MAX - 1) fail("v1 line longer than 107 bytes");
    checkV1Line(latin1(bytes), false);
    return INCOMPLETE;
  }
  if (cr + 2 > V1_MAX) fail("v1 line longer than 107 bytes");
  const header = checkV1Line(latin1(bytes.subarray(0, cr)), true);
  if (cr + 1 >= bytes.length) return INCOMPLETE;
  if (bytes[cr + 1] !== LF) fail("CR without LF");
  return { status: "done", header: header!, consumed: cr + 2 };
}

/**
 * Checks a v1 line without its CRLF. `complete`: the line ended there, so
 * it must be a whole header (returned); otherwise it is what arrived so far
 * and must merely be able to become one.
 */
function checkV1Line(line: string, complete: boolean): ProxyHeader | undefined {
  const head = Math.min(line.length, V1_PREFIX.length);
  if (line.slice(0, head) !== V1_PREFIX.slice(0, head)) fail("not a PROXY protocol header");
  if (line.length < V1_PREFIX.length) return complete ? fail("v1 line too short") : undefined;
  const fields = line.slice(V1_PREFIX.length).split(" ");
  const protocol = fields[0];
  if (!complete && fields.length === 1) {
    if (!V1_PROTOCOLS.some((p) => p.startsWith(protocol))) fail("unknown v1 protocol");
    return undefined;
  }
  // UNKNOWN: the rest of the line carries nothing we may trust.
  if (protocol === "UNKNOWN") {
    return complete ? { version: 1, command: "UNKNOWN", family: "UNSPEC", tlvs: { raw: [] } } : undefined;
  }
  if (protocol !== "TCP4" && protocol !== "TCP6") fail("unknown v1 protocol");
  if (fields.length > 5) fail("too many v1 fields");
  if (complete && fields.length < 5) fail("missing v1 fields");
  const family = protocol === "TCP4" ? "IPv4" : "IPv6";
  const values: Array<string | number> = [];
  for (let i = 1; i < fields.length; i++) {
    const field = fields[i];
    const partial = !complete && i === fields.length - 1;
    if (i <= 2) {
      if (partial) {
        if (!ipPrefixViable(field, family)) fail(`bad ${protocol} address`);
        continue;
      }
      // The text must be of the declared family; a v4-mapped TCP6 address is then given as IPv4.
      const parsed = parseIpText(field);
      if (!parsed || parsed.family !== family) fail(`bad ${protocol} address`);
      values.push(formatIp(parseIp(field)!));
    } else {
      const port = parseDecimal(field, 65535);
      if (port < 0 && !(partial && field === "")) fail("bad v1 port");
      values.push(port);
    }
  }
  if (!complete) return undefined;
  return {
    version: 1,
    command: "PROXY",
    family,
    sourceIp: values[0] as string,
    destIp: values[1] as string,
    sourcePort: values[2] as number,
    destPort: values[3] as number,
    tlvs: { raw: [] },
  };
}

/** Whether `text` can still grow into an address of `family` (the v1 field being received). */
function ipPrefixViable(text: string, family: "IPv4" | "IPv6"): boolean {
  if (text === "") return true;
  if (family === "IPv4") {
    if (text.includes(":")) return false;
    return parseIpText(completeIpv4(text) ?? "")?.family === "IPv4";
  }
  if (text.length > 45) return false;
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".")) {
    // A dotted tail is the last group: the text before it is fixed, the tail can only gain octets.
    const tail = completeIpv4(text.slice(lastColon + 1));
    return lastColon >= 0 && tail !== undefined && parseIpText(text.slice(0, lastColon + 1) + tail)?.family === "IPv6";
  }
  // Otherwise one of a few endings completes it if anything does: close a dangling ":", add the one
  // "::" or fill the remaining groups with zeros.
  for (const ending of ["", "0", ":", ":0", "::", "0::", "::0"]) {
    for (let zeros = 0; zeros < 8; zeros++) {
      if (parseIpText(text + ending + ":0".repeat(zeros))?.family === "IPv6") return true;
    }
  }
  return false;
}

/** `text` (a partial dotted quad) padded with zero octets, or undefined if it has too many parts. */
function completeIpv4(text: string): string | undefined {
  const parts = text.split(".");
  if (parts.length > 4) return undefined;
  if (parts[parts.length - 1] === "") parts[parts.length - 1] = "0";
  while (parts.length < 4) parts.push("0");
  return parts.join(".");
}

function parseV2(bytes: Uint8Array, maxLength: number): ProxyParseResult {
  const signatureBytes = Math.min(bytes.length, V2_SIGNATURE.length);
  for (let i = 0; i < signatureBytes; i++) if (bytes[i] !== V2_SIGNATURE[i]) fail("bad v2 signature");
  if (bytes.length <= 12) return INCOMPLETE;
  if (bytes[12] >> 4 !== 2) fail("unsupported version");
  const command = bytes[12] & 0x0f;
  if (command > 1) fail("unsupported v2 command");
  const local = command === 0;
  if (bytes.length <= 13) return INCOMPLETE;
  const familyByte = bytes[13];
  const block = V2_BLOCK[familyByte];
  // LOCAL ignores the family, but a value the spec never defined is garbage either way.
  if (block === undefined) fail("bad v2 family");
  if (!local && familyByte !== 0x00 && familyByte !== 0x11 && familyByte !== 0x21) {
    fail(familyByte >= 0x30 ? "unsupported v2 family (UNIX)" : "unsupported v2 transport (UDP)");
  }
  if (bytes.length < V2_FIXED) return INCOMPLETE;
  const length = (bytes[14] << 8) | bytes[15];
  const total = V2_FIXED + length;
  if (total > maxLength) fail(`v2 header of ${total} bytes over the limit of ${maxLength}`);
  if (!local && length < block) fail("v2 address block too short");
  // A LOCAL header too short for its family's addresses carries nothing we read: skip all of it.
  const tlvStart = length >= block ? V2_FIXED + block : total;
  const available = Math.min(bytes.length, total);
  const { tlvs, crcAt } = readTlvs(bytes, tlvStart, total, available);
  if (bytes.length < total) return INCOMPLETE;
  if (crcAt >= 0 && headerCrc(bytes.subarray(0, total), crcAt) !== tlvs.crc32c) fail("CRC32C mismatch");
  const header: ProxyHeader = { version: 2, command: local ? "LOCAL" : "PROXY", family: "UNSPEC", tlvs };
  if (!local && familyByte !== 0x00) {
    const size = familyByte === 0x11 ? 4 : 16;
    const at = V2_FIXED;
    header.family = size === 4 ? "IPv4" : "IPv6";
    header.sourceIp = ipFromBytes(bytes.subarray(at, at + size));
    header.destIp = ipFromBytes(bytes.subarray(at + size, at + 2 * size));
    header.sourcePort = (bytes[at + 2 * size] << 8) | bytes[at + 2 * size + 1];
    header.destPort = (bytes[at + 2 * size + 2] << 8) | bytes[at + 2 * size + 3];
  }
  return { status: "done", header, consumed: total };
}

/** Canonical text of 4 or 16 address bytes; v4-mapped IPv6 becomes IPv4. */
function ipFromBytes(bytes: Uint8Array): string {
  const text = formatIp({ family: bytes.length === 4 ? "IPv4" : "IPv6", bytes });
  return formatIp(parseIp(text)!);
}

/**
 * Reads the TLVs in `bytes[start..end)` of which `bytes[..available)` have
 * arrived; every TLV that is complete is checked now, one that would run
 * past `end` is refused as soon as its length is in.
 */
function readTlvs(
  bytes: Uint8Array,
  start: number,
  end: number,
  available: number,
): { tlvs: ProxyTlvs; crcAt: number } {
  const tlvs: ProxyTlvs = { raw: [] };
  const seen = new Set<number>();
  let crcAt = -1;
  for (let pos = start; pos < end;) {
    // A TLV is at least 3 bytes: a shorter tail is not padding but garbage.
    if (pos + 3 > end) fail("truncated TLV");
    if (pos + 3 > available) break;
    const type = bytes[pos];
    const valueAt = pos + 3;
    const valueEnd = valueAt + ((bytes[pos + 1] << 8) | bytes[pos + 2]);
    if (valueEnd > end) fail(`TLV 0x${type.toString(16)} runs past the header`);
    if (valueEnd > available) break;
    const value = bytes.subarray(valueAt, valueEnd);
    // Two of a kind would leave it open which one counts (and which CRC bytes to zero).
    if (KNOWN_TLVS.has(type)) {
      if (seen.has(type)) fail(`duplicate TLV 0x${type.toString(16)}`);
      seen.add(type);
    }
    switch (type) {
      case TLV_ALPN:
        tlvs.alpn = text(value, "ALPN");
        break;
      case TLV_AUTHORITY:
        tlvs.authority = text(value, "AUTHORITY");
        break;
      case TLV_CRC32C:
        if (value.length !== 4) fail("CRC32C TLV is not 4 bytes");
        tlvs.crc32c = readUint32(value, 0);
        crcAt = valueAt;
        break;
      case TLV_NOOP:
        break;
      case TLV_UNIQUE_ID:
        if (value.length > MAX_UNIQUE_ID) fail("UNIQUE_ID TLV longer than 128 bytes");
        tlvs.uniqueId = value.slice();
        break;
      case TLV_SSL:
        tlvs.ssl = readSsl(value);
        break;
      case TLV_NETNS:
        tlvs.netns = text(value, "NETNS");
        break;
      default:
        // Copies: the caller's buffer may be reused once the header is consumed.
        tlvs.raw.push({ type, value: value.slice() });
    }
    pos = valueEnd;
  }
  return { tlvs, crcAt };
}

function readUint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
}

function text(value: Uint8Array, name: string): string {
  try {
    return utf8.decode(value);
  } catch {
    fail(`${name} TLV is not UTF-8`);
  }
}

function readSsl(value: Uint8Array): ProxySslInfo {
  if (value.length < 5) fail("SSL TLV shorter than 5 bytes");
  const ssl: ProxySslInfo = { client: value[0], verify: readUint32(value, 1) };
  const seen = new Set<number>();
  for (let pos = 5; pos < value.length;) {
    if (pos + 3 > value.length) fail("truncated SSL sub-TLV");
    const type = value[pos];
    const end = pos + 3 + ((value[pos + 1] << 8) | value[pos + 2]);
    if (end > value.length) fail(`SSL sub-TLV 0x${type.toString(16)} runs past the SSL TLV`);
    const key: SslText | undefined = (SSL_SUB_TLVS as Record<number, SslText>)[type];
    if (key) {
      if (seen.has(type)) fail(`duplicate SSL sub-TLV 0x${type.toString(16)}`);
      seen.add(type);
      ssl[key] = text(value.subarray(pos + 3, end), `SSL sub-TLV 0x${type.toString(16)}`);
    }
    pos = end;
  }
  return ssl;
}

// ---------------------------------------------------------------------------
// writing (tests, soak scripts, a proxy of your own)

/** The header fields the writers take; a parsed {@link ProxyHeader} fits too. */
export interface ProxyHeaderInit {
  /** `"UNKNOWN"` is v1 only, `"LOCAL"` v2 only. */
  command: "PROXY" | "LOCAL" | "UNKNOWN";
  /** Required for PROXY in v1; in v2 `"UNSPEC"` (the default) sends no addresses. */
  family?: "IPv4" | "IPv6" | "UNSPEC";
  /** Client address (an IPv4 one is written v4-mapped when `family` is `"IPv6"`). */
  sourceIp?: string;
  /** Client port. */
  sourcePort?: number;
  /** Server-side address. */
  destIp?: string;
  /** Server-side port. */
  destPort?: number;
}

/** TLVs for {@link buildProxyHeaderV2}; a parsed {@link ProxyTlvs} fits too. */
export interface ProxyTlvsInit {
  /** PP2_TYPE_ALPN. */
  alpn?: string;
  /** PP2_TYPE_AUTHORITY. */
  authority?: string;
  /** PP2_TYPE_UNIQUE_ID, at most 128 bytes. */
  uniqueId?: Uint8Array;
  /** PP2_TYPE_SSL with its sub-TLVs. */
  ssl?: ProxySslInfo;
  /** PP2_TYPE_NETNS. */
  netns?: string;
  /** `true`: add a PP2_TYPE_CRC32C with the right checksum; a number: add one holding that value (e.g. a wrong one). */
  crc32c?: boolean | number;
  /** More TLVs written as given after the ones above: any type, NOOP padding or a duplicate included. */
  raw?: ReadonlyArray<{ type: number; value: Uint8Array }>;
}

function checkPort(port: number | undefined, name: string): number {
  if (port === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new TypeError(`${name} must be an integer 0..65535, got ${port}`);
  }
  return port;
}

/** The address bytes of `ip` for `family` (IPv4 written v4-mapped into IPv6). */
function addressBytes(ip: string | undefined, family: "IPv4" | "IPv6", name: string): Uint8Array {
  const parsed = ip === undefined ? undefined : parseIp(ip);
  if (!parsed || (family === "IPv4" && parsed.family !== "IPv4")) {
    throw new TypeError(`${name} must be an ${family} address, got ${ip}`);
  }
  if (family === "IPv4" || parsed.family === "IPv6") return parsed.bytes;
  const mapped = new Uint8Array(16);
  mapped[10] = mapped[11] = 0xff;
  mapped.set(parsed.bytes, 12);
  return mapped;
}

/**
 * Encodes a v1 header line (`PROXY TCP4 ...\r\n` or `PROXY UNKNOWN\r\n`).
 *
 * @example
 * ```ts
 * const header = buildProxyHeaderV1({
 *   command: "PROXY", family: "IPv4", sourceIp: "192.0.2.10", sourcePort: 56324, destIp: "198.51.100.5", destPort: 25,
 * });
 * new TextDecoder().decode(header); // => "PROXY TCP4 192.0.2.10 198.51.100.5 56324 25\r\n"
 * ```
 */
export function buildProxyHeaderV1(h: ProxyHeaderInit): Uint8Array {
  if (h.command === "UNKNOWN") return encoder.encode("PROXY UNKNOWN\r\n");
  if (h.command !== "PROXY") throw new TypeError(`A v1 header has no ${h.command} command (use UNKNOWN)`);
  if (h.family !== "IPv4" && h.family !== "IPv6") throw new TypeError("A v1 PROXY header needs family IPv4 or IPv6");
  const family = h.family;
  const ip = (text: string | undefined, name: string) => {
    const bytes = addressBytes(text, family, name);
    return formatIp({ family, bytes });
  };
  const fields = [
    family === "IPv4" ? "TCP4" : "TCP6",
    ip(h.sourceIp, "sourceIp"),
    ip(h.destIp, "destIp"),
    checkPort(h.sourcePort, "sourcePort"),
    checkPort(h.destPort, "destPort"),
  ];
  return encoder.encode(`PROXY ${fields.join(" ")}\r\n`);
}

function tlv(type: number, value: Uint8Array): Uint8Array {
  if (!Number.isInteger(type) || type < 0 || type > 255) throw new TypeError(`TLV type must be 0..255, got ${type}`);
  if (value.length > 65535) throw new TypeError(`TLV 0x${type.toString(16)} longer than 65535 bytes`);
  const out = new Uint8Array(3 + value.length);
  out[0] = type;
  out[1] = value.length >> 8;
  out[2] = value.length & 0xff;
  out.set(value, 3);
  return out;
}

function uint32(value: number, name: string): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new TypeError(`${name} must be an integer 0..2^32-1, got ${value}`);
  }
  return new Uint8Array([value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff]);
}

function sslValue(ssl: ProxySslInfo): Uint8Array {
  if (!Number.isInteger(ssl.client) || ssl.client < 0 || ssl.client > 255) {
    throw new TypeError(`ssl.client must be 0..255, got ${ssl.client}`);
  }
  const parts = [new Uint8Array([ssl.client]), uint32(ssl.verify, "ssl.verify")];
  for (const [type, key] of Object.entries(SSL_SUB_TLVS)) {
    const value = ssl[key];
    if (value !== undefined) parts.push(tlv(Number(type), encoder.encode(value)));
  }
  return concatBytes(parts);
}

/**
 * Encodes a v2 header: addresses for PROXY with family IPv4/IPv6, then the
 * TLVs in type order (ALPN, AUTHORITY, CRC32C, UNIQUE_ID, SSL, NETNS), then
 * `tlvs.raw` as given. LOCAL writes the addresses only if `family` is set.
 *
 * @example
 * ```ts
 * const local = buildProxyHeaderV2({ command: "LOCAL" }); // the 12-byte signature, 0x20, 0x00, length 0
 * local.length; // => 16
 * local.subarray(12); // => new Uint8Array([0x20, 0x00, 0x00, 0x00])
 * const proxied = buildProxyHeaderV2({
 *   command: "PROXY", family: "IPv6", sourceIp: "2001:db8::1", sourcePort: 40000, destIp: "2001:db8::25", destPort: 25,
 * }, { authority: "mx.example.com", crc32c: true });
 * const parsed = parseProxyHeader(proxied);
 * parsed.status === "done" && parsed.header.tlvs.authority; // => "mx.example.com"
 * ```
 */
export function buildProxyHeaderV2(h: ProxyHeaderInit, tlvs: ProxyTlvsInit = {}): Uint8Array {
  if (h.command !== "PROXY" && h.command !== "LOCAL") {
    throw new TypeError(`A v2 header has no ${h.command} command (use LOCAL)`);
  }
  const family = h.family ?? "UNSPEC";
  if (family !== "IPv4" && family !== "IPv6" && family !== "UNSPEC") throw new TypeError(`Unknown family ${family}`);
  const parts: Uint8Array[] = [];
  if (family !== "UNSPEC") {
    const size = family === "IPv4" ? 4 : 16;
    // A LOCAL header's addresses are ignored by the receiver: zeros stand in for missing ones.
    const lax = h.command === "LOCAL";
    const address = (ip: string | undefined, name: string) =>
      lax && ip === undefined ? new Uint8Array(size) : addressBytes(ip, family, name);
    const port = (value: number | undefined, name: string) => lax && value === undefined ? 0 : checkPort(value, name);
    const sourcePort = port(h.sourcePort, "sourcePort");
    const destPort = port(h.destPort, "destPort");
    parts.push(
      address(h.sourceIp, "sourceIp"),
      address(h.destIp, "destIp"),
      new Uint8Array([sourcePort >> 8, sourcePort & 0xff, destPort >> 8, destPort & 0xff]),
    );
  }
  if (tlvs.alpn !== undefined) parts.push(tlv(TLV_ALPN, encoder.encode(tlvs.alpn)));
  if (tlvs.authority !== undefined) parts.push(tlv(TLV_AUTHORITY, encoder.encode(tlvs.authority)));
  const crcPart = tlvs.crc32c === undefined || tlvs.crc32c === false
    ? -1
    : parts.push(tlv(TLV_CRC32C, uint32(tlvs.crc32c === true ? 0 : tlvs.crc32c, "crc32c"))) - 1;
  if (tlvs.uniqueId !== undefined) {
    if (tlvs.uniqueId.length > MAX_UNIQUE_ID) throw new TypeError("uniqueId longer than 128 bytes");
    parts.push(tlv(TLV_UNIQUE_ID, tlvs.uniqueId));
  }
  if (tlvs.ssl !== undefined) parts.push(tlv(TLV_SSL, sslValue(tlvs.ssl)));
  if (tlvs.netns !== undefined) parts.push(tlv(TLV_NETNS, encoder.encode(tlvs.netns)));
  for (const { type, value } of tlvs.raw ?? []) parts.push(tlv(type, value));

  const body = concatBytes(parts);
  if (body.length > 65535) throw new TypeError(`v2 header body of ${body.length} bytes over 65535`);
  const fixed = new Uint8Array(V2_FIXED);
  fixed.set(V2_SIGNATURE);
  fixed[12] = h.command === "PROXY" ? 0x21 : 0x20;
  fixed[13] = family === "IPv4" ? 0x11 : family === "IPv6" ? 0x21 : 0x00;
  fixed[14] = body.length >> 8;
  fixed[15] = body.length & 0xff;
  const header = concatBytes([fixed, body]);
  if (tlvs.crc32c === true) {
    let valueAt = V2_FIXED + 3;
    for (let i = 0; i < crcPart; i++) valueAt += parts[i].length;
    header.set(uint32(headerCrc(header, valueAt), "crc32c"), valueAt);
  }
  return header;
}
