/**
 * Certificate handling (src/tls/certificates.ts), run under all three runtimes:
 *
 *   deno test -A tests/tls_certs.test.ts
 *   bun test ./tests/tls_certs.test.ts
 *   node --import tsx --test tests/tls_certs.test.ts
 *
 * Test certificates and keys are made with the openssl CLI in a temporary
 * directory at run time, so no key is ever committed.
 */
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { writeFileSync } from "node:fs";
import * as tls from "node:tls";
import {
  certificateFingerprint,
  type CertificateKeyPair,
  generateSelfSignedCertificate,
  loadCertificateFiles,
  TlsCertificateStore,
} from "../src/tls/certificates.ts";
import { nodeTransport } from "../src/transport/node.ts";
import { scratchFolder } from "./scratch.ts";
import { withTimeout } from "./helpers.ts";

const TEST_OPTIONS = { timeout: 10_000 };
const FINGERPRINT = /^(?:[0-9A-F]{2}:){31}[0-9A-F]{2}$/;

const scratch = scratchFolder("tls-certs");
const { path, read, openssl } = scratch;

/** `openssl x509 -text` of a PEM, to see what X509Certificate does not expose on Node 20 (signature algorithm, key size). */
function describeCertificate(pem: string): string {
  return execFileSync("openssl", ["x509", "-noout", "-text"], { input: pem, encoding: "utf8" });
}

/** An IPv6 address written out in full, lower case (`2001:db8::25` -> `2001:db8:0:0:0:0:0:25`). */
function fullIpv6(ip: string): string {
  const [head, tail] = ip.toLowerCase().split("::");
  const left = head ? head.split(":") : [];
  const right = tail === undefined ? [] : tail ? tail.split(":") : [];
  const zeros = tail === undefined ? [] : Array(8 - left.length - right.length).fill("0");
  return [...left, ...zeros, ...right].map((group) => group.replace(/^0+(?=.)/, "")).join(":");
}

/** The SAN as a sorted list, IPv6 written out in full: Deno prints `::1`, Node and Bun `0:0:0:0:0:0:0:1`. */
function sanEntries(pem: string): string[] {
  const san = new X509Certificate(pem).subjectAltName ?? "";
  return san.split(", ").map((entry) =>
    entry.replace(/^IP Address:(.*:.*)$/, (_m, ip: string) => `IP Address:${fullIpv6(ip)}`)
  ).sort();
}

/** Connects with node:tls, verifying the server against `ca` (rejectUnauthorized); resolves with what the client saw. */
function handshake(
  port: number,
  options: { ca: string; servername: string },
): Promise<{ authorized: boolean; error?: string; fingerprint256: string }> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: true, ...options }, () => {
        const result = {
          authorized: socket.authorized,
          error: socket.authorizationError ? String(socket.authorizationError) : undefined,
          fingerprint256: socket.getPeerCertificate().fingerprint256,
        };
        socket.end();
        resolve(result);
      });
      socket.once("error", reject);
    }),
    4000,
    "TLS handshake",
  );
}

/** A node:tls server on 127.0.0.1 with `pair`; closed by the returned function. */
async function tlsServer(pair: CertificateKeyPair): Promise<{ port: number; close: () => void }> {
  const server = tls.createServer({ cert: pair.cert, key: pair.key }, (socket) => socket.end());
  server.on("tlsClientError", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as { port: number }).port, close: () => server.close() };
}

before(() => {
  // Plain RSA and EC P-256 certificates (PKCS#8 keys), each with a DNS SAN.
  scratch.selfSigned("rsa", { cn: "rsa.test", san: "DNS:rsa.test", rsa: true });
  scratch.selfSigned("ec", { cn: "ec.test", san: "DNS:ec.test" });
  // Traditional key forms ("RSA PRIVATE KEY", "EC PRIVATE KEY").
  openssl("pkey", "-in", "rsa.key", "-traditional", "-out", "rsa-traditional.key");
  openssl("pkey", "-in", "ec.key", "-traditional", "-out", "ec-traditional.key");
  // A CA and a leaf signed by it: the chain.
  openssl(
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    "/CN=Test CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign",
  );
  openssl(
    "req",
    "-new",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "leaf.key",
    "-out",
    "leaf.csr",
    "-subj",
    "/CN=leaf.test",
  );
  writeFileSync(path("leaf.ext"), "subjectAltName=DNS:leaf.test\nbasicConstraints=CA:FALSE\n");
  openssl(
    "x509",
    "-req",
    "-in",
    "leaf.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "leaf.crt",
    "-days",
    "2",
    "-extfile",
    "leaf.ext",
  );
  // Encrypted keys: PKCS#8 and the legacy OpenSSL header form.
  openssl("pkey", "-in", "ec.key", "-aes256", "-passout", "pass:secret", "-out", "encrypted.key");
  openssl(
    "pkey",
    "-in",
    "rsa.key",
    "-traditional",
    "-aes256",
    "-passout",
    "pass:secret",
    "-out",
    "encrypted-legacy.key",
  );

  writeFileSync(path("chain.crt"), read("leaf.crt") + read("ca.crt"));
  // One file with everything, the way some tools write it: text around the blocks, CRLF line ends.
  writeFileSync(
    path("combined.pem"),
    ("Bag Attributes\n    friendlyName: leaf\nsubject=CN = leaf.test\n" + read("leaf.crt") + read("ca.crt") +
      "Key Attributes: <No Attributes>\n" + read("leaf.key")).replace(/\n/g, "\r\n"),
  );
  writeFileSync(path("wrong-order.pem"), read("ca.crt") + read("leaf.crt") + read("leaf.key"));
  writeFileSync(path("two-keys.pem"), read("rsa.crt") + read("rsa.key") + read("ec.key"));
  writeFileSync(path("empty.pem"), "nothing here\n");
});

describe("loadCertificateFiles", () => {
  it("loads an RSA and an EC P-256 certificate with their keys, PKCS#8 and traditional", TEST_OPTIONS, async () => {
    for (const name of ["rsa", "ec"]) {
      for (const keyFile of [`${name}.key`, `${name}-traditional.key`]) {
        const pair = await loadCertificateFiles(path(`${name}.crt`), path(keyFile));
        assert.equal(pair.cert, read(`${name}.crt`));
        assert.equal(pair.key, read(keyFile));
        tls.createSecureContext(pair);
      }
    }
    assert.match(read("rsa-traditional.key"), /^-----BEGIN RSA PRIVATE KEY-----/);
    assert.match(read("ec-traditional.key"), /^-----BEGIN EC PRIVATE KEY-----/);
  });

  it("loads a chain and key from separate files", TEST_OPTIONS, async () => {
    const pair = await loadCertificateFiles(path("chain.crt"), path("leaf.key"));
    assert.equal(pair.cert, read("leaf.crt") + read("ca.crt"));
    assert.equal(pair.key, read("leaf.key"));
  });

  it("loads chain and key from one combined file with CRLF and text around the blocks", TEST_OPTIONS, async () => {
    for (const keyPath of [undefined, path("combined.pem")]) {
      const pair = await loadCertificateFiles(path("combined.pem"), keyPath);
      assert.equal(pair.cert, read("leaf.crt") + read("ca.crt"));
      assert.equal(pair.key, read("leaf.key"));
    }
  });

  it("serves the loaded chain: a client trusting only the CA verifies it", TEST_OPTIONS, async () => {
    const server = await tlsServer(await loadCertificateFiles(path("combined.pem")));
    try {
      const seen = await handshake(server.port, { ca: read("ca.crt"), servername: "leaf.test" });
      assert.equal(seen.error, undefined);
      assert.equal(seen.authorized, true);
    } finally {
      server.close();
    }
  });

  it("refuses a key that does not match the certificate", TEST_OPTIONS, async () => {
    await assert.rejects(loadCertificateFiles(path("rsa.crt"), path("leaf.key")), (error: Error) => {
      assert.match(error.message, /private key in .*leaf\.key does not match the certificate in .*rsa\.crt/);
      return true;
    });
    await assert.rejects(loadCertificateFiles(path("ec.crt"), path("rsa.key")), /does not match/);
  });

  it("says so when the key belongs to a later certificate of the chain", TEST_OPTIONS, async () => {
    await assert.rejects(
      loadCertificateFiles(path("wrong-order.pem")),
      /matches certificate #2: the server's own certificate must come first/,
    );
  });

  it("names the file and what is missing", TEST_OPTIONS, async () => {
    await assert.rejects(
      loadCertificateFiles(path("rsa.crt")),
      (error: Error) => error.message.startsWith(`${path("rsa.crt")} holds no private key and no key file was given`),
    );
    await assert.rejects(
      loadCertificateFiles(path("rsa.crt"), path("ca.crt")),
      (error: Error) => error.message.startsWith(`${path("ca.crt")} holds no PEM private key`),
    );
    await assert.rejects(
      loadCertificateFiles(path("empty.pem"), path("rsa.key")),
      (error: Error) => error.message.startsWith(`${path("empty.pem")} holds no PEM certificate`),
    );
    await assert.rejects(
      loadCertificateFiles(path("missing.crt")),
      (error: Error) => error.message.startsWith(`cannot read the TLS certificate file ${path("missing.crt")}`),
    );
    await assert.rejects(
      loadCertificateFiles(path("rsa.crt"), path("missing.key")),
      (error: Error) => error.message.startsWith(`cannot read the TLS key file ${path("missing.key")}`),
    );
    await assert.rejects(loadCertificateFiles(path("two-keys.pem")), /holds 2 private keys; expected exactly one/);
  });

  it("refuses encrypted keys: no passphrase support", TEST_OPTIONS, async () => {
    assert.match(read("encrypted.key"), /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    assert.match(read("encrypted-legacy.key"), /Proc-Type: 4,ENCRYPTED/);
    for (const keyFile of ["encrypted.key", "encrypted-legacy.key"]) {
      const crt = keyFile === "encrypted.key" ? "ec.crt" : "rsa.crt";
      await assert.rejects(loadCertificateFiles(path(crt), path(keyFile)), (error: Error) => {
        assert.ok(error.message.startsWith(`${path(keyFile)} holds an encrypted private key`), error.message);
        assert.match(error.message, /need a passphrase, which is not supported/);
        return true;
      });
    }
  });
});

describe("certificateFingerprint", () => {
  it("is the SHA-256 of the first certificate, as X509Certificate and openssl print it", TEST_OPTIONS, () => {
    const expected = new X509Certificate(read("leaf.crt")).fingerprint256;
    assert.match(expected, FINGERPRINT);
    assert.equal(certificateFingerprint(read("chain.crt")), expected);
    assert.equal(certificateFingerprint(read("combined.pem")), expected);
    const fromOpenssl = openssl("x509", "-in", "leaf.crt", "-noout", "-fingerprint", "-sha256");
    assert.equal(fromOpenssl.trim().replace(/^.*=/, ""), expected);
    assert.throws(() => certificateFingerprint("no pem"), /holds no PEM certificate/);
  });
});

describe("generateSelfSignedCertificate", () => {
  let generated: { cert: string; key: string; fingerprint256: string };

  before(async () => {
    generated = await generateSelfSignedCertificate({
      hosts: ["127.0.0.1", "Mail.Example.test", "*", ""],
      altNames: ["smtp.example.test", "192.0.2.7", "mail.example.test"],
      days: 10,
    });
  });

  it("puts the hosts and alt names in the SAN, plus the loopback names", TEST_OPTIONS, () => {
    assert.deepEqual(
      sanEntries(generated.cert),
      [
        "DNS:localhost",
        "DNS:mail.example.test",
        "DNS:smtp.example.test",
        "IP Address:127.0.0.1",
        "IP Address:192.0.2.7",
        "IP Address:0:0:0:0:0:0:0:1",
      ].sort(),
    );
  });

  it("takes the first DNS name of the SAN as CN", TEST_OPTIONS, () => {
    assert.equal(new X509Certificate(generated.cert).subject, "CN=mail.example.test");
  });

  it("signs with SHA-256, RSA 2048, valid for the given days", TEST_OPTIONS, () => {
    const text = describeCertificate(generated.cert);
    assert.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
    assert.match(text, /Public-Key: \(2048 bit\)/);
    assert.match(text, /CA:FALSE/);
    assert.match(text, /TLS Web Server Authentication/);
    const validTo = Date.parse(new X509Certificate(generated.cert).validTo);
    assert.ok(Math.abs(validTo - (Date.now() + 10 * 86_400_000)) < 120_000, `validTo ${new Date(validTo)}`);
  });

  it("returns the fingerprint in colon hex, matching the certificate", TEST_OPTIONS, () => {
    assert.match(generated.fingerprint256, FINGERPRINT);
    assert.equal(generated.fingerprint256, new X509Certificate(generated.cert).fingerprint256);
    assert.equal(generated.fingerprint256, certificateFingerprint(generated.cert));
  });

  it("gives a key that matches and that tls.createSecureContext accepts", TEST_OPTIONS, () => {
    tls.createSecureContext({ cert: generated.cert, key: generated.key });
    assert.doesNotThrow(() => new TlsCertificateStore(generated));
  });

  it("defaults to localhost names, CN localhost and 90 days", TEST_OPTIONS, async () => {
    const pair = await generateSelfSignedCertificate({ keyType: "ec" });
    const x509 = new X509Certificate(pair.cert);
    assert.equal(x509.subject, "CN=localhost");
    assert.deepEqual(
      sanEntries(pair.cert),
      ["DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1"].sort(),
    );
    assert.ok(Math.abs(Date.parse(x509.validTo) - (Date.now() + 90 * 86_400_000)) < 120_000);
    assert.match(
      describeCertificate(pair.cert),
      /ecdsa-with-SHA256[\s\S]*prime256v1|prime256v1[\s\S]*ecdsa-with-SHA256/,
    );
  });

  it(
    "adds no loopback names for public hosts; CN from commonName, else localhost without a DNS name",
    TEST_OPTIONS,
    async () => {
      const named = await generateSelfSignedCertificate({
        hosts: ["[2001:db8::25]", "mx.example.test"],
        keyType: "ec",
      });
      assert.deepEqual(sanEntries(named.cert), ["DNS:mx.example.test", "IP Address:2001:db8:0:0:0:0:0:25"].sort());
      const explicit = await generateSelfSignedCertificate({
        hosts: ["192.0.2.1"],
        commonName: "Test Server",
        keyType: "ec",
      });
      assert.equal(new X509Certificate(explicit.cert).subject, "CN=Test Server");
      const ipOnly = await generateSelfSignedCertificate({ hosts: ["192.0.2.1"], keyType: "ec" });
      assert.equal(new X509Certificate(ipOnly.cert).subject, "CN=localhost");
      assert.deepEqual(sanEntries(ipOnly.cert), ["IP Address:192.0.2.1"]);
    },
  );

  it("refuses a non-positive validity", TEST_OPTIONS, async () => {
    await assert.rejects(generateSelfSignedCertificate({ days: 0 }), RangeError);
  });

  it("is verified by a real TLS client for localhost", TEST_OPTIONS, async () => {
    const server = await tlsServer(generated);
    try {
      const seen = await handshake(server.port, { ca: generated.cert, servername: "localhost" });
      assert.equal(seen.error, undefined);
      assert.equal(seen.authorized, true);
      assert.equal(seen.fingerprint256, generated.fingerprint256);
      // A name not in the SAN is still refused: the certificate is not a blanket pass.
      await assert.rejects(
        new Promise((resolve, reject) => {
          const socket = tls.connect(
            { host: "127.0.0.1", port: server.port, ca: generated.cert, servername: "other.example.test" },
            () => resolve(socket.end()),
          );
          socket.once("error", reject);
        }),
        /altnames|Hostname\/IP does not match/i,
      );
    } finally {
      server.close();
    }
  });
});

describe("TlsCertificateStore", () => {
  const pair = (name: string): CertificateKeyPair => ({ cert: read(`${name}.crt`), key: read(`${name}.key`) });

  it("picks SNI certificates: exact, then one-level wildcard, case-insensitive, else the default", TEST_OPTIONS, () => {
    const rsa = pair("rsa");
    const ec = pair("ec");
    const leaf = { cert: read("chain.crt"), key: read("leaf.key") };
    const store = new TlsCertificateStore(rsa, { "Mail.Example.test": ec, "*.example.test": leaf });
    assert.equal(store.select("mail.example.test"), ec);
    assert.equal(store.select("MAIL.EXAMPLE.TEST."), ec);
    assert.equal(store.select("smtp.example.test"), leaf);
    assert.equal(store.select("a.smtp.example.test"), rsa);
    assert.equal(store.select("example.test"), rsa);
    assert.equal(store.select(""), rsa);

    const options = store.toServerOptions({ minVersion: "TLSv1.3", handshakeTimeoutMs: 5000 });
    assert.equal(options.minVersion, "TLSv1.3");
    assert.equal(options.handshakeTimeoutMs, 5000);
    assert.equal(options.cert, rsa.cert);
    assert.equal(options.key, rsa.key);
    // The same object every time: the node transport caches one secure context per returned object.
    assert.equal(options.sni?.("smtp.example.test"), options.sni?.("SMTP.example.test"));
    assert.equal(options.sni?.("smtp.example.test"), leaf);

    const byMap = new TlsCertificateStore(rsa, new Map([["mail.example.test", ec]]));
    assert.equal(byMap.select("Mail.example.test"), ec);
    const byCallback = new TlsCertificateStore(rsa, (name) => (name === "ec.test" ? ec : undefined));
    assert.equal(byCallback.select("EC.test"), ec);
    assert.equal(byCallback.select("other.test"), rsa);
  });

  it("replace() swaps the certificates behind the same server options", TEST_OPTIONS, () => {
    const rsa = pair("rsa");
    const ec = pair("ec");
    const store = new TlsCertificateStore(rsa, { "mail.example.test": ec });
    const options = store.toServerOptions();
    store.replace(ec);
    assert.equal(options.cert, ec.cert);
    assert.equal(options.key, ec.key);
    assert.equal(store.current, ec);
    assert.equal(options.sni?.("mail.example.test"), ec, "omitting sni keeps the SNI entries");
    assert.equal(options.sni?.("other.test"), ec, "the new default");
    store.replace(rsa, {});
    assert.equal(options.sni?.("mail.example.test"), rsa, "{} drops the SNI entries");
  });

  it("refuses a mismatched or encrypted pair and keeps the current one", TEST_OPTIONS, () => {
    const rsa = pair("rsa");
    assert.throws(() => new TlsCertificateStore({ cert: rsa.cert, key: read("ec.key") }), /does not match/);
    const store = new TlsCertificateStore(rsa);
    assert.throws(
      () => store.replace(rsa, { "x.test": { cert: read("ec.crt"), key: read("rsa.key") } }),
      {
        message:
          /^the TLS certificate for "x.test": the private key in "key" does not match the certificate in "cert"$/,
      },
    );
    assert.throws(
      () => store.replace({ cert: read("ec.crt"), key: read("encrypted.key") }),
      { message: /^the default TLS certificate: "key" holds an encrypted private key/ },
    );
    assert.throws(
      () => store.replace({ cert: read("ec.key"), key: read("ec.key") }),
      { message: /^the default TLS certificate: "cert" holds no PEM certificate/ },
    );
    assert.equal(store.current, rsa);
    assert.equal(store.select("x.test"), rsa);
  });

  it("replace() takes effect on the next handshake of a running server", TEST_OPTIONS, async () => {
    const first = await generateSelfSignedCertificate({ hosts: ["localhost"], keyType: "ec" });
    const second = await generateSelfSignedCertificate({ hosts: ["localhost"], keyType: "ec" });
    const store = new TlsCertificateStore(first);
    const listener = await nodeTransport.listen(
      { hostname: "127.0.0.1", port: 0, tls: store.toServerOptions() },
      (conn) => conn.close(),
    );
    try {
      const before = await handshake(listener.address.port, { ca: first.cert, servername: "localhost" });
      assert.equal(before.fingerprint256, first.fingerprint256);
      assert.equal(before.authorized, true);
      store.replace(second);
      const after = await handshake(listener.address.port, { ca: second.cert, servername: "localhost" });
      assert.equal(after.fingerprint256, second.fingerprint256);
      assert.equal(after.authorized, true);
    } finally {
      await listener.close();
    }
  });
});
