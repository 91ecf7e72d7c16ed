/**
 * Parsing of command arguments (RFC 5321 4.1.2 paths, RFC 1869 ESMTP
 * parameters, RFC 6531 UTF-8 addresses). Pure functions that return a parsed
 * value or throw the {@link SmtpdException} the client should see.
 *
 * @module
 */
import { Smtpd501Exception, Smtpd553Exception, type SmtpdException } from "../exceptions.ts";
import type { EsmtpParamValue } from "../context.ts";

/** A parsed MAIL FROM or RCPT TO argument. */
export interface PathArgument {
  /** The path as the client gave it, with brackets, source route dropped: `"<a@b.example>"` or `"<>"`. */
  readonly path: string;
  /** The mailbox without brackets (`""` for the null path). */
  readonly address: string;
  /** Whether the mailbox has non-ASCII characters (needs SMTPUTF8). */
  readonly utf8: boolean;
  /** ESMTP parameters, keywords upper-cased. */
  readonly params: Record<string, EsmtpParamValue>;
}

// RFC 5322 atext, plus "." between atoms (RFC 5321 Dot-string).
const ATEXT = "A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~";
const DOT_STRING = new RegExp(`^[${ATEXT}]+(\\.[${ATEXT}]+)*$`);
const DOT_STRING_UTF8 = new RegExp(`^[${ATEXT}\\u0080-\\u{10FFFF}]+(\\.[${ATEXT}\\u0080-\\u{10FFFF}]+)*$`, "u");
// Printable ASCII except `"` and `\`, or a quoted pair (RFC 5321 Quoted-string).
const QUOTED_STRING = /^"([\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"$/;
const QUOTED_STRING_UTF8 = /^"([\x20\x21\x23-\x5b\x5d-\x7e\u0080-\u{10FFFF}]|\\[\x20-\x7e])*"$/u;
const LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$/;
const LABEL_UTF8 = /^[A-Za-z0-9\u0080-\u{10FFFF}]([A-Za-z0-9\u0080-\u{10FFFF}-]*[A-Za-z0-9\u0080-\u{10FFFF}])?$/u;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6_CHARS = /^[0-9A-Fa-f:.]+$/;
const GENERAL_LITERAL = /^[A-Za-z0-9-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+$/;
const PARAM_KEYWORD = /^[A-Za-z0-9][A-Za-z0-9-]*$/;
// esmtp-value: any printable except "=" and SP (RFC 5321), plus UTF-8 (RFC 6531).
const PARAM_VALUE = /^[\x21-\x3c\x3e-\x7e\u0080-\u{10FFFF}]+$/u;
// deno-lint-ignore no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

/** Whether `text` has any byte outside ASCII. */
export function hasNonAscii(text: string): boolean {
  return NON_ASCII.test(text);
}

/** Whether `text` has a control character (NUL, CR, LF, TAB, DEL ...). */
export function hasControl(text: string): boolean {
  return CONTROL.test(text);
}

function isDomain(domain: string, utf8: boolean): boolean {
  if (domain.startsWith("[") && domain.endsWith("]")) {
    const literal = domain.slice(1, -1);
    if (IPV4.test(literal)) return true;
    if (/^IPv6:/i.test(literal)) return IPV6_CHARS.test(literal.slice(5)) && literal.includes(":", 5);
    return GENERAL_LITERAL.test(literal);
  }
  if (domain.length === 0 || domain.length > 255) return false;
  const label = utf8 ? LABEL_UTF8 : LABEL;
  // Label by label without split(): this runs for every MAIL and RCPT.
  for (let start = 0; start <= domain.length;) {
    let end = domain.indexOf(".", start);
    if (end < 0) end = domain.length;
    if (end - start > 63 || !label.test(domain.slice(start, end))) return false;
    start = end + 1;
  }
  return true;
}

const encoder = new TextEncoder();

/** Octets of `text` in UTF-8 (RFC 5321 limits are in octets). */
function utf8Length(text: string): number {
  return hasNonAscii(text) ? encoder.encode(text).length : text.length;
}

/** Checks a mailbox `local@domain` (RFC 5321 4.1.2; RFC 6531 when `utf8`). */
export function isMailbox(mailbox: string, utf8: boolean): boolean {
  const at = mailbox.lastIndexOf("@");
  if (at <= 0) return false;
  const local = mailbox.slice(0, at);
  const domain = mailbox.slice(at + 1);
  if (utf8Length(local) > 64) return false;
  const localOk = utf8
    ? DOT_STRING_UTF8.test(local) || QUOTED_STRING_UTF8.test(local)
    : DOT_STRING.test(local) || QUOTED_STRING.test(local);
  return localOk && isDomain(domain, utf8);
}

/**
 * Splits `FROM:<path> params` / `TO:<path> params`.
 *
 * @param args the text after the verb, e.g. `"FROM:<a@b.example> SIZE=100"`
 * @param keyword `"FROM"` or `"TO"`
 * @param allowNull whether `<>` is allowed (MAIL only)
 * @param utf8Allowed whether non-ASCII mailboxes may be accepted at all (SMTPUTF8 on)
 */
export function parsePathArgument(
  args: string,
  keyword: "FROM" | "TO",
  allowNull: boolean,
  utf8Allowed: boolean,
): PathArgument {
  if (hasControl(args)) {
    throw new Smtpd501Exception(undefined, "Syntax error: control characters are not allowed", "5.5.2");
  }
  const prefix = keyword + ":";
  if (args.slice(0, prefix.length).toUpperCase() !== prefix) throw pathSyntaxError(keyword);
  // RFC 5321 has no space after the colon, but many clients send one; accept it.
  const rest = args.slice(prefix.length).replace(/^ +/, "");
  if (!rest.startsWith("<")) throw pathSyntaxError(keyword);
  const close = rest.indexOf(">", closingBracketSearchStart(rest));
  if (close < 0) throw pathSyntaxError(keyword);
  let mailbox = rest.slice(1, close);
  const tail = rest.slice(close + 1);
  if (tail !== "" && !tail.startsWith(" ")) throw pathSyntaxError(keyword);
  // Drop an RFC 5321 source route ("@a,@b:user@c"); servers must accept and ignore it.
  const route = /^@[^:]+:/.exec(mailbox);
  if (route) {
    mailbox = mailbox.slice(route[0].length);
    if (mailbox === "") throw badAddressError(keyword); // a route needs a mailbox; "<@a:>" is not the null path
  }
  const utf8 = hasNonAscii(mailbox);
  if (mailbox === "") {
    if (!allowNull) throw badAddressError(keyword);
  } else if (keyword === "TO" && mailbox.toLowerCase() === "postmaster") {
    // RFC 5321 4.5.1: <Postmaster> without a domain must be accepted.
  } else if (!isMailbox(mailbox, utf8 && utf8Allowed)) {
    if (utf8 && !utf8Allowed) throw nonAsciiRefused();
    throw badAddressError(keyword);
  }
  return { path: `<${mailbox}>`, address: mailbox, utf8, params: parseParams(tail) };
}

function pathSyntaxError(keyword: "FROM" | "TO"): SmtpdException {
  return new Smtpd501Exception(
    undefined,
    `Syntax: ${keyword === "FROM" ? "MAIL FROM" : "RCPT TO"}:<address> [parameters]`,
  );
}

function badAddressError(keyword: "FROM" | "TO"): SmtpdException {
  const [code, what] = keyword === "FROM" ? ["5.1.7", "sender"] : ["5.1.3", "recipient"];
  return new Smtpd501Exception(undefined, `Bad ${what} address syntax`, code);
}

/** The reply for a UTF-8 mailbox without SMTPUTF8 (RFC 6531 3.5). */
export function nonAsciiRefused(): SmtpdException {
  return new Smtpd553Exception(undefined, "Non-ASCII addresses require the SMTPUTF8 parameter", "5.6.7");
}

/** Finds where to look for the closing `>`: after a quoted local part, which may contain one. */
function closingBracketSearchStart(rest: string): number {
  if (rest[1] !== '"') return 1;
  for (let i = 2; i < rest.length; i++) {
    if (rest[i] === "\\") i++;
    else if (rest[i] === '"') return i + 1;
  }
  return 1;
}

/** Parses ` KEY=value KEY2` into a record (keywords upper-cased); 501 on malformed ones. */
export function parseParams(text: string): Record<string, EsmtpParamValue> {
  const params: Record<string, EsmtpParamValue> = {};
  for (const item of text.split(" ")) {
    if (item === "") continue;
    const eq = item.indexOf("=");
    const key = (eq < 0 ? item : item.slice(0, eq)).toUpperCase();
    const value = eq < 0 ? true : item.slice(eq + 1);
    if (!PARAM_KEYWORD.test(key) || (value !== true && !PARAM_VALUE.test(value))) {
      throw new Smtpd501Exception(undefined, `Syntax error in parameter "${item.replace(/[^\x20-\x7e]/g, "?")}"`);
    }
    if (key in params) throw new Smtpd501Exception(undefined, `Duplicate parameter ${key}`);
    params[key] = value;
  }
  return params;
}

/** Splits a command line into its upper-cased verb and the rest. */
export function splitCommand(line: string): { verb: string; args: string } {
  const space = line.indexOf(" ");
  if (space < 0) return { verb: line.toUpperCase(), args: "" };
  return { verb: line.slice(0, space).toUpperCase(), args: line.slice(space + 1).trim() };
}

/**
 * HTTP request lines and header lines sent to the SMTP port: a browser, an
 * open-proxy probe, or a cross-protocol attack. Postfix's
 * `smtpd_forbidden_commands` (CONNECT GET POST, and header-like lines) is the
 * anchor; the other HTTP methods and the HTTP/2 preface are added.
 */
const FORBIDDEN = /^(?:(?:GET|POST|HEAD|PUT|DELETE|OPTIONS|PATCH|TRACE|CONNECT|PRI) |[A-Za-z][A-Za-z0-9-]*:)/i;

/**
 * Whether `line` is not SMTP at all but HTTP (or a header line): such a
 * client is disconnected at once.
 *
 * @example
 * ```ts
 * forbiddenCommand("GET / HTTP/1.1"); // => true
 * forbiddenCommand("Host: example.com"); // => true
 * forbiddenCommand("MAIL FROM:<a@b.example>"); // => false
 * ```
 */
export function forbiddenCommand(line: string): boolean {
  return FORBIDDEN.test(line);
}
