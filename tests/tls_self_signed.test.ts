/**
 * The WebCrypto certificate generator (src/tls/self_signed.ts) and its DER
 * encoder (src/tls/der.ts), run under all three runtimes:
 *
 *   deno test -A tests/tls_self_signed.test.ts
 *   bun test ./tests/tls_self_signed.test.ts
 *   node --import tsx --test tests/tls_self_signed.test.ts
 *
 * The openssl CLI is the judge: it encodes the same ASN.1 values for the DER
 * checks, parses and verifies every certificate, and `s_client` handshakes
 * with a node:tls server of the runtime under test that serves it.
 */
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import * as tls from "node:tls";
import {
  bitString,
  boolean,
  namedBits,
  nullValue,
  objectIdentifier,
  octetString,
  pem,
  sequence,
  setOf,
  smallInteger,
  time,
  tlv,
  unsignedInteger,
  utf8String,
} from "../src/tls/der.ts";
import { createSelfSignedCertificate, type PemPair } from "../src/tls/self_signed.ts";
import { generateSelfSignedCertificate } from "../src/tls/certificates.ts";
import { OPENSSL, scratchFolder } from "./scratch.ts";
import { withTimeout } from "./helpers.ts";

const TEST_OPTIONS = { timeout: 20_000 };
const scratch = scratchFolder("tls-self-signed");
const { path, openssl } = scratch;

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** What `openssl asn1parse -genstr` encodes for `spec` (e.g. `"INTEGER:128"`), as hex. */
function opensslDer(spec: string): string {
  const file = `genstr-${Math.random().toString(36).slice(2)}.der`;
  openssl("asn1parse", "-genstr", spec, "-noout", "-out", file);
  return readFileSync(path(file)).toString("hex");
}

/** The DER bytes of a PEM block. */
function derOf(pemText: string): Uint8Array {
  const base64 = pemText.split("\n").filter((line) => line !== "" && !line.startsWith("-----")).join("");
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

/** Runs openssl without blocking the event loop (a node:tls server of this process answers it). */
function opensslAsync(args: string[], input = ""): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(OPENSSL, args, { cwd: scratch.dir, timeout: 10_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    child.stdin?.end(input);
  });
}

/** A node:tls server of the runtime under test, serving `pair`. */
async function tlsServer(pair: PemPair): Promise<{ port: number; close: () => void }> {
  const server = tls.createServer({ cert: pair.cert, key: pair.key }, (socket) => {
    // The client ends the connection (s_client when its stdin ends): its exit code then says only how TLS went.
    socket.on("error", () => {});
    socket.on("end", () => socket.end());
    socket.write("hello\n");
  });
  server.on("tlsClientError", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as { port: number }).port, close: () => server.close() };
}

/** A node:tls client of the runtime under test that must verify `ca` for `servername`. */
function verifiedHandshake(port: number, ca: string, servername: string): Promise<string> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = tls.connect({ host: "127.0.0.1", port, ca, servername, rejectUnauthorized: true }, () => {
        const fingerprint = socket.getPeerCertificate().fingerprint256;
        socket.end();
        resolve(fingerprint);
      });
      socket.once("error", reject);
    }),
    5000,
    "TLS handshake",
  );
}

describe("der", () => {
  it("encodes like openssl: INTEGER, OID, NULL, BOOLEAN, UTF8String, times", TEST_OPTIONS, () => {
    const cases: Array<[Uint8Array, string]> = [
      [smallInteger(0), "INTEGER:0"],
      [smallInteger(127), "INTEGER:127"],
      [smallInteger(128), "INTEGER:128"],
      [smallInteger(256), "INTEGER:256"],
      [smallInteger(2 ** 40 + 5), "INTEGER:0x10000000005"],
      [unsignedInteger(Uint8Array.of(0, 0, 0x80, 1)), "INTEGER:0x8001"],
      [unsignedInteger(Uint8Array.of(0, 0, 0x7f)), "INTEGER:0x7f"],
      [objectIdentifier("2.5.4.3"), "OID:2.5.4.3"],
      [objectIdentifier("1.2.840.113549.1.1.11"), "OID:1.2.840.113549.1.1.11"],
      [objectIdentifier("1.2.840.10045.4.3.2"), "OID:1.2.840.10045.4.3.2"],
      [objectIdentifier("2.999.3"), "OID:2.999.3"],
      [nullValue(), "NULL"],
      [boolean(true), "BOOLEAN:TRUE"],
      [boolean(false), "BOOLEAN:FALSE"],
      [utf8String("Bücher €"), "FORMAT:UTF8,UTF8:Bücher €"],
      [time(new Date(Date.UTC(2049, 11, 31, 23, 59, 59))), "UTCTIME:491231235959Z"],
      [time(new Date(Date.UTC(1950, 0, 1, 0, 0, 0))), "UTCTIME:500101000000Z"],
      [time(new Date(Date.UTC(2050, 0, 1, 0, 0, 0))), "GENTIME:20500101000000Z"],
      [time(new Date(Date.UTC(1949, 11, 31, 23, 59, 59, 999))), "GENTIME:19491231235959Z"],
      [octetString(Uint8Array.of(1, 2, 3)), "FORMAT:HEX,OCTETSTRING:010203"],
      [bitString(Uint8Array.of(0xa0, 0x01)), "FORMAT:HEX,BITSTRING:A001"],
    ];
    for (const [ours, spec] of cases) assert.equal(hex(ours), opensslDer(spec), spec);
  });

  it("writes short and long lengths in their shortest form", TEST_OPTIONS, () => {
    for (const [size, head] of [[0, "0400"], [127, "047f"], [128, "048180"], [255, "0481ff"], [256, "04820100"]]) {
      const encoded = octetString(new Uint8Array(size as number));
      assert.equal(hex(encoded.subarray(0, (head as string).length / 2)), head, `length ${size}`);
      assert.equal(encoded.length, (size as number) + (head as string).length / 2);
    }
    assert.equal(hex(tlv(0x04, new Uint8Array(65536)).subarray(0, 5)), "0483010000");
  });

  it("drops trailing zero bits of named bits (KeyUsage) and sorts SET OF", TEST_OPTIONS, () => {
    assert.equal(hex(namedBits([0])), "03020780"); // digitalSignature
    assert.equal(hex(namedBits([0, 2])), "030205a0"); // digitalSignature, keyEncipherment
    assert.equal(hex(namedBits([8])), "0303070080");
    assert.equal(hex(namedBits([])), "030100");
    assert.equal(hex(setOf(smallInteger(300), smallInteger(5))), "31070201050202012c");
    assert.equal(hex(sequence()), "3000");
  });

  it("refuses what it cannot encode", TEST_OPTIONS, () => {
    assert.throws(() => objectIdentifier("3.1"), RangeError);
    assert.throws(() => objectIdentifier("1.40"), RangeError);
    assert.throws(() => objectIdentifier("1.2.03"), RangeError);
    assert.throws(() => smallInteger(-1), RangeError);
    assert.throws(() => time(new Date(Date.UTC(10000, 0, 1))), RangeError);
  });

  it("writes PEM in lines of 64 characters that openssl reads back", TEST_OPTIONS, () => {
    const der = sequence(octetString(new Uint8Array(100).fill(7)), utf8String("x"));
    const text = pem("TEST DATA", der);
    const lines = text.trimEnd().split("\n");
    assert.equal(lines[0], "-----BEGIN TEST DATA-----");
    assert.equal(lines.at(-1), "-----END TEST DATA-----");
    assert.ok(
      lines.slice(1, -1).every((line, i, all) => i === all.length - 1 ? line.length <= 64 : line.length === 64),
    );
    writeFileSync(path("pem-test.pem"), text);
    const parsed = openssl("asn1parse", "-in", "pem-test.pem");
    assert.match(parsed, /OCTET STRING/);
    assert.match(parsed, /UTF8STRING\s*:x/);
    assert.deepEqual(derOf(text), der);
  });
});

for (const keyType of ["rsa", "ec"] as const) {
  describe(`createSelfSignedCertificate (${keyType})`, () => {
    const notBefore = new Date(Date.UTC(2025, 0, 2, 3, 4, 5));
    const notAfter = new Date(Date.now() + 30 * 86_400_000);
    const altNames = [
      "mail.example.test",
      "127.0.0.1",
      "*.wild.example.test",
      "2001:db8::25",
      "bücher.example",
      "::ffff:192.0.2.9",
      "fe80::1%eth0",
      "localhost",
    ];
    let pair: PemPair;
    let text: string;

    before(async () => {
      pair = await createSelfSignedCertificate({ commonName: "Mail Test", altNames, notBefore, notAfter, keyType });
      writeFileSync(path(`${keyType}.crt`), pair.cert);
      writeFileSync(path(`${keyType}.key`), pair.key);
      text = openssl("x509", "-in", `${keyType}.crt`, "-noout", "-text");
    });

    it("is an X.509 v3 certificate openssl parses, with the algorithm and key asked for", TEST_OPTIONS, () => {
      assert.match(text, /Version: 3 \(0x2\)/);
      assert.match(text, /Subject: CN\s?=\s?Mail Test\n/);
      assert.match(text, /Issuer: CN\s?=\s?Mail Test\n/);
      if (keyType === "rsa") {
        assert.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
        assert.match(text, /Public-Key: \(2048 bit\)/);
        assert.match(text, /Exponent: 65537/);
      } else {
        assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
        assert.match(text, /Public-Key: \(256 bit\)/);
        assert.match(text, /prime256v1/);
      }
      assert.match(pair.cert, /^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n$/);
      assert.match(pair.key, /^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END PRIVATE KEY-----\n$/);
    });

    it("has the server extensions: CA:FALSE and key usage critical, serverAuth, a key id", TEST_OPTIONS, () => {
      assert.match(text, /X509v3 Basic Constraints: critical\n\s+CA:FALSE\n/);
      assert.match(
        text,
        keyType === "rsa"
          ? /X509v3 Key Usage: critical\n\s+Digital Signature, Key Encipherment\n/
          : /X509v3 Key Usage: critical\n\s+Digital Signature\n/,
      );
      assert.match(text, /X509v3 Extended Key Usage: \n\s+TLS Web Server Authentication\n/);
      assert.match(text, /X509v3 Subject Key Identifier: \n\s+(?:[0-9A-F]{2}:){19}[0-9A-F]{2}\n/);
    });

    it("puts the names in the SAN in order: IDN as xn--, IPv6 and v4-mapped as 16 bytes, no zone", TEST_OPTIONS, () => {
      const san = /X509v3 Subject Alternative Name: \n\s+(.*)\n/.exec(text)?.[1];
      assert.equal(
        san,
        [
          "DNS:mail.example.test",
          "IP Address:127.0.0.1",
          "DNS:*.wild.example.test",
          "IP Address:2001:DB8:0:0:0:0:0:25",
          "DNS:xn--bcher-kva.example",
          "IP Address:0:0:0:0:0:FFFF:C000:209",
          "IP Address:FE80:0:0:0:0:0:0:1",
          "DNS:localhost",
        ].join(", "),
      );
    });

    it("is valid from notBefore to notAfter, to the second", TEST_OPTIONS, () => {
      const x509 = new X509Certificate(pair.cert);
      assert.equal(Date.parse(x509.validFrom), notBefore.getTime());
      assert.equal(Date.parse(x509.validTo), Math.floor(notAfter.getTime() / 1000) * 1000);
    });

    it("has a valid self-signature and a key that belongs to it", TEST_OPTIONS, () => {
      const verified = openssl("verify", "-partial_chain", "-trusted", `${keyType}.crt`, `${keyType}.crt`);
      assert.match(verified, /: OK\n$/);
      const fromCert = openssl("x509", "-in", `${keyType}.crt`, "-noout", "-pubkey");
      const fromKey = openssl("pkey", "-in", `${keyType}.key`, "-pubout");
      assert.equal(fromKey, fromCert);
    });

    it("serves TLS on this runtime: openssl s_client and node:tls verify it", TEST_OPTIONS, async () => {
      const server = await tlsServer(pair);
      try {
        for (const version of ["-tls1_3", "-tls1_2"]) {
          const ran = await opensslAsync([
            "s_client",
            "-connect",
            `127.0.0.1:${server.port}`,
            version,
            "-servername",
            "mail.example.test",
            "-verify_hostname",
            "mail.example.test",
            "-CAfile",
            `${keyType}.crt`,
            "-verify_return_error",
            "-brief",
          ]);
          assert.equal(ran.code, 0, `s_client ${version}: ${ran.stderr}`);
          assert.match(ran.stderr, /Verification: OK/, ran.stderr);
          assert.match(ran.stderr, new RegExp(`Protocol version: TLSv1\\.${version.slice(-1)}`), ran.stderr);
        }
        // A name that is not in the SAN fails verification.
        const wrong = await opensslAsync([
          "s_client",
          "-connect",
          `127.0.0.1:${server.port}`,
          "-verify_hostname",
          "other.example.test",
          "-CAfile",
          `${keyType}.crt`,
          "-verify_return_error",
          "-brief",
        ]);
        assert.notEqual(wrong.code, 0, "a name outside the SAN must not verify");
        for (const name of ["mail.example.test", "a.wild.example.test", "xn--bcher-kva.example", "localhost"]) {
          const fingerprint = await verifiedHandshake(server.port, pair.cert, name);
          assert.equal(fingerprint, new X509Certificate(pair.cert).fingerprint256, name);
        }
      } finally {
        server.close();
      }
    });
  });
}

describe("createSelfSignedCertificate", () => {
  it("writes GeneralizedTime from 2050 on, and openssl reads it", TEST_OPTIONS, async () => {
    const pair = await createSelfSignedCertificate({
      commonName: "far",
      altNames: ["far.example.test"],
      notBefore: new Date(Date.UTC(2049, 5, 1)),
      notAfter: new Date(Date.UTC(2126, 0, 2, 3, 4, 5)),
      keyType: "ec",
    });
    writeFileSync(path("far.crt"), pair.cert);
    const dates = openssl("x509", "-in", "far.crt", "-noout", "-dates");
    assert.match(dates, /notBefore=Jun {2}1 00:00:00 2049 GMT/);
    assert.match(dates, /notAfter=Jan {2}2 03:04:05 2126 GMT/);
  });

  it("gives each certificate its own positive 16-byte serial and its own key", TEST_OPTIONS, async () => {
    const spec = {
      commonName: "x",
      altNames: [],
      notBefore: new Date(),
      notAfter: new Date(Date.now() + 86_400_000),
      keyType: "ec" as const,
    };
    const [a, b] = await Promise.all([createSelfSignedCertificate(spec), createSelfSignedCertificate(spec)]);
    const serialA = new X509Certificate(a.cert).serialNumber;
    assert.notEqual(serialA, new X509Certificate(b.cert).serialNumber);
    assert.match(serialA, /^[4-7][0-9A-F]{31}$/i);
    assert.notEqual(a.key, b.key);
    // No names: no SAN extension at all (an empty one would be invalid).
    writeFileSync(path("nosan.crt"), a.cert);
    assert.doesNotMatch(openssl("x509", "-in", "nosan.crt", "-noout", "-text"), /Subject Alternative Name/);
  });

  it("refuses names and dates it cannot put into a certificate", TEST_OPTIONS, async () => {
    const base = {
      commonName: "x",
      notBefore: new Date(),
      notAfter: new Date(Date.now() + 1000),
      keyType: "ec" as const,
    };
    await assert.rejects(createSelfSignedCertificate({ ...base, altNames: ["with space.example"] }), RangeError);
    await assert.rejects(createSelfSignedCertificate({ ...base, altNames: ["a/b"] }), RangeError);
    await assert.rejects(
      createSelfSignedCertificate({ ...base, altNames: [], notAfter: base.notBefore }),
      /ends .* before it starts/,
    );
    await assert.rejects(
      generateSelfSignedCertificate({ keyType: "dsa" as unknown as "ec" }),
      /keyType must be "rsa" or "ec"/,
    );
  });

  it("needs no npm package: src/tls imports only node: built-ins and local files", TEST_OPTIONS, () => {
    const dir = new URL("../src/tls/", import.meta.url);
    for (const file of readdirSync(dir).filter((f) => f.endsWith(".ts"))) {
      const source = readFileSync(new URL(file, dir), "utf8");
      for (const [, spec] of source.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*)["']([^"']+)["']/g)) {
        assert.match(spec, /^(?:node:|\.\.?\/)/, `src/tls/${file} imports ${spec}`);
      }
    }
  });
});
