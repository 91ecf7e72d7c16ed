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
  /** Makes a self-signed certificate `name.crt` with key `name.key` (EC P-256 unless `rsa`), valid for 2 days. */
  selfSigned(name: string, subject: { cn: string; san: string; rsa?: boolean }): TestCertificate;
}

/** A certificate made for a test, with its files. */
export interface TestCertificate {
  /** PEM certificate. */
  readonly cert: string;
  /** PEM private key. */
  readonly key: string;
  /** Path of the certificate file. */
  readonly certPath: string;
  /** Path of the key file. */
  readonly keyPath: string;
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
  const read = (name: string) => readFileSync(path(name), "utf8");
  const openssl = (...args: string[]) =>
    execFileSync(OPENSSL, args, { cwd: dir, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] });
  return {
    dir,
    path,
    read,
    openssl,
    remove: cleanUp,
    selfSigned(name, { cn, san, rsa }) {
      const key = rsa ? ["-newkey", "rsa:2048"] : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
      openssl(
        "req",
        "-x509",
        ...key,
        "-nodes",
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.crt`,
        "-days",
        "2",
        "-subj",
        `/CN=${cn}`,
        "-addext",
        `subjectAltName=${san}`,
      );
      return {
        cert: read(`${name}.crt`),
        key: read(`${name}.key`),
        certPath: path(`${name}.crt`),
        keyPath: path(`${name}.key`),
      };
    },
  };
}
