/**
 * Unix socket files for the three transports: what is at the path before
 * binding, how the socket gets there, and removing it again.
 *
 * Deno.listen, Bun.listen and node:net (libuv) all unlink the path they bound
 * when their listener closes, without looking at what is there by then: had
 * another server taken the path over meanwhile, its socket would go. So each
 * transport binds at a temporary name in the same directory, and the socket
 * is hard-linked to the real path here and the temporary name removed: the
 * runtime's own unlink at close then hits a name that no longer exists. Only
 * {@link UnixSocketFile.remove} removes the real file, and only while it is
 * still the one bound here (same device and inode). A link, unlike a rename,
 * never replaces a file: a server that took the path a moment earlier keeps
 * it, and this one fails to listen as it would with a plain bind. (Where a
 * file system has no hard links, the socket is renamed into place instead.)
 *
 * A socket file already at the path is probed before the link, as Dovecot
 * does: if a server accepts a connection on it, it is not stale and listening
 * fails rather than stealing its clients; if nobody answers it is stale (left
 * by a server that died) and is removed, as Postfix and Dovecot do. Any other
 * kind of file (a regular file, a directory...) is never replaced or deleted.
 *
 * node:fs and node:net are used on every runtime: Deno and Bun implement them,
 * and their results (error codes, `lstat`) are the same there.
 *
 * @module
 */
import { type BigIntStats, linkSync, lstatSync, renameSync, type Stats, unlinkSync } from "node:fs";
import * as net from "node:net";
import { dirname, join } from "node:path";
import type { SocketAddress } from "./types.ts";

/** How long the probe of an existing socket file may take before it counts as in use. */
const PROBE_TIMEOUT_MS = 2000;
/** Tries at a free temporary name (a clash only happens with a name left by someone else). */
const TEMP_ATTEMPTS = 10;
/**
 * Longest temporary path aimed for, in bytes: under the smallest `sun_path`
 * (104 bytes on macOS and the BSDs, NUL included). A longer real path makes
 * the temporary name no longer than the real one's.
 */
const TEMP_PATH_BUDGET = 100;
/** Length of the temporary file name (a dot and random letters) when the budget allows. */
const TEMP_NAME_LENGTH = 12;
/** What `link()` fails with on a file system without hard links: the socket is renamed into place instead. */
const NO_HARD_LINKS = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS"]);

/** A file's identity: device and inode (a path can be reused, these not while the file exists). */
export interface FileIdentity {
  /** Device number. */
  readonly dev: bigint;
  /** Inode number. */
  readonly ino: bigint;
}

/** The address of a Unix-socket listener and of both ends of its connections. */
export function unixSocketAddress(path: string): SocketAddress {
  return { hostname: "", port: 0, family: "unix", path };
}

/** The socket file a listener bound, removed on close only while it is still that file. */
export class UnixSocketFile {
  /** The path listened on. */
  readonly path: string;
  #dev: bigint;
  #ino: bigint;
  #removed = false;

  /** Remembers the socket bound at `path` by its `identity` (device and inode). */
  constructor(path: string, identity: FileIdentity) {
    this.path = path;
    this.#dev = identity.dev;
    this.#ino = identity.ino;
  }

  /** Whether the file at the path is still the socket bound here. */
  isOurs(): boolean {
    try {
      const stat = lstatSync(this.path, { bigint: true });
      return stat.isSocket() && stat.dev === this.#dev && stat.ino === this.#ino;
    } catch {
      return false;
    }
  }

  /** Removes the file if it is still ours (another server may have replaced it); never throws. Idempotent. */
  remove(): void {
    if (this.#removed) return;
    this.#removed = true;
    if (!this.isOurs()) return;
    try {
      unlinkSync(this.path);
    } catch { /* gone already */ }
  }
}

/** The error a Unix-socket listen fails with, naming the path; the runtime's error is its `cause`. */
export class UnixSocketError extends Error {
  /** The path that could not be listened on. */
  readonly path: string;
  /** The error code, e.g. `"EADDRINUSE"` (a server answers there) or `"EEXIST"` (not a socket). */
  readonly code: string | undefined;

  /** An error about `path`: `message` says what went wrong, `code` is errno-style, `cause` the runtime's error. */
  constructor(path: string, message: string, code?: string, cause?: unknown) {
    super(`cannot listen on Unix socket ${path}: ${message}`, cause === undefined ? undefined : { cause });
    this.name = "UnixSocketError";
    this.path = path;
    this.code = code;
  }
}

/** What kind of file a `lstat` result is, for an error message. */
function fileKind(stat: Stats | BigIntStats): string {
  if (stat.isFile()) return "regular file";
  if (stat.isDirectory()) return "directory";
  if (stat.isSymbolicLink()) return "symbolic link";
  if (stat.isFIFO()) return "FIFO";
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return "device";
  return "file";
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Whether a server accepts connections on the socket file at `path` (`false`: refused, or the file is gone). */
export function socketAnswers(path: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path });
    const done = (answer: boolean | Error) => {
      clearTimeout(timer);
      socket.removeAllListeners("connect");
      socket.on("error", () => {});
      socket.destroy();
      if (answer instanceof Error) reject(answer);
      else resolve(answer);
    };
    // A listener whose backlog is full does not answer in time: it is alive all the same.
    const timer = setTimeout(() => done(true), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", (err) => {
      const code = errorCode(err);
      // ECONNREFUSED: nobody listens (a stale socket); ENOENT: the file went away meanwhile.
      if (code === "ECONNREFUSED" || code === "ENOENT") done(false);
      // EAGAIN: the listener's backlog is full, so there is a listener.
      else if (code === "EAGAIN") done(true);
      else done(new UnixSocketError(path, `cannot tell whether a server uses it: ${errorText(err)}`, code, err));
    });
  });
}

/**
 * The socket file at `path`, or `undefined` if there is none; any other kind
 * of file rejects with a {@link UnixSocketError} (and is left alone).
 */
function socketAt(path: string): BigIntStats | undefined {
  let stat: BigIntStats;
  try {
    stat = lstatSync(path, { bigint: true });
  } catch (err) {
    if (errorCode(err) === "ENOENT") return undefined;
    throw new UnixSocketError(path, errorText(err), errorCode(err), err);
  }
  if (!stat.isSocket()) {
    throw new UnixSocketError(
      path,
      `a ${fileKind(stat)} is there, not a socket (left alone: remove it or choose another path)`,
      "EEXIST",
    );
  }
  return stat;
}

/**
 * Checks what is at `path`: nothing is fine (resolves `undefined`); a stale
 * socket too (resolves its identity, for {@link bindUnixSocket} to remove
 * it). A socket a server answers on, or any other kind of file, rejects with
 * a {@link UnixSocketError}. Nothing is removed here.
 */
export async function checkSocketPath(path: string): Promise<FileIdentity | undefined> {
  for (let attempt = 1;; attempt++) {
    const before = socketAt(path);
    if (!before) return undefined;
    if (await socketAnswers(path)) {
      throw new UnixSocketError(path, "a server is listening on it already", "EADDRINUSE");
    }
    // The file probed must be the one there now: one replaced during the probe (even with
    // the inode number of the removed one, which the file system may hand out again) is probed again.
    const after = socketAt(path);
    if (!after) return undefined;
    if (after.dev === before.dev && after.ino === before.ino && after.ctimeNs === before.ctimeNs) {
      return { dev: after.dev, ino: after.ino };
    }
    if (attempt === 3) throw new UnixSocketError(path, "the socket file there keeps being replaced", "EBUSY");
  }
}

/** Bytes of `text` in UTF-8 (what counts against `sun_path`). */
function byteLength(text: string): number {
  return new TextEncoder().encode(text).length;
}

/** A temporary name beside `path`: a dot and random letters, short enough to bind wherever `path` could. */
export function temporarySibling(path: string): string {
  const dir = dirname(path);
  const realName = byteLength(path) - byteLength(dir) - 1;
  const room = TEMP_PATH_BUDGET - byteLength(dir) - 1;
  const length = Math.max(2, Math.min(TEMP_NAME_LENGTH, Math.max(room, realName)));
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const random = crypto.getRandomValues(new Uint8Array(length - 1));
  const name = "." + Array.from(random, (b) => alphabet[b % alphabet.length]).join("");
  return join(dir, name);
}

/**
 * Listens on the Unix socket `path`: has `bind` listen at a temporary name
 * beside it, checks the path ({@link checkSocketPath}), removes a stale
 * socket there, and links the new socket to it ({@link placeSocket}; see the
 * module comment). A file that is no socket fails before anything is bound.
 * `close` undoes `bind` if a later step fails. Rejects with a
 * {@link UnixSocketError}.
 */
export async function bindUnixSocket<T>(
  path: string,
  bind: (tempPath: string) => T | Promise<T>,
  close: (handle: T) => unknown,
): Promise<{ handle: T; file: UnixSocketFile }> {
  socketAt(path); // fails early on a file that is no socket, before anything is bound
  let handle: T | undefined;
  let tempPath = "";
  for (let attempt = 1; handle === undefined; attempt++) {
    tempPath = temporarySibling(path);
    try {
      handle = await bind(tempPath);
    } catch (err) {
      // Some file has that name already (bind never replaces one): take another name.
      if (errorCode(err) === "EADDRINUSE" && attempt < TEMP_ATTEMPTS) continue;
      throw new UnixSocketError(path, errorText(err), errorCode(err), err);
    }
  }
  let bound: BigIntStats | undefined;
  try {
    bound = lstatSync(tempPath, { bigint: true });
    // Probed only now, after the bind, so that nothing but the probe lies between the check and the link.
    const stale = await checkSocketPath(path);
    // Only the very file probed as stale: had it been replaced since, the link fails instead.
    if (stale) new UnixSocketFile(path, stale).remove();
    placeSocket(tempPath, path);
    return { handle, file: new UnixSocketFile(path, bound) };
  } catch (err) {
    await close(handle);
    // The runtimes remove the temporary name as they close; the real one is ours to remove if it got linked.
    if (bound) {
      new UnixSocketFile(tempPath, bound).remove();
      new UnixSocketFile(path, bound).remove();
    }
    throw err instanceof UnixSocketError ? err : new UnixSocketError(path, errorText(err), errorCode(err), err);
  }
}

/**
 * Gives the socket bound at `tempPath` the name `path` and drops the
 * temporary name. Never replaces a file at `path`: rejects with a
 * {@link UnixSocketError} naming what is there.
 */
export function placeSocket(tempPath: string, path: string): void {
  try {
    linkSync(tempPath, path);
  } catch (err) {
    if (errorCode(err) === "EEXIST") throw appeared(path);
    if (!NO_HARD_LINKS.has(errorCode(err) ?? "")) throw err;
    // No hard links here: a rename, which would replace a file that appeared since the check.
    if (lstatOrUndefined(path)) throw appeared(path);
    renameSync(tempPath, path);
    return;
  }
  unlinkSync(tempPath);
}

/** The error for a file that appeared at `path` while this server was binding. */
function appeared(path: string): UnixSocketError {
  const there = lstatOrUndefined(path);
  if (!there || there.isSocket()) {
    return new UnixSocketError(path, "another server took the path meanwhile", "EADDRINUSE");
  }
  return new UnixSocketError(
    path,
    `a ${fileKind(there)} appeared there meanwhile, not a socket (left alone)`,
    "EEXIST",
  );
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}
