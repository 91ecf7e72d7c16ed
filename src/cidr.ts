/**
 * IP address helpers for access lists and per-client limits: a strict
 * parser (every byte of the text checked, no regex guesswork), the canonical
 * text form (RFC 5952 for IPv6), CIDR lists, and the key clients are counted
 * by. A v4-mapped IPv6 address (`::ffff:192.0.2.1`, what a dual-stack socket
 * reports for an IPv4 peer) is treated as the IPv4 address it carries, so one
 * client never has two spellings.
 *
 * @module
 */

/** A parsed IP address: 4 bytes for IPv4, 16 for IPv6, in network order. */
export interface IpAddress {
  /** The address family. */
  readonly family: "IPv4" | "IPv6";
  /** The address bytes, most significant first. */
  readonly bytes: Uint8Array;
}

const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

/** Value of a hex digit, or -1. */
function hexValue(code: number): number {
  if (code >= DIGIT_0 && code <= DIGIT_9) return code - DIGIT_0;
  const lower = code | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

/** A decimal 0..max with no sign and no leading zero (so "010" cannot be read as octal anywhere), or -1. */
export function parseDecimal(text: string, max: number): number {
  if (text.length === 0 || text.length > String(max).length) return -1;
  if (text.length > 1 && text.charCodeAt(0) === DIGIT_0) return -1;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < DIGIT_0 || c > DIGIT_9) return -1;
    value = value * 10 + (c - DIGIT_0);
  }
  return value <= max ? value : -1;
}

/** Writes the dotted quad `text` at `out[offset..offset+4]`; false if it is not one. */
function parseIpv4Into(text: string, out: Uint8Array, offset: number): boolean {
  const parts = text.split(".");
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const octet = parseDecimal(parts[i], 255);
    if (octet < 0) return false;
    out[offset + i] = octet;
  }
  return true;
}

/** A group of 1-4 hex digits, or -1. */
function parseHexGroup(text: string): number {
  if (text.length === 0 || text.length > 4) return -1;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const digit = hexValue(text.charCodeAt(i));
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

/**
 * Writes the groups of one side of `::` (or of the whole address) as 16-bit
 * words; a dotted quad is allowed as the very last group when `lastMayBeV4`.
 * Returns the words, or undefined.
 */
function parseGroups(groups: string[], lastMayBeV4: boolean): number[] | undefined {
  const words: number[] = [];
  for (let i = 0; i < groups.length; i++) {
    const group = groups[i];
    if (lastMayBeV4 && i === groups.length - 1 && group.includes(".")) {
      const v4 = new Uint8Array(4);
      if (!parseIpv4Into(group, v4, 0)) return undefined;
      words.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    } else {
      const word = parseHexGroup(group);
      if (word < 0) return undefined;
      words.push(word);
    }
  }
  return words;
}

function parseIpv6(text: string): Uint8Array | undefined {
  // 45 = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"; a zone id ("%eth0") fails the digit checks.
  if (text.length < 2 || text.length > 45) return undefined;
  const gap = text.indexOf("::");
  // A second "::" (":::" included) makes the gap's size ambiguous.
  if (gap >= 0 && text.indexOf("::", gap + 1) >= 0) return undefined;
  let words: number[];
  if (gap < 0) {
    const all = parseGroups(text.split(":"), true);
    if (!all || all.length !== 8) return undefined;
    words = all;
  } else {
    const headText = text.slice(0, gap);
    const tailText = text.slice(gap + 2);
    const head = headText === "" ? [] : parseGroups(headText.split(":"), false);
    const tail = tailText === "" ? [] : parseGroups(tailText.split(":"), true);
    // "::" stands for at least one zero group (RFC 4291 2.2).
    if (!head || !tail || head.length + tail.length > 7) return undefined;
    words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    bytes[2 * i] = words[i] >> 8;
    bytes[2 * i + 1] = words[i] & 0xff;
  }
  return bytes;
}

/** Whether 16 bytes are in `::ffff:0:0/96`. */
function isV4Mapped(bytes: Uint8Array): boolean {
  if (bytes.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/**
 * Parses `text` as written, without turning v4-mapped IPv6 into IPv4 (the
 * PROXY v1 reader needs to know which family the text was in).
 */
export function parseIpText(text: string): IpAddress | undefined {
  if (text.includes(":")) {
    const bytes = parseIpv6(text);
    return bytes && { family: "IPv6", bytes };
  }
  const bytes = new Uint8Array(4);
  return parseIpv4Into(text, bytes, 0) ? { family: "IPv4", bytes } : undefined;
}

/**
 * Parses an IPv4 dotted quad (decimal octets, no leading zeros) or an IPv6
 * address (at most one `::`, optional dotted IPv4 tail, no zone id). A
 * v4-mapped IPv6 address comes back as IPv4.
 *
 * @example
 * ```ts
 * parseIp("::ffff:192.0.2.1"); // => { family: "IPv4", bytes: new Uint8Array([192, 0, 2, 1]) }
 * parseIp("010.0.0.1"); // => undefined
 * ```
 */
export function parseIp(text: string): IpAddress | undefined {
  const parsed = parseIpText(text);
  if (parsed && parsed.family === "IPv6" && isV4Mapped(parsed.bytes)) {
    return { family: "IPv4", bytes: parsed.bytes.slice(12) };
  }
  return parsed;
}

/**
 * The canonical text of an address: dotted quad for IPv4, RFC 5952 for IPv6
 * (lower case, no leading zeros, the longest run of two or more zero groups
 * as `::`, a v4-mapped address as `::ffff:a.b.c.d`).
 */
export function formatIp(addr: IpAddress): string {
  const b = addr.bytes;
  if (addr.family === "IPv4") {
    if (b.length !== 4) throw new TypeError(`An IPv4 address has 4 bytes, got ${b.length}`);
    return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  }
  if (b.length !== 16) throw new TypeError(`An IPv6 address has 16 bytes, got ${b.length}`);
  if (isV4Mapped(b)) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((b[i] << 8) | b[i + 1]);
  // The longest run of zero words, the first one on a tie; a single zero word stays "0" (RFC 5952 4.2.2).
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let end = i;
    while (end < 8 && words[end] === 0) end++;
    if (end - i > bestLength) {
      bestStart = i;
      bestLength = end - i;
    }
    i = end;
  }
  const hex = (from: number, to: number) => words.slice(from, to).map((w) => w.toString(16)).join(":");
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

/**
 * The canonical text of `text` if it is an IP address (v4-mapped becomes
 * IPv4), else `text` unchanged (a Unix socket path, a host name).
 *
 * @example
 * ```ts
 * normalizeIp("2001:DB8:0:0::1"); // => "2001:db8::1"
 * normalizeIp("::ffff:192.0.2.1"); // => "192.0.2.1"
 * ```
 */
export function normalizeIp(text: string): string {
  const parsed = parseIp(text);
  return parsed ? formatIp(parsed) : text;
}

/**
 * The key per-client limits count by: an IPv4 address itself, an IPv6
 * address as its /64 (one customer usually gets a whole /64, so counting
 * single IPv6 addresses would let one client open endless keys). Input that
 * is not an IP is returned unchanged.
 *
 * @example
 * ```ts
 * clientKey("2001:db8:1:2:aaaa::5"); // => "2001:db8:1:2::/64"
 * clientKey("::ffff:192.0.2.1"); // => "192.0.2.1"
 * ```
 */
export function clientKey(ip: string): string {
  const parsed = parseIp(ip);
  if (!parsed) return ip;
  if (parsed.family === "IPv4") return formatIp(parsed);
  const prefix = parsed.bytes.slice();
  prefix.fill(0, 8);
  return `${formatIp({ family: "IPv6", bytes: prefix })}/64`;
}

interface Network {
  readonly family: "IPv4" | "IPv6";
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

/** Whether the first `prefix` bits of `a` and `b` are equal. */
function samePrefix(a: Uint8Array, b: Uint8Array, prefix: number): boolean {
  const whole = prefix >> 3;
  for (let i = 0; i < whole; i++) if (a[i] !== b[i]) return false;
  const bits = prefix & 7;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return (a[whole] & mask) === (b[whole] & mask);
}

/** Parses one list entry; throws a `TypeError` that names it. */
function parseNetwork(entry: string): Network {
  const bad = (why: string) => new TypeError(`Bad CIDR entry "${entry}": ${why}`);
  const text = entry.trim();
  const slash = text.indexOf("/");
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const address = parseIpText(addressText);
  if (!address) throw bad("not an IPv4 or IPv6 address");
  const maxPrefix = address.family === "IPv4" ? 32 : 128;
  let prefix = maxPrefix;
  if (slash >= 0) {
    prefix = parseDecimal(text.slice(slash + 1), maxPrefix);
    if (prefix < 0) throw bad(`the prefix length must be 0..${maxPrefix}`);
  }
  const network = { family: address.family, bytes: address.bytes.slice(), prefix };
  zeroHostBits(network.bytes, prefix);
  if (!samePrefix(network.bytes, address.bytes, maxPrefix)) {
    // "10.1.2.3/8" is almost always a typo; say what it would match instead of guessing.
    throw bad(`host bits are set (the network is ${formatIp(network)}/${prefix})`);
  }
  // A v4-mapped network inside ::ffff:0:0/96 is the IPv4 network it maps, so IPv4 clients match it.
  if (address.family === "IPv6" && prefix >= 96 && isV4Mapped(address.bytes)) {
    return { family: "IPv4", bytes: address.bytes.slice(12), prefix: prefix - 96 };
  }
  return network;
}

function zeroHostBits(bytes: Uint8Array, prefix: number): void {
  for (let bit = prefix; bit < bytes.length * 8; bit++) bytes[bit >> 3] &= ~(0x80 >> (bit & 7));
}

/**
 * A list of networks to test client addresses against (trusted proxies,
 * relay networks, limit exemptions).
 *
 * An entry is an address with an optional prefix length (`"10.0.0.0/8"`,
 * `"2001:db8::/32"`), without one it is a single host. Host bits set after
 * the prefix (`"10.1.2.3/8"`) are refused as a likely typo. IPv4 addresses
 * match IPv4 entries (and v4-mapped entries); IPv6 addresses match IPv6
 * entries only, so `"::/0"` does not cover IPv4 clients.
 *
 * @example
 * ```ts
 * const trusted = new CidrList([...CidrList.LOOPBACK, "10.0.0.0/8"]);
 * trusted.contains("10.20.30.40"); // => true
 * trusted.contains("::ffff:127.0.0.1"); // => true
 * trusted.contains("192.0.2.1"); // => false
 * ```
 */
export class CidrList {
  /** The loopback networks of both families. */
  static readonly LOOPBACK: readonly string[] = Object.freeze(["127.0.0.0/8", "::1/128"]);

  /** The entries in canonical form (`"10.0.0.0/8"`), in the given order. */
  readonly entries: readonly string[];
  readonly #networks: readonly Network[];

  /**
   * Parses every entry.
   * @param entries addresses with optional `/prefix`
   * @throws {TypeError} naming the first entry that is not valid
   */
  constructor(entries: Iterable<string>) {
    const networks: Network[] = [];
    for (const entry of entries) {
      if (typeof entry !== "string") throw new TypeError(`Bad CIDR entry ${String(entry)}: not a string`);
      networks.push(parseNetwork(entry));
    }
    this.#networks = networks;
    this.entries = Object.freeze(networks.map((n) => `${formatIp(n)}/${n.prefix}`));
  }

  /** Whether `ip` is inside one of the networks (`false` for text that is not an IP). */
  contains(ip: string): boolean {
    const address = parseIp(ip);
    if (!address) return false;
    for (const network of this.#networks) {
      if (network.family === address.family && samePrefix(network.bytes, address.bytes, network.prefix)) return true;
    }
    return false;
  }
}
