/**
 * The values of the DSN parameters (RFC 3461: `RET` and `ENVID` on MAIL,
 * `NOTIFY` and `ORCPT` on RCPT) and of `REQUIRETLS` (RFC 8689) on MAIL.
 * Pure functions: each takes the value as the parameter parser left it (a
 * string, or `true` for a bare keyword) and returns the decoded value or
 * throws the `501 5.5.4` the client should see, with Postfix's texts. Whether
 * the parameter may be sent at all (extension offered, sent twice) is the
 * caller's business.
 *
 * @module
 */
import type { DsnNotify } from "../context.ts";
import { Smtpd501Exception, type SmtpdException } from "../exceptions.ts";
import { decodeUtf8Xtext, decodeXtext } from "./xtext.ts";

/** RFC 3461 4.4: an ENVID is at most 100 characters. */
const MAX_ENVID = 100;
/** RFC 3461 4.2: an ORCPT parameter is at most 500 characters. */
const MAX_ORCPT = 500;

// C0 controls, DEL and the C1 controls (a utf-8 address may have non-ASCII).
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f-\x9f]/;
// RFC 3461 4.4: an ENVID is "printable (graphic)" US-ASCII;
// 4.2: an ORCPT address "printable (graphic and white space)".
const GRAPHIC_ASCII = /^[\x21-\x7e]*$/;
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
// RFC 5322 atext (the addr-type is an atom), without "=" which an esmtp-value cannot hold.
const ATOM = /^[A-Za-z0-9!#$%&'*+\-/?^_`{|}~]+$/;

/** `value` with everything but printable ASCII shown as `?`, for a log line. */
function printable(value: string): string {
  return value.replace(/[^\x20-\x7e]/g, "?");
}

/**
 * The 501 with Postfix's reply `text`; `detail` (what exactly is wrong) goes
 * only to the log message.
 */
function syntaxError(text: string, detail: string): SmtpdException {
  return new Smtpd501Exception(`501 5.5.4 ${text} (${printable(detail)})`, text);
}

/** The detail of an xtext error: its reply text without the reply code. */
function xtextDetail(err: unknown): string {
  if (err instanceof Smtpd501Exception) return err.text;
  throw err;
}

/**
 * Parses the MAIL parameter `RET` (RFC 3461 4.3): `FULL` (failure notices
 * carry the whole message) or `HDRS` (only its header), any case.
 *
 * @param value the parameter's value; `true` when it came without `=`
 * @returns `"FULL"` or `"HDRS"`
 * @throws {Smtpd501Exception} `501 5.5.4 Bad RET parameter syntax`
 *
 * @example
 * ```ts
 * parseRet("hdrs"); // => "HDRS"
 * parseRet("PARTIAL"); // throws Smtpd501Exception: 501 5.5.4 Bad RET parameter syntax (PARTIAL)
 * parseRet(true); // throws Smtpd501Exception
 * ```
 */
export function parseRet(value: string | true): "FULL" | "HDRS" {
  const text = "Bad RET parameter syntax";
  if (value === true) throw syntaxError(text, "RET needs a value");
  const word = value.toUpperCase();
  if (word !== "FULL" && word !== "HDRS") throw syntaxError(text, value);
  return word;
}

/**
 * Parses the MAIL parameter `ENVID` (RFC 3461 4.4), the sender's id for
 * the transaction, echoed in notices: xtext, at most 100 characters once
 * decoded, and graphic US-ASCII once decoded (no control, no space, no
 * 8-bit: RFC 3461 asks for "printable (graphic)" characters).
 *
 * @param value the parameter's value; `true` when it came without `=`
 * @returns the decoded id
 * @throws {Smtpd501Exception} `501 5.5.4 Bad ENVID parameter syntax`: a bare
 * keyword, bad xtext, empty, too long, or a decoded control (such as
 * `+0D+0A`, a log or header injection), space or non-ASCII character
 *
 * @example
 * ```ts
 * parseEnvid("QQ314159+2B1"); // => "QQ314159+1"
 * parseEnvid("x+0D+0AReceived:+20forged"); // throws Smtpd501Exception
 * ```
 */
export function parseEnvid(value: string | true): string {
  const text = "Bad ENVID parameter syntax";
  if (value === true) throw syntaxError(text, "ENVID needs a value");
  let envid: string;
  try {
    envid = decodeXtext(value);
  } catch (err) {
    throw syntaxError(text, xtextDetail(err));
  }
  if (envid === "") throw syntaxError(text, "empty");
  if (envid.length > MAX_ENVID) throw syntaxError(text, `longer than ${MAX_ENVID} characters`);
  if (!GRAPHIC_ASCII.test(envid)) throw syntaxError(text, "decoded value is not graphic US-ASCII");
  return envid;
}

const NOTIFY_WORDS: ReadonlySet<string> = new Set<DsnNotify>(["NEVER", "SUCCESS", "FAILURE", "DELAY"]);

/**
 * Parses the RCPT parameter `NOTIFY` (RFC 3461 4.1): `NEVER` alone, or a
 * comma-separated list of `SUCCESS`, `FAILURE` and `DELAY`, any case, each
 * at most once.
 *
 * @param value the parameter's value; `true` when it came without `=`
 * @returns the words, upper-cased, in the order sent
 * @throws {Smtpd501Exception} `501 5.5.4 Error: Bad NOTIFY parameter syntax`:
 * a bare keyword, an unknown or empty word, a word twice, or `NEVER` with
 * another word
 *
 * @example
 * ```ts
 * parseNotify("success,Delay"); // => ["SUCCESS", "DELAY"]
 * parseNotify("NEVER"); // => ["NEVER"]
 * parseNotify("NEVER,SUCCESS"); // throws Smtpd501Exception
 * ```
 */
export function parseNotify(value: string | true): DsnNotify[] {
  const text = "Error: Bad NOTIFY parameter syntax";
  if (value === true) throw syntaxError(text, "NOTIFY needs a value");
  const words: DsnNotify[] = [];
  for (const item of value.split(",")) {
    const word = item.toUpperCase();
    if (!NOTIFY_WORDS.has(word)) throw syntaxError(text, `unknown word "${item}"`);
    if (words.includes(word as DsnNotify)) throw syntaxError(text, `${word} twice`);
    words.push(word as DsnNotify);
  }
  if (words.length > 1 && words.includes("NEVER")) throw syntaxError(text, "NEVER must stand alone");
  return words;
}

/**
 * Parses the RCPT parameter `ORCPT` (RFC 3461 4.2), the recipient as the
 * sender first gave it: `addr-type;xtext`, at most 500 characters as sent.
 * The type is an atom (`rfc822` usually), returned in lower case. The
 * address is xtext-decoded; for the type `utf-8` (RFC 6533) the `\x{HEX}`
 * escapes are decoded too, in the same pass (so an escape is never decoded
 * twice), and raw UTF-8 is allowed (the unitext form). The address is not
 * checked against its type (RFC 3461 does not ask for it), but it must be
 * non-empty and free of control characters, and for any type but `utf-8`
 * US-ASCII.
 *
 * @param value the parameter's value; `true` when it came without `=`
 * @returns the type (lower case) and the decoded address
 * @throws {Smtpd501Exception} `501 5.5.4 Error: Bad ORCPT parameter syntax`
 *
 * @example
 * ```ts
 * parseOrcpt("rfc822;bob+2Bdsn@example.com"); // => { type: "rfc822", address: "bob+dsn@example.com" }
 * parseOrcpt("UTF-8;j\\x{F6}rg@example.com"); // => { type: "utf-8", address: "jörg@example.com" }
 * parseOrcpt("bob@example.com"); // throws Smtpd501Exception
 * parseOrcpt("rfc822;bob@example.com+0D+0A"); // throws Smtpd501Exception
 * ```
 */
export function parseOrcpt(value: string | true): { type: string; address: string } {
  const text = "Error: Bad ORCPT parameter syntax";
  if (value === true) throw syntaxError(text, "ORCPT needs a value");
  if (value.length > MAX_ORCPT) throw syntaxError(text, `longer than ${MAX_ORCPT} characters`);
  const semicolon = value.indexOf(";");
  if (semicolon < 0) throw syntaxError(text, 'no ";" after the address type');
  const type = value.slice(0, semicolon).toLowerCase();
  if (!ATOM.test(type)) throw syntaxError(text, "the address type is not an atom");
  const utf8 = type === "utf-8";
  let address: string;
  try {
    address = utf8 ? decodeUtf8Xtext(value.slice(semicolon + 1)) : decodeXtext(value.slice(semicolon + 1));
  } catch (err) {
    throw syntaxError(text, xtextDetail(err));
  }
  if (address === "") throw syntaxError(text, "empty address");
  if (CONTROL.test(address)) throw syntaxError(text, "control character in the decoded address");
  if (!utf8 && !PRINTABLE_ASCII.test(address)) throw syntaxError(text, "decoded address is not US-ASCII");
  return { type, address };
}

/**
 * Checks the MAIL parameter `REQUIRETLS` (RFC 8689 4), which takes no
 * value. Whether it may be sent at all (only over TLS, only when offered)
 * is the caller's check.
 *
 * @param value the parameter's value; `true` when it came without `=`
 * @returns `true`
 * @throws {Smtpd501Exception} `501 5.5.4 Bad REQUIRETLS parameter syntax`
 * when it came with a value (`REQUIRETLS=x`)
 *
 * @example
 * ```ts
 * parseRequireTls(true); // => true
 * parseRequireTls("yes"); // throws Smtpd501Exception
 * ```
 */
export function parseRequireTls(value: string | true): true {
  if (value !== true) throw syntaxError("Bad REQUIRETLS parameter syntax", "REQUIRETLS takes no value");
  return true;
}
