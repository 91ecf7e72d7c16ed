/**
 * A self-signed X.509 v3 server certificate made with WebCrypto alone: the
 * key pair comes from `crypto.subtle` (RSA 2048 or EC P-256), the
 * certificate is encoded by hand (`der.ts`) and signed with SHA-256. Works
 * the same on Deno, Bun and Node, with no npm package.
 *
 * The certificate has what clients check for a server: a random serial, the
 * subject (CN) also as issuer, the validity, the SAN (DNS names and IP
 * addresses), `basicConstraints` CA:FALSE and `keyUsage` (both critical),
 * `extKeyUsage` serverAuth and a subject key identifier.
 *
 * @module
 */
import { webcrypto } from "node:crypto";
import { isIP } from "node:net";
import { domainToASCII } from "node:url";
import { parseIpText } from "../cidr.ts";
import {
  ascii,
  bitString,
  boolean,
  explicit,
  implicitPrimitive,
  namedBits,
  nullValue,
  objectIdentifier,
  octetString,
  pem,
  sequence,
  setOf,
  smallInteger,
  time,
  unsignedInteger,
  utf8String,
} from "./der.ts";

/** What goes into the certificate. */
export interface CertificateSpec {
  /** Subject and issuer CN. */
  readonly commonName: string;
  /**
   * The SAN, in order: IPv4 and IPv6 addresses become iPAddress entries (a `%zone` suffix is dropped), the rest
   * dNSName entries (an IDN in its `xn--` form; `*.example.com` is fine). Empty: no SAN extension.
   */
  readonly altNames: readonly string[];
  /** Start of the validity. */
  readonly notBefore: Date;
  /** End of the validity. */
  readonly notAfter: Date;
  /** RSA 2048 with PKCS#1 v1.5 signatures, or EC P-256 with ECDSA. */
  readonly keyType: "rsa" | "ec";
}

/** A PEM certificate and its PEM PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`). */
export interface PemPair {
  /** The certificate. */
  readonly cert: string;
  /** The private key. */
  readonly key: string;
}

const OID = {
  commonName: "2.5.4.3",
  sha256WithRSAEncryption: "1.2.840.113549.1.1.11",
  ecdsaWithSHA256: "1.2.840.10045.4.3.2",
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
} as const;

/** KeyUsage bits (RFC 5280 4.2.1.3). */
const DIGITAL_SIGNATURE = 0;
const KEY_ENCIPHERMENT = 2;

const subtle = webcrypto.subtle;

function extension(oid: string, critical: boolean, value: Uint8Array): Uint8Array {
  return sequence(objectIdentifier(oid), ...(critical ? [boolean(true)] : []), octetString(value));
}

/** A DNS name as the IA5String a dNSName is: IDNs in their `xn--` form; throws for what cannot be one. */
function dnsNameBytes(name: string): Uint8Array {
  const wildcard = name.startsWith("*.");
  const rest = wildcard ? name.slice(2) : name;
  // domainToASCII returns "" for what is no valid domain name (and accepts plain ASCII names unchanged).
  const asciiName = /^[\x21-\x7e]*$/.test(rest) ? rest : domainToASCII(rest);
  if (asciiName === "" || !/^[A-Za-z0-9_.-]+$/.test(asciiName)) {
    throw new RangeError(`cannot put ${JSON.stringify(name)} into a certificate as a DNS name`);
  }
  return ascii((wildcard ? "*." : "") + asciiName);
}

function ipAddressBytes(ip: string): Uint8Array {
  const parsed = parseIpText(ip.replace(/%.*$/, ""));
  if (!parsed) throw new RangeError(`cannot put ${JSON.stringify(ip)} into a certificate as an IP address`);
  return parsed.bytes;
}

/** The SubjectAltName value: dNSName [2] and iPAddress [7] entries. */
function subjectAltName(names: readonly string[]): Uint8Array {
  return sequence(
    ...names.map((name) =>
      isIP(name.replace(/%.*$/, ""))
        ? implicitPrimitive(7, ipAddressBytes(name))
        : implicitPrimitive(2, dnsNameBytes(name))
    ),
  );
}

/** A positive 16-byte serial number, random (RFC 5280 allows up to 20 bytes; CAs use at least 64 random bits). */
function serialNumber(): Uint8Array {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] & 0x7f) | 0x40; // positive, and never a leading zero to drop
  return unsignedInteger(bytes);
}

/** The Dss-Sig-Value X.509 wants from WebCrypto's ECDSA signature (r and s, each 32 bytes, concatenated). */
function ecdsaSignatureToDer(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  return sequence(unsignedInteger(raw.subarray(0, half)), unsignedInteger(raw.subarray(half)));
}

/**
 * Makes a key pair and a self-signed certificate for it.
 *
 * @throws RangeError when a name or address cannot be encoded, or the dates are out of order.
 */
export async function createSelfSignedCertificate(spec: CertificateSpec): Promise<PemPair> {
  if (!(spec.notBefore.getTime() < spec.notAfter.getTime())) {
    throw new RangeError(`the validity ends (${spec.notAfter.toISOString()}) before it starts`);
  }
  const rsa = spec.keyType === "rsa";
  const algorithm = rsa
    ? { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: Uint8Array.of(1, 0, 1), hash: "SHA-256" }
    : { name: "ECDSA", namedCurve: "P-256" };
  const signatureAlgorithm = rsa
    ? sequence(objectIdentifier(OID.sha256WithRSAEncryption), nullValue())
    : sequence(objectIdentifier(OID.ecdsaWithSHA256));

  const keys = await subtle.generateKey(algorithm, true, ["sign", "verify"]);
  const spki = new Uint8Array(await subtle.exportKey("spki", keys.publicKey));
  const pkcs8 = new Uint8Array(await subtle.exportKey("pkcs8", keys.privateKey));
  // RFC 7093 2 (4): the leftmost 160 bits of the SHA-256 of the SubjectPublicKeyInfo.
  const keyId = new Uint8Array(await subtle.digest("SHA-256", spki)).subarray(0, 20);

  const name = sequence(setOf(sequence(objectIdentifier(OID.commonName), utf8String(spec.commonName))));
  const keyUsage = rsa ? [DIGITAL_SIGNATURE, KEY_ENCIPHERMENT] : [DIGITAL_SIGNATURE];
  const extensions = [
    extension(OID.basicConstraints, true, sequence()),
    extension(OID.keyUsage, true, namedBits(keyUsage)),
    extension(OID.extKeyUsage, false, sequence(objectIdentifier(OID.serverAuth))),
    extension(OID.subjectKeyIdentifier, false, octetString(keyId)),
    ...(spec.altNames.length > 0 ? [extension(OID.subjectAltName, false, subjectAltName(spec.altNames))] : []),
  ];
  const tbs = sequence(
    explicit(0, smallInteger(2)), // v3
    serialNumber(),
    signatureAlgorithm,
    name, // issuer: self-signed
    sequence(time(spec.notBefore), time(spec.notAfter)),
    name,
    spki,
    explicit(3, sequence(...extensions)),
  );

  const signed = new Uint8Array(
    await subtle.sign(rsa ? { name: "RSASSA-PKCS1-v1_5" } : { name: "ECDSA", hash: "SHA-256" }, keys.privateKey, tbs),
  );
  const certificate = sequence(tbs, signatureAlgorithm, bitString(rsa ? signed : ecdsaSignatureToDer(signed)));
  return { cert: pem("CERTIFICATE", certificate), key: pem("PRIVATE KEY", pkcs8) };
}
