/**
 * The trace headers the dev server prepends to each stored message
 * (`Return-Path` and `Received`, RFC 5321 4.4), and the sanitising that keeps
 * every client-given value in them (HELO argument, addresses, host names)
 * from injecting a header or driving a terminal.
 *
 * @module
 */

/** What {@link traceHeaders} needs to know of a message; mostly `ctx.server` and `ctx.envelope` fields. */
export interface TraceInfo {
  /** The reverse-path, with angle brackets (`ctx.envelope.from`): `"<a@example.com>"` or `"<>"`. */
  from: string;
  /** The forward-paths (`ctx.envelope.to`); the first one goes into the `for` clause. */
  to: readonly string[];
  /** The HELO/EHLO argument (`ctx.server.helo`). */
  helo: string;
  /** `ctx.server.heloMode`: `"HELO"` gives `SMTP`, `"EHLO"` gives `ESMTP`, `"LHLO"` gives `LMTP` (RFC 3848). */
  heloMode: string;
  /** `ctx.server.remoteHost` (after XCLIENT: the name it gave). */
  remoteHost: string;
  /**
   * `ctx.server.remoteIp` (after PROXY or XCLIENT: the address they gave);
   * `null` for a client without one (on a Unix socket, or XCLIENT
   * `ADDR=[UNAVAILABLE]`): the `from` clause then has no address literal.
   */
  remoteIp: string | null;
  /** `ctx.server.localHost`: who received the message. */
  localHost: string;
  /** An identifier for this message in our logs. */
  id: string;
  /** When the message was received (default: now). */
  date?: Date;
  /** Whether the session ran over TLS (`ESMTPS`). */
  encrypted?: boolean;
  /** Whether the client authenticated (`ESMTPA`). */
  authenticated?: boolean;
  /** Keep printable non-ASCII characters (an SMTPUTF8 message, RFC 6532); otherwise they become `?`. */
  utf8?: boolean;
  /** Line break to use: `"\r\n"` (default) or `"\n"`, to match a message kept with `CRLF_LEAVE`. */
  crlf?: string;
}

/** Longest client-given value put into a header. */
const MAX_VALUE_LENGTH = 255;

/**
 * Makes a client-given value safe for a header: control characters (CR, LF,
 * NUL, TAB, DEL, C1) are removed; invisible or direction-changing characters,
 * lone surrogates, non-ASCII (unless `utf8`) and any character in `forbidden`
 * become `?`; the result is capped at `max` characters. The result can never
 * end the header line or start a new header.
 */
export function sanitizeHeaderValue(
  value: string,
  options: { utf8?: boolean; forbidden?: string; max?: number } = {},
): string {
  const { utf8 = false, forbidden = "", max = MAX_VALUE_LENGTH } = options;
  let out = "";
  let length = 0;
  for (const char of String(value)) {
    if (length >= max) break;
    const cp = char.codePointAt(0)!;
    if (cp < 0x20 || cp === 0x7f || (cp >= 0x80 && cp <= 0x9f)) continue;
    let safe = char;
    if (forbidden.includes(char)) safe = "?";
    else if (cp > 0x7e && (!utf8 || isOddCodePoint(cp))) safe = "?";
    out += safe;
    length++;
  }
  return out;
}

/** Code points that look like spaces, display as nothing, move text around or are not characters at all. */
function isOddCodePoint(cp: number): boolean {
  return (cp >= 0xd800 && cp <= 0xdfff) || // lone surrogates
    cp === 0xa0 || cp === 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp === 0x202f || cp === 0x205f ||
    cp === 0x3000 || // spaces other than SP
    cp === 0xad || // soft hyphen
    (cp >= 0x200b && cp <= 0x200f) || // zero-width, LRM/RLM
    (cp >= 0x2028 && cp <= 0x202e) || // line/paragraph separators, bidi embeddings
    (cp >= 0x2060 && cp <= 0x206f) || // word joiner, bidi isolates, deprecated formats
    cp === 0xfeff || // BOM
    (cp >= 0xfff9 && cp <= 0xfffb) || // interlinear annotations
    (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe || // noncharacters
    (cp >= 0xe0000 && cp <= 0xe007f); // tags
}

// Host-like values (HELO argument, host names, IPs, ids) are tokens: no
// spaces, and none of the characters that structure a Received field
// (comments, literals, the ";" before the date).
const TOKEN_FORBIDDEN = ' ()<>;,"\\';
// Paths may hold quoted local parts with spaces; only the brackets around them must stay ours.
const PATH_FORBIDDEN = "<>";

/** A host-like value as one token; `unknown` if nothing is left of it. */
function token(value: string, utf8: boolean): string {
  return sanitizeHeaderValue(value, { utf8, forbidden: TOKEN_FORBIDDEN }) || "unknown";
}

/** `<…>` with the inside sanitised; `"<>"` for the null path. */
function path(value: string, utf8: boolean): string {
  const inner = String(value).trim().replace(/^<(.*)>$/s, "$1");
  return `<${sanitizeHeaderValue(inner, { utf8, forbidden: PATH_FORBIDDEN })}>`;
}

/** RFC 5322 date-time in UTC: `Sat, 28 Nov 2026 10:00:00 +0000`. */
export function rfc5322Date(date: Date): string {
  // toUTCString() is "Sat, 28 Nov 2026 10:00:00 GMT" (fixed by ECMA-262); "GMT" is an obsolete zone name.
  return date.toUTCString().replace(/ GMT$/, " +0000");
}

/**
 * The protocol of a `Received` header's `with` clause, as RFC 3848 names
 * them: `SMTP` after HELO, `ESMTP` after EHLO, `LMTP` after LHLO; ESMTP and
 * LMTP get `S` over TLS and `A` after AUTH (`ESMTPSA`, `LMTPA`).
 *
 * @example
 * ```ts
 * receivedProtocol("EHLO", { encrypted: true, authenticated: true }); // => "ESMTPSA"
 * receivedProtocol("LHLO"); // => "LMTP"
 * receivedProtocol("HELO", { encrypted: true }); // => "SMTP"
 * ```
 */
export function receivedProtocol(
  heloMode: string,
  session: { encrypted?: boolean; authenticated?: boolean } = {},
): string {
  const base = heloMode === "LHLO" ? "LMTP" : heloMode === "EHLO" ? "ESMTP" : "SMTP";
  // RFC 3848 defines the S and A suffixes for ESMTP and LMTP only.
  if (base === "SMTP") return base;
  return `${base}${session.encrypted ? "S" : ""}${session.authenticated ? "A" : ""}`;
}

/**
 * Builds the `Return-Path` and `Received` headers (RFC 5321 4.4) to put in
 * front of a stored message. Every value that came from the client is passed
 * through {@link sanitizeHeaderValue}, so no value can inject a header.
 *
 * @example
 * ```ts
 * traceHeaders({
 *   from: "<a@example.com>", to: ["<b@example.org>"], helo: "client.example", heloMode: "EHLO",
 *   remoteHost: "127.0.0.1", remoteIp: "127.0.0.1", localHost: "127.0.0.1", id: "4F2A9C",
 *   date: new Date("2026-11-28T10:00:00Z"),
 * });
 * // Return-Path: <a@example.com>
 * // Received: from client.example (127.0.0.1 [127.0.0.1])
 * // 	by 127.0.0.1 with ESMTP id 4F2A9C
 * // 	for <b@example.org>; Sat, 28 Nov 2026 10:00:00 +0000
 * ```
 */
export function traceHeaders(info: TraceInfo): string {
  const utf8 = info.utf8 ?? false;
  const crlf = info.crlf === "\n" ? "\n" : "\r\n";
  const protocol = receivedProtocol(info.heloMode, info);
  // RFC 5321 TCP-info: the host name and the address literal; a client without an address has only the name.
  let tcpInfo = token(info.remoteHost, utf8);
  if (info.remoteIp !== null) {
    const ip = token(info.remoteIp, false);
    tcpInfo += ` [${ip.includes(":") ? `IPv6:${ip}` : ip}]`;
  }
  const forClause = info.to.length > 0 ? `${crlf}\tfor ${path(info.to[0], utf8)};` : ";";
  return `Return-Path: ${path(info.from, utf8)}${crlf}` +
    `Received: from ${token(info.helo, utf8)} (${tcpInfo})${crlf}` +
    `\tby ${token(info.localHost, utf8)} with ${protocol} id ${token(info.id, false)}` +
    `${forClause} ${rfc5322Date(info.date ?? new Date())}${crlf}`;
}
