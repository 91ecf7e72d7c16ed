/**
 * A scratch folder for a test file's generated material (certificates made
 * with the openssl CLI; no keys are committed), removed when the file's tests
 * end or the process exits.
 */
import { after } from "node:test";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

/** Files in a temporary folder, and openssl run inside it. */
export interface Scratch {
  /** The folder. */
  readonly dir: string;
  /** The full path of `name` in the folder. */
  path(name: string): string;
  /** The text of `name` in the folder. */
  read(name: string): string;
  /** Runs {@link OPENSSL} with `args` in the folder; returns its stdout. */
  openssl(...args: string[]): string;
  /** Removes the folder now (it is also removed after the tests). */
  remove(): void;
}

/** The openssl CLI (Debian's, present on these machines and installed by CI). */
export const OPENSSL = "/usr/bin/openssl";

/** Makes a scratch folder named after `prefix`, cleaned up after the file's tests. */
export function scratchFolder(prefix: string): Scratch {
  const dir = mkdtempSync(join(tmpdir(), `midi-smtp-${prefix}-`));
  const cleanUp = () => rmSync(dir, { recursive: true, force: true });
  after(cleanUp);
  // Also when the runner ends the process early (a runner timeout, a failed before hook).
  process.once("exit", cleanUp);
  const path = (name: string) => join(dir, name);
  return {
    dir,
    path,
    read: (name) => readFileSync(path(name), "utf8"),
    openssl: (...args) => execFileSync(OPENSSL, args, { cwd: dir, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] }),
    remove: cleanUp,
  };
}
