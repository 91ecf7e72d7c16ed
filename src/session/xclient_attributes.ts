/**
 * The attributes of Postfix's XCLIENT and XFORWARD commands: `NAME=value`
 * pairs, one space apart, names in any case, values xtext (RFC 3461 4).
 * Pure functions, no session: they return the decoded, checked attributes or
 * throw the `501 5.5.4` the client should see, with Postfix's texts. Whether
 * the client may send the command at all is the caller's business.
 *
 * Every decoded value is checked before it can reach a log line, a hook or a
 * header: no control character (an encoded `+0D+0A` is an injection),
 * addresses through a real IP parser, names through a host-name check.
 *
 * @module
 */
import type { XclientInfo, XforwardInfo } from "../context.ts";
import { Smtpd501Exception, type SmtpdException } from "../exceptions.ts";
import { normalizeIp, parseIpText } from "../cidr.ts";
import { decodeXtext } from "./xtext.ts";

/**
 * The attributes XCLIENT takes, as the EHLO keyword lists them
 * (`250-XCLIENT NAME ADDR ...`). Postfix's `REVERSE_NAME` is not among them.
 *
 * @example
 * ```ts
 * `XCLIENT ${XCLIENT_ATTRIBUTES.join(" ")}`; // => "XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT"
 * ```
 */
export const XCLIENT_ATTRIBUTES: readonly string[] = Object.freeze([
  "NAME",
  "ADDR",
  "PORT",
  "PROTO",
  "HELO",
  "LOGIN",
  "DESTADDR",
  "DESTPORT",
]);

/**
 * The attributes XFORWARD takes, as the EHLO keyword lists them
 * (`250-XFORWARD NAME ADDR ...`).
 *
 * @example
 * ```ts
 * `XFORWARD ${XFORWARD_ATTRIBUTES.join(" ")}`; // => "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE"
 * ```
 */
export const XFORWARD_ATTRIBUTES: readonly string[] = Object.freeze([
  "NAME",
  "ADDR",
  "PORT",
  "PROTO",
  "HELO",
  "IDENT",
  "SOURCE",
]);

/** Postfix: a value is at most 255 characters as sent. */
const MAX_VALUE = 255;
/** Postfix: an XFORWARD PROTO is at most 64 characters. */
const MAX_XFORWARD_PROTO = 64;
/** RFC 1035 2.3.4 (and Postfix's HELO check): a host name is at most 255 characters. */
const MAX_HOST_NAME = 255;

/** `[UNAVAILABLE]` or `[TEMPUNAVAIL]`, any case: the proxy does not know the value. */
const UNAVAILABLE = /^\[(?:UNAVAILABLE|TEMPUNAVAIL)\]$/i;
// C0 controls, DEL, the C1 controls (NEL among them) and the Unicode line and paragraph separators.
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/;
/** Printable US-ASCII without space: an XFORWARD PROTO or IDENT. */
const GRAPHIC_ASCII = /^[\x21-\x7e]+$/;
/** A host name label as Postfix's valid_hostname() takes it: letters, digits, `_`, inner `-`, at most 63. */
const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

type Command = "XCLIENT" | "XFORWARD";

/** `value` with everything but printable ASCII shown as `?`, for a reply or a log line. */
function printable(value: string): string {
  return value.replace(/[^\x20-\x7e]/g, "?");
}

/** A 501 with reply `text`; `detail`, when given, is added to the log message only. */
function syntaxError(text: string, detail?: string): SmtpdException {
  const shown = printable(text);
  return new Smtpd501Exception(detail ? `501 5.5.4 ${shown} (${printable(detail)})` : undefined, shown);
}

/** Postfix's reply for a value that fails its attribute's check. */
function badValue(name: string, value: string, detail?: string): SmtpdException {
  return syntaxError(`Bad ${name} syntax: ${value}`, detail);
}

/**
 * Whether `name` is a host name as Postfix's valid_hostname() sees it:
 * dot-separated labels of letters, digits, `_` and inner `-`, at most 63
 * each and 255 in all, no empty label (so no trailing dot), and not all
 * digits (`192.0.2.1` is an address, not a name).
 */
function isHostName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_HOST_NAME) return false;
  if (!name.split(".").every((label) => LABEL.test(label))) return false;
  return /[^0-9.]/.test(name);
}

/**
 * An ADDR or DESTADDR value: IPv4, or IPv6 after `IPV6:` (any case). A bare
 * IPv6 address is taken too, as Postfix does. Returned in canonical form,
 * v4-mapped IPv6 as the IPv4 address it carries.
 */
function parseAddress(name: string, value: string): string {
  const v6 = /^ipv6:/i.test(value);
  const text = v6 ? value.slice(5) : value;
  const parsed = parseIpText(text);
  if (!parsed) throw badValue(name, value, "not an IP address");
  if (v6 && parsed.family !== "IPv6") throw badValue(name, value, "IPV6: prefix on an IPv4 address");
  return normalizeIp(text);
}

/** A PORT or DESTPORT value: decimal 0..65535. */
function parsePort(name: string, value: string): number {
  const port = /^[0-9]{1,5}$/.test(value) ? Number(value) : -1;
  if (port < 0 || port > 65535) throw badValue(name, value, "not a port number 0..65535");
  return port;
}

/** A NAME value: a host name, not an address. */
function parseName(name: string, value: string): string {
  if (!isHostName(value)) throw badValue(name, value, "not a valid host name");
  return value;
}

/** A HELO value: at most 255 characters (controls are already refused). */
function parseHelo(name: string, value: string): string {
  if (value.length > MAX_HOST_NAME) throw badValue(name, value, `longer than ${MAX_HOST_NAME} characters`);
  return value;
}

/**
 * Splits `args` into decoded attributes: the names upper-cased and checked
 * against `known`, each name once, the values xtext-decoded and free of
 * controls; `null` for `[UNAVAILABLE]` and `[TEMPUNAVAIL]`.
 */
function decodeAttributes(command: Command, args: string, known: readonly string[]): Map<string, string | null> {
  if (args.trim() === "") throw syntaxError(`Syntax: ${command} attribute=value [attribute=value ...]`);
  const attributes = new Map<string, string | null>();
  for (const item of args.split(" ")) {
    const eq = item.indexOf("=");
    if (eq <= 0 || eq === item.length - 1) throw syntaxError("Error: attribute=value expected");
    const sentName = item.slice(0, eq);
    const raw = item.slice(eq + 1);
    if (raw.length > MAX_VALUE) throw syntaxError("Error: attribute value too long");
    const name = sentName.toUpperCase();
    if (!known.includes(name)) throw syntaxError(`Bad ${command} attribute name: ${sentName}`);
    if (attributes.has(name)) throw syntaxError(`Bad ${command} attribute name: ${sentName}`, `${name} sent twice`);
    let value: string;
    try {
      value = decodeXtext(raw);
    } catch (err) {
      if (!(err instanceof Smtpd501Exception)) throw err;
      throw badValue(name, raw, err.text);
    }
    if (UNAVAILABLE.test(value)) {
      attributes.set(name, null);
      continue;
    }
    if (CONTROL.test(value)) throw badValue(name, value, "control character in the decoded value");
    attributes.set(name, value);
  }
  return attributes;
}

/**
 * Parses the arguments of `XCLIENT` (Postfix XCLIENT_README): the facts a
 * trusted proxy hands over about the real client.
 *
 * - `NAME`: a valid host name (not an address);
 * - `ADDR`, `DESTADDR`: IPv4, or IPv6 written `IPV6:2001:db8::1` (the prefix
 *   in any case; a bare IPv6 address is taken too); returned canonical, a
 *   v4-mapped address as IPv4;
 * - `PORT`, `DESTPORT`: decimal 0..65535;
 * - `PROTO`: `SMTP` or `ESMTP`, any case, returned upper-case;
 * - `HELO`: at most 255 characters; `LOGIN`: any text.
 *
 * Every value is xtext, at most 255 characters as sent, and may be
 * `[UNAVAILABLE]` or `[TEMPUNAVAIL]` (any case), returned as `null`. A value
 * with a control character once decoded is refused. An attribute not sent
 * is absent from the result.
 *
 * @param args the text after `XCLIENT `: `attr=value` pairs one space apart
 * @returns the attributes sent, decoded
 * @throws {Smtpd501Exception} `501 5.5.4` with Postfix's texts: `Syntax:
 * XCLIENT attribute=value [attribute=value ...]` (none),
 * `Error: attribute=value expected`, `Error: attribute value too long`,
 * `Bad XCLIENT attribute name: X` (unknown, or sent twice),
 * `Bad NAME syntax: value` (and so on for each attribute)
 *
 * @example
 * ```ts
 * const info = parseXclient("NAME=mail.example.com ADDR=IPV6:2001:DB8::1 PORT=54321 PROTO=esmtp");
 * info; // => { name: "mail.example.com", addr: "2001:db8::1", port: 54321, proto: "ESMTP" }
 * parseXclient("ADDR=::ffff:192.0.2.1 NAME=[TEMPUNAVAIL]"); // => { addr: "192.0.2.1", name: null }
 * parseXclient("LOGIN=alice+40example.com"); // => { login: "alice@example.com" }
 * parseXclient("HELO=x+0D+0AReceived:"); // throws Smtpd501Exception
 * parseXclient("REVERSE_NAME=a"); // throws Smtpd501Exception: 501 5.5.4 Bad XCLIENT attribute name: REVERSE_NAME
 * ```
 */
export function parseXclient(args: string): XclientInfo {
  const info: XclientInfo = {};
  for (const [name, value] of decodeAttributes("XCLIENT", args, XCLIENT_ATTRIBUTES)) {
    switch (name) {
      case "NAME":
        info.name = value === null ? null : parseName(name, value);
        break;
      case "ADDR":
        info.addr = value === null ? null : parseAddress(name, value);
        break;
      case "PORT":
        info.port = value === null ? null : parsePort(name, value);
        break;
      case "PROTO": {
        const proto = value?.toUpperCase() ?? null;
        if (proto !== null && proto !== "SMTP" && proto !== "ESMTP") throw badValue(name, value!, "SMTP or ESMTP");
        info.proto = proto;
        break;
      }
      case "HELO":
        info.helo = value === null ? null : parseHelo(name, value);
        break;
      case "LOGIN":
        info.login = value;
        break;
      case "DESTADDR":
        info.destaddr = value === null ? null : parseAddress(name, value);
        break;
      case "DESTPORT":
        info.destport = value === null ? null : parsePort(name, value);
        break;
    }
  }
  return info;
}

/**
 * Parses the arguments of `XFORWARD` (Postfix XFORWARD_README): what a
 * content filter passes on about the upstream client, for logging.
 *
 * - `NAME`: a valid host name (not an address);
 * - `ADDR`: IPv4, or IPv6 after `IPV6:` (any case), returned canonical, a
 *   v4-mapped address as IPv4;
 * - `PORT`: decimal 0..65535;
 * - `PROTO`: any name (`SMTP`, `ESMTP`, `QMQP`...) of at most 64 printable
 *   ASCII characters without space, as sent;
 * - `HELO`: at most 255 characters;
 * - `IDENT`: the upstream's queue id, printable ASCII without space;
 * - `SOURCE`: `LOCAL` or `REMOTE`, any case, returned upper-case.
 *
 * Every value is xtext, at most 255 characters as sent, and may be
 * `[UNAVAILABLE]` or `[TEMPUNAVAIL]` (any case), returned as `null`. A value
 * with a control character once decoded is refused. Only the attributes
 * sent are in the result: the caller merges them into what earlier XFORWARD
 * commands of the transaction said.
 *
 * @param args the text after `XFORWARD `: `attr=value` pairs one space apart
 * @returns the attributes sent, decoded
 * @throws {Smtpd501Exception} `501 5.5.4`, with the texts of
 * {@link parseXclient} (`Bad XFORWARD attribute name: X`, ...)
 *
 * @example
 * ```ts
 * const info = parseXforward("NAME=client.example ADDR=192.0.2.7 SOURCE=remote IDENT=4Bv2Lq0x1Zz1");
 * info; // => { name: "client.example", addr: "192.0.2.7", source: "REMOTE", ident: "4Bv2Lq0x1Zz1" }
 * parseXforward("HELO=[unavailable]"); // => { helo: null }
 * parseXforward("LOGIN=alice"); // throws Smtpd501Exception: 501 5.5.4 Bad XFORWARD attribute name: LOGIN
 * ```
 */
export function parseXforward(args: string): Partial<XforwardInfo> {
  const info: Partial<XforwardInfo> = {};
  for (const [name, value] of decodeAttributes("XFORWARD", args, XFORWARD_ATTRIBUTES)) {
    switch (name) {
      case "NAME":
        info.name = value === null ? null : parseName(name, value);
        break;
      case "ADDR":
        info.addr = value === null ? null : parseAddress(name, value);
        break;
      case "PORT":
        info.port = value === null ? null : parsePort(name, value);
        break;
      case "PROTO":
        if (value !== null && (value.length > MAX_XFORWARD_PROTO || !GRAPHIC_ASCII.test(value))) {
          throw badValue(name, value, `at most ${MAX_XFORWARD_PROTO} printable characters without space`);
        }
        info.proto = value;
        break;
      case "HELO":
        info.helo = value === null ? null : parseHelo(name, value);
        break;
      case "IDENT":
        if (value !== null && !GRAPHIC_ASCII.test(value)) {
          throw badValue(name, value, "printable characters without space");
        }
        info.ident = value;
        break;
      case "SOURCE": {
        const source = value?.toUpperCase() ?? null;
        if (source !== null && source !== "LOCAL" && source !== "REMOTE") {
          throw badValue(name, value!, "LOCAL or REMOTE");
        }
        info.source = source;
        break;
      }
    }
  }
  return info;
}
