/**
 * Certificates for the server's TLS (STARTTLS and implicit TLS): loading PEM
 * files, generating a self-signed certificate, fingerprints, and a small store
 * that lets a running server switch certificates. No socket code lives here.
 *
 * @example
 * ```ts
 * const pair = await loadCertificateFiles("/etc/ssl/mail/fullchain.pem", "/etc/ssl/mail/privkey.pem")
 *   .catch(() => generateSelfSignedCertificate({ hosts: ["127.0.0.1"] }));
 * const store = new TlsCertificateStore(pair);
 * const tlsOptions = store.toServerOptions({ minVersion: "TLSv1.2" });
 * ```
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash, createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import type { TlsServerOptions } from "../transport/types.ts";
import { createSelfSignedCertificate } from "./self_signed.ts";

/** A PEM certificate (chain) and the PEM private key that belongs to its first certificate. */
export interface CertificateKeyPair {
  /** PEM certificate chain: the server's own certificate first, then intermediates. */
  readonly cert: string;
  /** PEM private key (unencrypted) of the first certificate. */
  readonly key: string;
}

/** One `-----BEGIN X-----` ... `-----END X-----` block, re-assembled with clean LF line ends. */
interface PemBlock {
  readonly label: string;
  readonly pem: string;
  /** Legacy OpenSSL encryption (`Proc-Type: 4,ENCRYPTED` header inside a `RSA/EC PRIVATE KEY` block). */
  readonly legacyEncrypted: boolean;
}

/** Lenient on purpose: files often carry text around the blocks (`openssl x509 -text`, PKCS#12 "Bag Attributes"). */
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

function pemBlocks(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const match of text.matchAll(PEM_BLOCK)) {
    const label = match[1];
    // CRLF files and indented blocks (pasted from YAML) would otherwise break some PEM parsers.
    const lines = match[2].split(/\r?\n|\r/).map((line) => line.trim()).filter((line) => line !== "");
    blocks.push({
      label,
      pem: `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`,
      legacyEncrypted: lines.some((line) => /^Proc-Type:\s*4,\s*ENCRYPTED/i.test(line)),
    });
  }
  return blocks;
}

/** The CERTIFICATE blocks of `text`, in file order; throws when there is none. */
function certificateBlocks(blocks: PemBlock[], source: string): string[] {
  const certs = blocks.filter((b) => b.label === "CERTIFICATE").map((b) => b.pem);
  if (certs.length === 0) {
    throw new Error(`${source} holds no PEM certificate (no "-----BEGIN CERTIFICATE-----" block)`);
  }
  return certs;
}

/** The single private key block of `blocks`, or undefined when there is none; throws for encrypted or several keys. */
function privateKeyBlock(blocks: PemBlock[], source: string): string | undefined {
  const keys = blocks.filter((b) => b.label.endsWith("PRIVATE KEY"));
  if (keys.some((b) => b.label === "ENCRYPTED PRIVATE KEY" || b.legacyEncrypted)) {
    throw new Error(
      `${source} holds an encrypted private key: encrypted keys need a passphrase, which is not supported; ` +
        `store the key unencrypted (e.g. \`openssl pkey -in KEY -out key.pem\`) and protect the file instead`,
    );
  }
  if (keys.length > 1) throw new Error(`${source} holds ${keys.length} private keys; expected exactly one`);
  return keys[0]?.pem;
}

function parseCertificate(pem: string, index: number, source: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (error) {
    throw new Error(`certificate #${index + 1} in ${source} cannot be parsed: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * Parses every certificate and the key, and checks that the key belongs to the
 * FIRST certificate: TLS sends the chain in order and the peer verifies the
 * first one against our signature, so a key matching a later one would only
 * fail at handshake time with an unhelpful error.
 *
 * X509Certificate and checkPrivateKey exist and agree on Node 20, Deno 2.9 and
 * Bun 1.4 (RSA and EC keys), so no `tls.createSecureContext` fallback is needed.
 */
function checkPair(certPems: string[], keyPem: string, certSource: string, keySource: string): void {
  const certs = certPems.map((pem, i) => parseCertificate(pem, i, certSource));
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (error) {
    throw new Error(`the private key in ${keySource} cannot be parsed: ${(error as Error).message}`, { cause: error });
  }
  if (certs[0].checkPrivateKey(key)) return;
  const other = certs.findIndex((cert) => cert.checkPrivateKey(key));
  throw new Error(
    `the private key in ${keySource} does not match the certificate in ${certSource}` +
      (other > 0 ? ` (it matches certificate #${other + 1}: the server's own certificate must come first)` : ""),
  );
}

/** Checks an in-memory pair as {@link loadCertificateFiles} does files; errors start with `what` and name the field. */
function checkPemPair(pair: CertificateKeyPair, what: string): void {
  try {
    const certs = certificateBlocks(pemBlocks(pair.cert), '"cert"');
    const key = privateKeyBlock(pemBlocks(pair.key), '"key"');
    if (key === undefined) throw new Error('"key" holds no PEM private key');
    checkPair(certs, key, '"cert"', '"key"');
  } catch (error) {
    throw new Error(`${what}: ${(error as Error).message}`, { cause: error });
  }
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    throw new Error(`cannot read the TLS ${what} file ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Reads a PEM certificate (chain) and its private key from files and checks
 * that they parse and belong together.
 *
 * The certificate file may hold the whole chain (server certificate first) and
 * also the key; then `keyPath` may be omitted or name the same file. Text
 * around the PEM blocks and CRLF line ends are fine. RSA and EC keys in PKCS#8
 * (`PRIVATE KEY`) or traditional (`RSA PRIVATE KEY`, `EC PRIVATE KEY`) form
 * work; encrypted keys are refused, since there is no passphrase option.
 *
 * @param certPath PEM file with the certificate chain, and maybe the key.
 * @param keyPath PEM file with the private key (default: `certPath`).
 * @returns The certificates (concatenated, LF line ends) and the key, ready for {@link TlsServerOptions}.
 * @throws Error naming the file and what is missing or wrong.
 *
 * @example
 * ```ts
 * const { cert, key } = await loadCertificateFiles("/etc/ssl/mail/combined.pem");
 * ```
 */
export async function loadCertificateFiles(certPath: string, keyPath?: string): Promise<CertificateKeyPair> {
  const certBlocks = pemBlocks(await readText(certPath, "certificate"));
  const certs = certificateBlocks(certBlocks, certPath);
  const separateKey = keyPath !== undefined && keyPath !== certPath;
  const keySource = separateKey ? keyPath : certPath;
  const key = privateKeyBlock(separateKey ? pemBlocks(await readText(keyPath, "key")) : certBlocks, keySource);
  if (key === undefined) {
    throw new Error(
      separateKey
        ? `${keyPath} holds no PEM private key ` +
          `(no "-----BEGIN PRIVATE KEY-----" or "-----BEGIN RSA/EC PRIVATE KEY-----" block)`
        : `${certPath} holds no private key and no key file was given: pass the key file too, ` +
          `or append the key to the certificate file`,
    );
  }
  checkPair(certs, key, certPath, keySource);
  return { cert: certs.join(""), key };
}

/** Upper-case, colon-separated hex: the form `openssl x509 -fingerprint` and X509Certificate print. */
function colonHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0").toUpperCase()).join(":");
}

/**
 * The SHA-256 fingerprint of the first certificate in `certPem`, e.g.
 * `"AB:CD:..."` (32 upper-case hex bytes), as clients show it for pinning.
 *
 * @throws Error when `certPem` holds no certificate.
 */
export function certificateFingerprint(certPem: string): string {
  const [first] = certificateBlocks(pemBlocks(certPem), "the given PEM text");
  // The fingerprint is defined over the DER bytes, so hashing them needs no X.509 parser.
  const base64 = first.split("\n").filter((line) => line !== "" && !line.startsWith("-----")).join("");
  return colonHex(createHash("sha256").update(Buffer.from(base64, "base64")).digest());
}

/** Options for {@link generateSelfSignedCertificate}. */
export interface SelfSignedCertificateOptions {
  /** Subject CN; default: the first DNS name of the SAN, else `"localhost"`. */
  commonName?: string;
  /** Extra SAN entries after the hosts (IPs become IP entries, the rest DNS entries). */
  altNames?: string[];
  /** The server's hosts or bind addresses; `"*"`, `"0.0.0.0"`, `"::"` and `""` are skipped. */
  hosts?: string[];
  /** Validity in days from now (default 90). */
  days?: number;
  /** `"rsa"` (2048 bit, default) or `"ec"` (P-256: much faster to generate, not accepted by very old clients). */
  keyType?: "rsa" | "ec";
}

/** A generated certificate, its key and the certificate's SHA-256 fingerprint. */
export interface SelfSignedCertificate extends CertificateKeyPair {
  /** SHA-256 fingerprint, colon-separated upper-case hex. */
  readonly fingerprint256: string;
}

const WILDCARD_BINDS = new Set(["*", "0.0.0.0", "::"]);
const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1"];

function isLoopback(name: string): boolean {
  return name === "localhost" || name === "::1" || (isIP(name) === 4 && name.startsWith("127."));
}

/** The SAN list in order: hosts, alt names, then the loopback names when a host is loopback or wildcard. */
function subjectAltNames(hosts: string[], altNames: string[]): string[] {
  const names: string[] = [];
  let addLoopback = false;
  const add = (raw: string, isHost: boolean) => {
    // Hosts may come as "[::1]"; DNS names compare case-insensitively, so store them lower-case.
    const name = raw.trim().replace(/^\[(.*)\]$/, "$1").toLowerCase();
    if (WILDCARD_BINDS.has(name)) addLoopback ||= isHost;
    if (name === "" || WILDCARD_BINDS.has(name)) return;
    if (isHost && isLoopback(name)) addLoopback = true;
    if (!names.includes(name)) names.push(name);
  };
  hosts.forEach((host) => add(host, true));
  altNames.forEach((name) => add(name, false));
  // With no usable name at all the server can only be reached by a client that trusts loopback names.
  if (addLoopback || names.length === 0) LOOPBACK_NAMES.forEach((name) => add(name, false));
  return names;
}

/**
 * Generates a self-signed certificate for the server, for tests and for a
 * server started without a certificate of its own.
 *
 * The SAN holds the hosts and `altNames` (IPs as IP entries, names as DNS
 * entries); `localhost`, `127.0.0.1` and `::1` are added when a host is a
 * loopback or wildcard address (or when no name is left). The CN is
 * `commonName`, else the first DNS name of the SAN, else `"localhost"`. RSA
 * 2048 (or EC P-256), SHA-256 signature, valid for `days`.
 *
 * Made with WebCrypto (`crypto.subtle`) and a small DER encoder, no npm
 * package. Takes about 0.1-0.4 s with RSA, a few milliseconds with EC.
 *
 * @example
 * ```ts
 * const { cert, key, fingerprint256 } = await generateSelfSignedCertificate({ hosts: ["127.0.0.1"] });
 * console.log(`certificate SHA-256 ${fingerprint256}`); // certificate SHA-256 3B:1C:...
 * certificateFingerprint(cert); // => fingerprint256
 * key.startsWith("-----BEGIN PRIVATE KEY-----"); // => true
 * ```
 */
export async function generateSelfSignedCertificate(
  options: SelfSignedCertificateOptions = {},
): Promise<SelfSignedCertificate> {
  const days = options.days ?? 90;
  if (!(Number.isFinite(days) && days > 0)) throw new RangeError(`days must be a positive number, got ${days}`);
  const keyType = options.keyType ?? "rsa";
  if (keyType !== "rsa" && keyType !== "ec") throw new RangeError(`keyType must be "rsa" or "ec", got ${keyType}`);
  const names = subjectAltNames(options.hosts ?? [], options.altNames ?? []);
  const commonName = options.commonName ?? names.find((name) => isIP(name) === 0) ?? "localhost";

  const now = Date.now();
  const generated = await createSelfSignedCertificate({
    commonName,
    altNames: names,
    // An hour back, so a client whose clock runs a little behind does not see a not-yet-valid certificate.
    notBefore: new Date(now - 60 * 60 * 1000),
    notAfter: new Date(now + days * 24 * 60 * 60 * 1000),
    keyType,
  });
  return { cert: generated.cert, key: generated.key, fingerprint256: certificateFingerprint(generated.cert) };
}

/** Where {@link TlsCertificateStore} looks up certificates by SNI name. */
export type SniCertificates =
  | Readonly<Record<string, CertificateKeyPair>>
  | ReadonlyMap<string, CertificateKeyPair>
  | ((serverName: string) => CertificateKeyPair | undefined);

/** What {@link TlsCertificateStore.toServerOptions} copies into the server options besides the certificates. */
export interface TlsBaseOptions {
  /** Lowest protocol version accepted. */
  readonly minVersion?: "TLSv1.2" | "TLSv1.3";
  /** OpenSSL cipher list for TLS 1.2. */
  readonly ciphers?: string;
  /** Handshake timeout in milliseconds. */
  readonly handshakeTimeoutMs?: number;
}

/**
 * Holds the server's current default certificate and optional SNI
 * certificates, and hands them to a transport through live
 * {@link TlsServerOptions}: after {@link TlsCertificateStore.replace} the next
 * handshake uses the new certificates, without restarting the server.
 *
 * @example
 * ```ts
 * const defaultPair = await generateSelfSignedCertificate({ hosts: ["mx.example.net"], keyType: "ec" });
 * const examplePair = await generateSelfSignedCertificate({ hosts: ["*.example.com"], keyType: "ec" });
 * const store = new TlsCertificateStore(defaultPair, { "*.example.com": examplePair });
 * const tls = store.toServerOptions({ minVersion: "TLSv1.2" }); // for the transport: follows replace()
 * store.select("mail.example.com") === examplePair; // => true
 * store.select("mx.example.net") === defaultPair; // => true
 * // Later, after renewing (from files: await loadCertificateFiles(certPath, keyPath)):
 * const renewed = await generateSelfSignedCertificate({ hosts: ["mx.example.net"], keyType: "ec" });
 * store.replace(renewed); // the SNI certificates stay
 * tls.cert === renewed.cert; // => true
 * ```
 */
export class TlsCertificateStore {
  #default!: CertificateKeyPair;
  #byName: Map<string, CertificateKeyPair> | undefined;
  #callback: ((serverName: string) => CertificateKeyPair | undefined) | undefined;

  /**
   * Creates a store holding `defaultCert` and, optionally, SNI certificates.
   *
   * @param defaultCert Used when no SNI entry matches (and for clients that send no SNI name).
   * @param sni Certificates by host name (exact or `*.domain`, case-insensitive), or a callback (whose pairs are
   *   not checked, and should be the same objects for the same certificate).
   * @throws Error when a certificate and its key do not parse or do not match.
   */
  constructor(defaultCert: CertificateKeyPair, sni?: SniCertificates) {
    this.replace(defaultCert, sni ?? {});
  }

  /** The current default certificate and key. */
  get current(): CertificateKeyPair {
    return this.#default;
  }

  /**
   * Swaps in a new default certificate and, when given, a new SNI source
   * (omit `sni` to keep the current one; pass `{}` to drop it). Every pair is
   * checked first, so a bad certificate leaves the store unchanged.
   *
   * @throws Error when a certificate and its key do not parse or do not match.
   */
  replace(defaultCert: CertificateKeyPair, sni?: SniCertificates): void {
    checkPemPair(defaultCert, "the default TLS certificate");
    let byName = this.#byName;
    let callback = this.#callback;
    if (typeof sni === "function") {
      byName = undefined;
      callback = sni;
    } else if (sni !== undefined) {
      callback = undefined;
      byName = new Map();
      for (const [name, pair] of sni instanceof Map ? sni : Object.entries(sni)) {
        checkPemPair(pair, `the TLS certificate for "${name}"`);
        byName.set(name.toLowerCase(), pair);
      }
    }
    // Keep the caller's objects: identity is what the node transport caches its secure contexts by.
    this.#default = defaultCert;
    this.#byName = byName;
    this.#callback = callback;
  }

  /**
   * The certificate for an SNI name: exact match, then a wildcard one level up
   * (`*.example.com` for `mail.example.com`, not for `a.mail.example.com`),
   * then the default. Returns the same object for the same certificate each
   * time, until {@link TlsCertificateStore.replace}.
   */
  select(serverName: string): CertificateKeyPair {
    const name = serverName.toLowerCase().replace(/\.$/, "");
    if (this.#callback) return (name !== "" && this.#callback(name)) || this.#default;
    if (name === "" || !this.#byName) return this.#default;
    const dot = name.indexOf(".");
    return this.#byName.get(name) ?? (dot > 0 ? this.#byName.get(`*${name.slice(dot)}`) : undefined) ??
      this.#default;
  }

  /**
   * Server options whose `cert`/`key` are getters reading the current default
   * and whose `sni` calls {@link TlsCertificateStore.select}.
   *
   * `sni` falls back to the current default rather than `undefined`: a
   * transport builds its default context once at listen time (node:tls
   * `createServer`, `Deno.listenTls`), so only through `sni` does a replaced
   * default reach clients there; clients that send no SNI name may keep the
   * certificate the listener started with. STARTTLS reads `cert`/`key` anew
   * on every upgrade.
   */
  toServerOptions(base: TlsBaseOptions = {}): TlsServerOptions {
    const current = (): CertificateKeyPair => this.#default;
    return {
      get cert(): string {
        return current().cert;
      },
      get key(): string {
        return current().key;
      },
      minVersion: base.minVersion,
      ciphers: base.ciphers,
      handshakeTimeoutMs: base.handshakeTimeoutMs,
      sni: (serverName: string) => this.select(serverName),
    };
  }
}
