/**
 * A scratch folder for a test file's generated material (certificates made
 * with the openssl CLI; no keys are committed), removed when the file's tests
 * end or the process exits.
 */
import { after } from "node:test";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
  /** Makes a CA certificate `name.pem` with key `name.key` (EC P-256), valid for 2 days. */
  makeCa(name: string, cn: string): void;
  /**
   * Makes `name.pem` (key `name.key`, made with `keyArgs`, e.g. {@link EC_KEY}) signed by the CA or
   * intermediate `issuer.pem`/`issuer.key`, with the given X.509 v3 extension lines.
   */
  makeSigned(name: string, issuer: string, subject: string, keyArgs: readonly string[], extensions: string[]): void;
}

/** openssl `req` arguments for a new EC P-256 key. */
export const EC_KEY: readonly string[] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
/** openssl `req` arguments for a new RSA 2048 key. */
export const RSA_KEY: readonly string[] = ["-newkey", "rsa:2048"];

/** Serial numbers of the signed certificates: distinct within a test process. */
let serial = 1000;

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
      const key = rsa ? RSA_KEY : EC_KEY;
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
    makeCa(name, cn) {
      openssl(
        "req",
        "-x509",
        ...EC_KEY,
        "-nodes",
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.pem`,
        "-days",
        "2",
        "-subj",
        `/CN=${cn}`,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
      );
    },
    makeSigned(name, issuer, subject, keyArgs, extensions) {
      openssl("req", "-new", ...keyArgs, "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subject);
      writeFileSync(path(`${name}.ext`), extensions.join("\n") + "\n");
      openssl(
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        `${issuer}.pem`,
        "-CAkey",
        `${issuer}.key`,
        "-set_serial",
        String(serial++),
        "-days",
        "2",
        "-sha256",
        "-extfile",
        `${name}.ext`,
        "-out",
        `${name}.pem`,
      );
    },
  };
}
