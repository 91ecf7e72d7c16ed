/**
 * A minimal Maildir writer for the dev server.
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
   * Stores one message: `headersToPrepend` (e.g. from `traceHeaders`)
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

  /**
   * Takes back a message {@link deliver} stored, when what had to go with it
   * failed (its envelope file): the client is then told to retry, so a kept
   * file would become a duplicate. Resolves with the error to throw: `cause`,
   * or, if the file could not be removed, an error that says so and names it.
   */
  async withdraw(path: string, cause: unknown): Promise<unknown> {
    return await withoutFile(path, cause);
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
export async function makeDirectories(path: string): Promise<void> {
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
export async function writeAll(file: FileHandle, bytes: Uint8Array): Promise<void> {
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

/** The `code` of a Node-style system error (`"ENOENT"`), or `""`. */
function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "";
}
