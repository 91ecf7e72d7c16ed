/**
 * A minimal DER encoder (ITU-T X.690) for the ASN.1 types an X.509
 * certificate is made of, used by `self_signed.ts`. It only encodes: reading
 * certificates is left to `node:crypto`'s X509Certificate.
 *
 * Every function returns the complete encoding (tag, length, content) of one
 * value, so values nest by passing encodings to {@link sequence}.
 *
 * @module
 */

/** Concatenates byte arrays. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Tag, definite length in its shortest form, content. */
export function tlv(tag: number, ...content: Uint8Array[]): Uint8Array {
  const body = concat(content);
  const length: number[] = [];
  if (body.length < 0x80) {
    length.push(body.length);
  } else {
    for (let n = body.length; n > 0; n = Math.floor(n / 256)) length.unshift(n & 0xff);
    length.unshift(0x80 | length.length);
  }
  return concat([Uint8Array.of(tag, ...length), body]);
}

/** SEQUENCE of already encoded values, in order. */
export function sequence(...items: Uint8Array[]): Uint8Array {
  return tlv(0x30, ...items);
}

/** Byte-wise comparison, shorter first on a common prefix (the order DER wants for SET OF). */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** SET OF already encoded values: DER sorts the elements by their encodings. */
export function setOf(...items: Uint8Array[]): Uint8Array {
  return tlv(0x31, ...[...items].sort(compareBytes));
}

/** INTEGER from an unsigned big-endian magnitude: leading zeros dropped, a zero byte added when the top bit is set. */
export function unsignedInteger(magnitude: Uint8Array): Uint8Array {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const bytes = magnitude.length === 0 ? Uint8Array.of(0) : magnitude.subarray(start);
  return tlv(0x02, ...(bytes[0] & 0x80 ? [Uint8Array.of(0), bytes] : [bytes]));
}

/** INTEGER from a small non-negative number. */
export function smallInteger(value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`not a small non-negative integer: ${value}`);
  const bytes: number[] = [];
  for (let n = value; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return unsignedInteger(Uint8Array.from(bytes));
}

/** OBJECT IDENTIFIER from its dotted form, e.g. `"2.5.4.3"`. */
export function objectIdentifier(dotted: string): Uint8Array {
  const arcs = dotted.split(".").map((arc) => {
    if (!/^(0|[1-9]\d*)$/.test(arc)) throw new RangeError(`bad OID ${dotted}`);
    return Number(arc);
  });
  if (arcs.length < 2 || arcs[0] > 2 || (arcs[0] < 2 && arcs[1] > 39) || !arcs.every(Number.isSafeInteger)) {
    throw new RangeError(`bad OID ${dotted}`);
  }
  const bytes: number[] = [];
  for (const arc of [arcs[0] * 40 + arcs[1], ...arcs.slice(2)]) {
    // Base 128, most significant group first, the high bit set on every byte but the last.
    const groups = [arc & 0x7f];
    for (let n = Math.floor(arc / 128); n > 0; n = Math.floor(n / 128)) groups.unshift((n & 0x7f) | 0x80);
    bytes.push(...groups);
  }
  return tlv(0x06, Uint8Array.from(bytes));
}

/** NULL. */
export function nullValue(): Uint8Array {
  return Uint8Array.of(0x05, 0x00);
}

/** BOOLEAN (DER: TRUE is 0xff). */
export function boolean(value: boolean): Uint8Array {
  return Uint8Array.of(0x01, 0x01, value ? 0xff : 0x00);
}

/** BIT STRING of whole bytes. */
export function bitString(bytes: Uint8Array): Uint8Array {
  return tlv(0x03, Uint8Array.of(0), bytes);
}

/**
 * BIT STRING of named bits (bit 0 first, as in `KeyUsage`): DER drops the
 * trailing zero bits and says how many bits of the last byte are unused.
 */
export function namedBits(bits: readonly number[]): Uint8Array {
  if (bits.length === 0) return tlv(0x03, Uint8Array.of(0));
  const highest = Math.max(...bits);
  const bytes = new Uint8Array(Math.floor(highest / 8) + 1);
  for (const bit of bits) bytes[Math.floor(bit / 8)] |= 0x80 >> (bit % 8);
  return tlv(0x03, Uint8Array.of(7 - (highest % 8)), bytes);
}

/** OCTET STRING. */
export function octetString(bytes: Uint8Array): Uint8Array {
  return tlv(0x04, bytes);
}

/** UTF8String. */
export function utf8String(text: string): Uint8Array {
  return tlv(0x0c, new TextEncoder().encode(text));
}

/** The bytes of an ASCII string; throws for anything else (IA5String and the time types are ASCII only). */
export function ascii(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) throw new RangeError(`not ASCII: ${JSON.stringify(text)}`);
    bytes[i] = code;
  }
  return bytes;
}

/**
 * A certificate validity time, as RFC 5280 4.1.2.5 wants it: UTCTime
 * (`YYMMDDHHMMSSZ`) for the years 1950 to 2049, GeneralizedTime
 * (`YYYYMMDDHHMMSSZ`) otherwise; whole seconds, UTC.
 */
export function time(date: Date): Uint8Array {
  const year = date.getUTCFullYear();
  if (!(year >= 0 && year <= 9999)) throw new RangeError(`date out of range: ${date}`);
  const two = (n: number) => String(n).padStart(2, "0");
  const rest = two(date.getUTCMonth() + 1) + two(date.getUTCDate()) + two(date.getUTCHours()) +
    two(date.getUTCMinutes()) + two(date.getUTCSeconds()) + "Z";
  return year >= 1950 && year < 2050
    ? tlv(0x17, ascii(two(year % 100) + rest))
    : tlv(0x18, ascii(String(year).padStart(4, "0") + rest));
}

/** `[n] EXPLICIT`: a constructed context-specific tag around a complete encoding. */
export function explicit(tagNumber: number, encoded: Uint8Array): Uint8Array {
  return tlv(0xa0 | tagNumber, encoded);
}

/** `[n] IMPLICIT` of a primitive type: the content bytes under a context-specific tag. */
export function implicitPrimitive(tagNumber: number, content: Uint8Array): Uint8Array {
  return tlv(0x80 | tagNumber, content);
}

/** PEM text: the label's BEGIN/END lines around base64 in lines of 64 characters, LF line ends. */
export function pem(label: string, der: Uint8Array): string {
  let binary = "";
  for (const byte of der) binary += String.fromCharCode(byte);
  const base64 = btoa(binary);
  const lines: string[] = [];
  for (let i = 0; i < base64.length; i += 64) lines.push(base64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}
