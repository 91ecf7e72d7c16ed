/**
 * A minimal Maildir writer for the dev server, plus the trace headers
 * (`Return-Path`, `Received`) it prepends to each message.
 *
 * Delivery follows the Maildir protocol: the message is written under a
 * unique name into `tmp/`, flushed to disk, then renamed into `new/` (an
 * atomic step, so a reader never sees a partial file), and `new/` itself is
 * flushed so the rename survives a crash. Only `node:fs/promises`,
 * `node:path`, `node:os`, `node:crypto` and `node:process` are used: they
 * behave alike on Deno, Bun and Node.
 *
 * @module
 */
import { mkdir, open, rename, stat, unlink } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import process from "node:process";

const encoder = new TextEncoder();

/** Directory fsync errors that only mean "not supported here" (some file systems and platforms). */
const DIR_SYNC_UNSUPPORTED = new Set(["EINVAL", "EISDIR", "EPERM", "ENOTSUP", "EOPNOTSUPP"]);

/** Options of {@link Maildir.deliver}. */
export interface DeliverOptions {
  /**
   * Cancels the delivery while it is not yet in `new/` (e.g. `ctx.signal`:
   * the client left or the hook timed out, so nobody would see a `250`). The
   * delivery then rejects with the signal's reason and leaves nothing behind.
   */
  signal?: AbortSignal;
}

/**
 * A Maildir (`tmp/`, `new/`, `cur/`) that messages are delivered into.
 *
 * @example
 * ```ts
 * const maildir = new Maildir("./mail");
 * await maildir.init();
 * const path = await maildir.deliver(new TextEncoder().encode("Subject: hi\r\n\r\nbody\r\n"), "");
 * console.log("stored in", path); // ./mail/new/1764324000.4242_9f86d081884c7d65.myhost
 * ```
 */
export class Maildir {
  /** The Maildir's root directory, as given (trailing slashes dropped). */
  readonly dir: string;
  #host: string;

  /** Names the Maildir at `dir`; nothing is touched until {@link init} or {@link deliver}. */
  constructor(dir: string) {
    if (dir === "") throw new TypeError("Maildir directory must not be empty");
    this.dir = dir.length > 1 ? dir.replace(/\/+$/, "") || "/" : dir;
    // Maildir names use the host name as their last part: "/" and ":" would
    // break the file name and the ":2,flags" info suffix, so they are escaped
    // as the Maildir specification asks (octal escapes).
    this.#host = (hostname() || "localhost").replace(/\//g, "\\057").replace(/:/g, "\\072");
  }

  /**
   * Creates `tmp/`, `new/` and `cur/` (and the root) if missing, and checks
   * that a file can be created in `tmp/`, so a Maildir that cannot take mail
   * fails here, at start, rather than at the first message. Rejects with an
   * error naming the Maildir and the cause.
   */
  async init(): Promise<void> {
    try {
      for (const sub of ["tmp", "new", "cur"]) await makeDirectories(this.#path(sub));
      await this.#probe();
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      const error = new Error(`Maildir ${this.dir} cannot be created or written: ${reason}`, { cause: err });
      throw Object.assign(error, { code: errorCode(err) || undefined });
    }
  }

  /** Creates and removes an empty file in `tmp/` (read-only file systems, full disks, missing rights). */
  async #probe(): Promise<void> {
    const path = this.#path("tmp", `${this.#uniqueName()}.probe`);
    const file = await open(path, "wx", 0o600);
    await file.close().finally(() => unlink(path));
  }

  /**
   * Stores one message: `headersToPrepend` (e.g. from {@link traceHeaders})
   * followed by `data`, byte for byte. Resolves with the path of the file in
   * `new/` once it is durably there. On any error or cancellation nothing is
   * left behind, neither in `tmp/` nor in `new/`, and the error is rethrown.
   */
  async deliver(data: Uint8Array, headersToPrepend = "", options: DeliverOptions = {}): Promise<string> {
    const { signal } = options;
    stopIfAborted(signal);
    const name = this.#uniqueName();
    const tmpPath = this.#path("tmp", name);
    const newPath = this.#path("new", name);
    let file: FileHandle | undefined;
    let created: string | undefined;
    try {
      // "wx" (O_EXCL): never overwrite a file someone else created under the same name.
      file = await open(tmpPath, "wx", 0o600);
      created = tmpPath;
      await writeAll(file, encoder.encode(headersToPrepend));
      await writeAll(file, data);
      await file.sync();
      await file.close();
      file = undefined;
      // The last chance to cancel: once renamed, the message is in new/ for every reader to see.
      stopIfAborted(signal);
      await rename(tmpPath, newPath);
      created = newPath;
      await syncDirectory(this.#path("new"));
      return newPath;
    } catch (err) {
      await file?.close().catch(() => {});
      // A caller that sees an error tells the client to retry (451), so a file
      // already renamed into new/ must go too, or the retry makes a duplicate.
      throw created === undefined ? err : await withoutFile(created, err);
    }
  }

  #path(...parts: string[]): string {
    return [this.dir === "/" ? "" : this.dir, ...parts].join("/");
  }

  /** `time.pid_random.host`: unique across processes (pid), within one (random) and across hosts. */
  #uniqueName(): string {
    const seconds = Math.floor(Date.now() / 1000);
    return `${seconds}.${process.pid}_${randomBytes(8).toString("hex")}.${this.#host}`;
  }
}

/** Throws the signal's reason once it has aborted. */
function stopIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason ?? new Error("delivery cancelled");
}

/**
 * Removes the file a failed delivery made and returns the error to throw:
 * `err` itself, or, if the file could not be removed, an error that says so
 * and names it (a leftover must never go unnoticed).
 */
async function withoutFile(path: string, err: unknown): Promise<unknown> {
  try {
    await unlink(path);
    return err;
  } catch (unlinkErr) {
    if (errorCode(unlinkErr) === "ENOENT") return err;
    const reason = err instanceof Error ? err.message : String(err);
    const why = unlinkErr instanceof Error ? unlinkErr.message : String(unlinkErr);
    return Object.assign(new Error(`${reason}; and ${path} could not be removed: ${why}`, { cause: err }), {
      code: errorCode(err) || undefined,
    });
  }
}

/**
 * `mkdir -p`, one level at a time. Not `mkdir(path, { recursive: true })`:
 * on Node 20 that loops forever (busy, and deaf to everything but a signal
 * handler) where the kernel answers ENOENT for a directory whose parent
 * exists, as under /proc.
 */
async function makeDirectories(path: string): Promise<void> {
  try {
    await mkdir(path);
    return;
  } catch (err) {
    const code = errorCode(err);
    if (code === "EEXIST") return await mustBeDirectory(path, err);
    const parent = dirname(path);
    if (code !== "ENOENT" || parent === path) throw err;
  }
  await makeDirectories(dirname(path));
  try {
    // The parent exists now: ENOENT here is final, not a missing parent.
    await mkdir(path);
  } catch (err) {
    if (errorCode(err) !== "EEXIST") throw err;
    await mustBeDirectory(path, err);
  }
}

/** Whether the existing `path` is a directory (following symbolic links); else `err` is rethrown. */
async function mustBeDirectory(path: string, err: unknown): Promise<void> {
  const isDirectory = await stat(path).then((s) => s.isDirectory(), () => false);
  if (!isDirectory) {
    throw Object.assign(new Error(`${path} exists and is not a directory`, { cause: err }), {
      code: "ENOTDIR",
    });
  }
}

/** Writes all of `bytes` (a single write may be short). */
async function writeAll(file: FileHandle, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await file.write(bytes, offset, bytes.length - offset);
    if (bytesWritten <= 0) throw new Error("write made no progress");
    offset += bytesWritten;
  }
}

/**
 * fsyncs a directory so that a rename into it survives a crash. Where the
 * platform cannot fsync a directory (EINVAL, EISDIR, EPERM: some file
 * systems, Windows) that is not an error; any other failure is.
 */
export async function syncDirectory(path: string): Promise<void> {
  let dir: FileHandle;
  try {
    dir = await open(path, "r");
  } catch (err) {
    if (DIR_SYNC_UNSUPPORTED.has(errorCode(err))) return;
    throw err;
  }
  try {
    await dir.sync();
  } catch (err) {
    if (!DIR_SYNC_UNSUPPORTED.has(errorCode(err))) throw err;
  } finally {
    await dir.close().catch(() => {});
  }
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "";
}

// ---- trace headers ---------------------------------------------------------------------------

/** What {@link traceHeaders} needs to know of a message; mostly `ctx.server` and `ctx.envelope` fields. */
export interface TraceInfo {
  /** The reverse-path, with angle brackets (`ctx.envelope.from`): `"<a@example.com>"` or `"<>"`. */
  from: string;
  /** The forward-paths (`ctx.envelope.to`); the first one goes into the `for` clause. */
  to: readonly string[];
  /** The HELO/EHLO argument (`ctx.server.helo`). */
  helo: string;
  /** `ctx.server.heloMode`: `"HELO"` gives `SMTP`, `"EHLO"` gives `ESMTP` (RFC 3848). */
  heloMode: string;
  /** `ctx.server.remoteHost`. */
  remoteHost: string;
  /** `ctx.server.remoteIp`. */
  remoteIp: string;
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
  let protocol = info.heloMode === "EHLO" ? "ESMTP" : "SMTP";
  // RFC 3848 defines the S and A suffixes for ESMTP only.
  if (protocol === "ESMTP" && info.encrypted) protocol += "S";
  if (protocol.startsWith("ESMTP") && info.authenticated) protocol += "A";
  const ip = token(info.remoteIp, false);
  const literal = ip.includes(":") ? `IPv6:${ip}` : ip;
  const forClause = info.to.length > 0 ? `${crlf}\tfor ${path(info.to[0], utf8)};` : ";";
  return `Return-Path: ${path(info.from, utf8)}${crlf}` +
    `Received: from ${token(info.helo, utf8)} (${token(info.remoteHost, utf8)} [${literal}])${crlf}` +
    `\tby ${token(info.localHost, utf8)} with ${protocol} id ${token(info.id, false)}` +
    `${forClause} ${rfc5322Date(info.date ?? new Date())}${crlf}`;
}
