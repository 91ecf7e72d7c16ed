/**
 * STARTTLS (RFC 3207), implicit TLS (RFC 8314), SNI and the certificate
 * options over real sockets, with every transport of the running runtime:
 *
 *   deno test -A tests/tls_session.test.ts
 *   bun test ./tests/tls_session.test.ts
 *   node --import tsx --test tests/tls_session.test.ts
 *
 * Certificates (a CA, leaves signed by it, an intermediate, an EC leaf) are
 * made with the openssl CLI in a temporary directory at load time, so no key
 * is ever committed; the directory is removed at the end.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { writeFileSync } from "node:fs";
import { type MidiSmtpServerOptions, Smtpd421Exception, type SmtpdContext } from "../mod.ts";
import type { Transport } from "../src/transport/types.ts";
import {
  delay,
  RawClient,
  type Reply,
  type RunningServer,
  startServer,
  TRANSPORTS,
  withMailer,
  withTimeout,
} from "./helpers.ts";
import { EC_KEY as EC, OPENSSL, RSA_KEY as RSA, scratchFolder } from "./scratch.ts";

/** Per-test limit for the runner; every wait inside a test has its own, shorter limit. */
const TEST = { timeout: 20_000 };

// ---------------------------------------------------------------------------
// certificates

const { path, read, remove: cleanUp, makeCa, makeSigned } = scratchFolder("tls-session");

function serverExtensions(san: string, rsa: boolean): string[] {
  return [
    "basicConstraints=critical,CA:FALSE",
    `keyUsage=critical,digitalSignature${rsa ? ",keyEncipherment" : ""}`,
    "extendedKeyUsage=serverAuth",
    `subjectAltName=${san}`,
  ];
}

try {
  makeCa("ca", "midi-smtp-server Test CA");
  makeCa("rogue-ca", "Some Other CA");
  // The default leaf: RSA, for localhost and 127.0.0.1, signed by the CA.
  makeSigned("leaf", "ca", "/CN=localhost", RSA, serverExtensions("DNS:localhost,IP:127.0.0.1", true));
  writeFileSync(path("chain.pem"), read("leaf.pem") + read("ca.pem"));
  // The SNI leaf.
  makeSigned("other", "ca", "/CN=other.example", EC, serverExtensions("DNS:other.example", false));
  // An EC P-256 leaf for localhost.
  makeSigned("ec", "ca", "/CN=localhost", EC, serverExtensions("DNS:localhost,IP:127.0.0.1", false));
  // An intermediate CA and a leaf under it: a client trusting only the root needs the chain.
  makeSigned("int", "ca", "/CN=midi-smtp-server Test Intermediate", EC, [
    "basicConstraints=critical,CA:TRUE,pathlen:0",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  makeSigned("chained", "int", "/CN=localhost", RSA, serverExtensions("DNS:localhost,IP:127.0.0.1", true));
  writeFileSync(path("combined.pem"), read("chained.pem") + read("int.pem") + read("chained.key"));
  writeFileSync(path("chained-only.pem"), read("chained.pem") + read("chained.key"));
} catch (err) {
  cleanUp();
  throw err;
}

const CA = read("ca.pem");
const LEAF = { cert: read("leaf.pem"), key: read("leaf.key") };
const OTHER = { cert: read("other.pem"), key: read("other.key") };
const EC_LEAF = { cert: read("ec.pem"), key: read("ec.key") };

/** The SHA-256 fingerprint as node:tls reports it (`getPeerCertificate().fingerprint256`). */
function fingerprintOf(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

const FP = {
  leaf: fingerprintOf(LEAF.cert),
  other: fingerprintOf(OTHER.cert),
  ec: fingerprintOf(EC_LEAF.cert),
  chained: fingerprintOf(read("chained.pem")),
};

/** Client TLS options trusting only our CA, checking the name `localhost`. */
const TRUST = { ca: CA, servername: "localhost" } as const;

// ---------------------------------------------------------------------------
// a small SMTP client that can do STARTTLS

/** Polls `done` until it holds or `ms` passes (then throws with `what`). */
async function until(done: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(10);
  }
}

/** Connects, reads the 220, sends EHLO (keywords returned). */
async function ehloTlsClient(port: number): Promise<{ client: RawClient; keywords: string[] }> {
  const client = await RawClient.connect(port);
  try {
    await client.expect(220);
    return { client, keywords: await client.ehlo() };
  } catch (err) {
    client.close();
    throw err;
  }
}

/** A whole transaction; returns the reply to the final dot. */
async function sendMessage(client: RawClient, from = "<a@example.com>", to = "<b@example.com>"): Promise<Reply> {
  assert.equal((await client.command(`MAIL FROM:${from}`)).code, 250);
  assert.equal((await client.command(`RCPT TO:${to}`)).code, 250);
  assert.equal((await client.command("DATA")).code, 354);
  return await client.command("Subject: test\r\n\r\nHello over TLS.\r\n.");
}

// ---------------------------------------------------------------------------
// servers

interface TlsSeen {
  encrypted: Date | null;
  tlsProtocol: string;
  tlsCipher: string;
  from: string;
  to: string[];
  text: string;
}

/** A started server that records what its message hook saw; `tlsPort` is the first implicit TLS port, if any. */
interface TlsServer extends RunningServer {
  tlsPort: number;
  messages: TlsSeen[];
}

/** STARTTLS trusting our CA, EHLO again and one message (250); returns the certificate fingerprint the client saw. */
async function deliverOverStartTls(port: number): Promise<string> {
  const { client } = await ehloTlsClient(port);
  try {
    await client.startTls(TRUST);
    const fingerprint = client.peerCertificate.fingerprint256;
    await client.ehlo();
    assert.equal((await sendMessage(client)).code, 250);
    return fingerprint;
  } finally {
    client.close();
  }
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}

/** Runs `body` with a fresh server (default: STARTTLS optional with the CA-signed leaf) and always stops it. */
async function withServer(
  transport: Transport,
  options: MidiSmtpServerOptions,
  body: (srv: TlsServer) => Promise<void>,
): Promise<void> {
  const messages: TlsSeen[] = [];
  const running = await startServer(transport, {
    tlsMode: "TLS_OPTIONAL",
    tlsCert: LEAF.cert,
    tlsKey: LEAF.key,
    onMessageDataEvent(ctx) {
      messages.push({
        encrypted: ctx.server.encrypted,
        tlsProtocol: ctx.server.tlsProtocol,
        tlsCipher: ctx.server.tlsCipher,
        from: ctx.envelope.from,
        to: [...ctx.envelope.to],
        text: ctx.message.text,
      });
    },
    ...options,
  });
  const addresses = running.server.addresses;
  // Implicit-TLS listeners are bound after the plain ones, and tlsAddresses names them.
  assert.deepEqual(running.server.tlsAddresses, addresses.slice(1));
  const srv: TlsServer = { ...running, tlsPort: addresses.length > 1 ? portOf(addresses[1]) : 0, messages };
  try {
    await withTimeout(body(srv), 15_000, "test body");
  } finally {
    await withTimeout(running.close(), 5000, "server.stop()");
  }
}

const MUST_STARTTLS = "530 5.7.0 Must issue a STARTTLS command first\r\n";
const MAIL = { from: "a@example.com", to: "b@example.com", subject: "over TLS", text: "Hello over TLS." };

function assertEncrypted(seen: TlsSeen | undefined): void {
  assert.ok(seen, "the message arrived");
  assert.ok(seen.encrypted instanceof Date, "ctx.server.encrypted is a Date");
  assert.match(seen.tlsProtocol, /^TLSv1\.[23]$/);
  assert.notEqual(seen.tlsCipher, "");
}

/** Runs `openssl s_client -starttls smtp`, sends EHLO over the TLS session, then QUIT; returns what it printed. */
async function sClient(port: number, caFile: string): Promise<{ stdout: string; stderr: string; code: number | null }> {
  const child = spawn(OPENSSL, [
    "s_client",
    "-starttls",
    "smtp",
    "-connect",
    `127.0.0.1:${port}`,
    "-CAfile",
    path(caFile),
    "-verify_return_error",
    "-verify_ip",
    "127.0.0.1",
    "-quiet",
  ], { stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  let code: number | null | undefined;
  child.stdout.setEncoding("latin1");
  child.stderr.setEncoding("latin1");
  child.stdout.on("data", (d: string) => stdout += d);
  child.stderr.on("data", (d: string) => stderr += d);
  child.stdin.on("error", () => {});
  child.on("exit", (c) => code = c);
  try {
    // s_client reads its stdin only once the handshake is done: this EHLO goes out over TLS.
    child.stdin.write("EHLO openssl.example\r\n");
    await until(() => /^250 /m.test(stdout) || code !== undefined, "the EHLO reply through s_client");
    if (code === undefined) {
      child.stdin.write("QUIT\r\n");
      await until(() => code !== undefined, "s_client to exit after QUIT");
    }
    return { stdout, stderr, code: code ?? null };
  } finally {
    if (code === undefined) child.kill("SIGKILL");
  }
}

// ---------------------------------------------------------------------------

for (const transport of TRANSPORTS) {
  describe(`TLS sessions (${transport.name} transport)`, () => {
    describe("STARTTLS command and EHLO", () => {
      for (const tlsMode of ["TLS_OPTIONAL", "TLS_REQUIRED"] as const) {
        it(`${tlsMode}: EHLO offers STARTTLS, and no longer once TLS runs`, TEST, async () => {
          await withServer(transport, { tlsMode }, async (s) => {
            const { client, keywords } = await ehloTlsClient(s.port);
            try {
              assert.ok(keywords.includes("STARTTLS"), keywords.join("|"));
              await client.startTls(TRUST);
              const after = await client.ehlo();
              assert.ok(!after.includes("STARTTLS"), after.join("|"));
              assert.ok(after.includes("ENHANCEDSTATUSCODES"));
              const again = await client.command("STARTTLS");
              assert.equal(again.code, 503, again.raw);
            } finally {
              client.close();
            }
          });
        });
      }

      it("TLS_FORBIDDEN: no STARTTLS in EHLO, and STARTTLS gets 502", TEST, async () => {
        await withServer(transport, { tlsMode: "TLS_FORBIDDEN", tlsCert: undefined, tlsKey: undefined }, async (s) => {
          const { client, keywords } = await ehloTlsClient(s.port);
          try {
            assert.ok(!keywords.includes("STARTTLS"), keywords.join("|"));
            assert.equal((await client.command("STARTTLS")).raw, "502 5.5.1 Command not implemented\r\n");
            assert.equal((await client.command("NOOP")).code, 250, "the session goes on");
          } finally {
            client.close();
          }
        });
      });

      it("STARTTLS before EHLO gets 503, with an argument 501; the session goes on in plaintext", TEST, async () => {
        await withServer(transport, {}, async (s) => {
          const client = await RawClient.connect(s.port);
          try {
            await client.expect(220);
            const early = await client.command("STARTTLS");
            assert.equal(early.code, 503, early.raw);
            assert.ok(early.lines[0].startsWith("5.5.1 "), early.raw);
            assert.ok((await client.ehlo()).includes("STARTTLS"));
            const withArg = await client.command("STARTTLS now");
            assert.equal(withArg.code, 501, withArg.raw);
            assert.equal((await client.command("NOOP")).code, 250, "still plaintext SMTP");
            await client.startTls(TRUST);
            await client.ehlo();
          } finally {
            client.close();
          }
        });
      });
    });

    describe("real TLS clients", () => {
      it("openssl s_client -starttls smtp verifies the chain and gets EHLO answered over TLS", TEST, async () => {
        await withServer(transport, {}, async (s) => {
          const ok = await sClient(s.port, "ca.pem");
          assert.match(ok.stdout, /^250-127\.0\.0\.1 at your service!\r$/m, ok.stdout + ok.stderr);
          const ehloReply = ok.stdout.slice(ok.stdout.indexOf("250-"));
          assert.ok(!ehloReply.includes("STARTTLS"), `EHLO over TLS offers no STARTTLS: ${ehloReply}`);
          assert.match(ok.stdout, /^221 /m, ok.stdout);
          assert.ok(!/verify error/i.test(ok.stderr), ok.stderr);

          // The same client, trusting another CA, must refuse the certificate: the check above is real.
          const refused = await sClient(s.port, "rogue-ca.pem");
          assert.notEqual(refused.code, 0, refused.stderr);
          assert.ok(!/^250 /m.test(refused.stdout), refused.stdout);
          assert.match(refused.stderr, /verify error|certificate verify failed/i);
        });
      });

      it(
        "nodemailer with requireTLS verifies the certificate and sends; the hook sees the TLS facts",
        TEST,
        async () => {
          await withServer(transport, {}, async (s) => {
            await withMailer(
              s.port,
              { secure: false, requireTLS: true, tls: { ca: [CA], servername: "localhost" } },
              async (m) => {
                const info = await m.sendMail(MAIL);
                assert.deepEqual(info.accepted, ["b@example.com"]);
              },
            );
            assert.equal(s.messages.length, 1);
            assertEncrypted(s.messages[0]);
            assert.match(s.messages[0].text, /Hello over TLS\./);
          });
        },
      );

      it("nodemailer refuses a server whose certificate it cannot verify (no message sent)", TEST, async () => {
        await withServer(transport, {}, async (s) => {
          await withMailer(
            s.port,
            { secure: false, requireTLS: true, tls: { ca: [read("rogue-ca.pem")], servername: "localhost" } },
            async (m) => {
              await assert.rejects(m.sendMail(MAIL), (err: Error & { code?: string }) => {
                assert.match(String(err.code) + err.message, /ESOCKET|ETLS|certificate|verify/i);
                return true;
              });
            },
          );
          assert.equal(s.messages.length, 0);
        });
      });
    });

    describe("TLS_REQUIRED", () => {
      it("MAIL and AUTH before STARTTLS get 530 5.7.0; after TLS and EHLO they work", TEST, async () => {
        await withServer(transport, {
          tlsMode: "TLS_REQUIRED",
          authMode: "AUTH_OPTIONAL",
          onAuthEvent: () => "ok",
        }, async (s) => {
          const { client } = await ehloTlsClient(s.port);
          try {
            assert.equal((await client.command("MAIL FROM:<a@example.com>")).raw, MUST_STARTTLS, "MAIL");
            assert.equal((await client.command("AUTH PLAIN AHRpbQB0YW5zdGFhZg==")).raw, MUST_STARTTLS, "AUTH");
            assert.equal((await client.command("NOOP")).code, 250, "NOOP is fine");
            await client.startTls(TRUST);
            await client.ehlo();
            const auth = await client.command("AUTH PLAIN AHRpbQB0YW5zdGFhZg==");
            assert.equal(auth.code, 235, auth.raw);
            assert.equal((await sendMessage(client)).code, 250);
          } finally {
            client.close();
          }
          assert.equal(s.messages.length, 1);
          assertEncrypted(s.messages[0]);
        });
      });

      // options.ts documents "TLS_REQUIRED (MAIL, RCPT, DATA and AUTH get 530 before it)", and RFC 3207 4
      // asks for 530 to every command but NOOP, EHLO, STARTTLS and QUIT.
      it("RCPT and DATA before STARTTLS get 530 5.7.0 too", TEST, async () => {
        await withServer(transport, { tlsMode: "TLS_REQUIRED" }, async (s) => {
          const { client } = await ehloTlsClient(s.port);
          try {
            assert.equal((await client.command("RCPT TO:<b@example.com>")).raw, MUST_STARTTLS, "RCPT");
            assert.equal((await client.command("DATA")).raw, MUST_STARTTLS, "DATA");
          } finally {
            client.close();
          }
        });
      });

      it("MAIL before STARTTLS gets 530 even right after EHLO, and a message over TLS goes through", TEST, async () => {
        await withServer(transport, { tlsMode: "TLS_REQUIRED" }, async (s) => {
          const { client } = await ehloTlsClient(s.port);
          try {
            assert.equal((await client.command("MAIL FROM:<a@example.com>")).code, 530);
            await client.startTls(TRUST);
            await client.ehlo();
            assert.equal((await sendMessage(client)).code, 250);
          } finally {
            client.close();
          }
          assert.equal(s.messages.length, 1);
          assertEncrypted(s.messages[0]);
        });
      });
    });

    describe("plaintext injection and reset (RFC 3207 4.2, CVE-2011-0411)", () => {
      it("a command sent in the same packet as STARTTLS is never executed", TEST, async () => {
        const senders: string[] = [];
        await withServer(transport, {
          pipeliningExtension: true,
          onMailFromEvent(_ctx, from) {
            senders.push(from);
          },
        }, async (s) => {
          const { client } = await ehloTlsClient(s.port);
          try {
            await client.send("STARTTLS\r\nMAIL FROM:<evil@example.com>\r\n");
            assert.equal((await client.reply()).raw, "220 2.0.0 Ready to start TLS\r\n");
            await client.upgradeTls(TRUST);
            await client.ehlo();
            const rcpt = await client.command("RCPT TO:<x@example.com>");
            assert.equal(rcpt.code, 503, `the injected MAIL must not have run: ${rcpt.raw}`);
            assert.equal((await client.command("MAIL FROM:<good@example.com>")).code, 250);
          } finally {
            client.close();
          }
          assert.deepEqual(senders, ["<good@example.com>"]);
        });
      });

      it("after STARTTLS the session is reset: MAIL without a new EHLO gets 503", TEST, async () => {
        const helos: string[] = [];
        await withServer(transport, {
          onMailFromEvent(ctx) {
            helos.push(ctx.server.helo);
          },
        }, async (s) => {
          const { client } = await ehloTlsClient(s.port);
          try {
            await client.startTls(TRUST);
            const mail = await client.command("MAIL FROM:<a@example.com>");
            assert.equal(mail.code, 503, mail.raw);
            await client.ehlo("after.example");
            assert.equal((await client.command("MAIL FROM:<a@example.com>")).code, 250);
          } finally {
            client.close();
          }
          assert.deepEqual(helos, ["after.example"]);
        });
      });
    });

    describe("implicit TLS (tlsPorts)", () => {
      it("the TLS port greets over TLS, offers no STARTTLS and takes a message", TEST, async () => {
        await withServer(transport, { tlsPorts: 0 }, async (s) => {
          assert.equal(s.server.addresses.length, 2, s.server.addresses.join(", "));
          assert.ok(s.tlsPort > 0 && s.tlsPort !== s.port);
          const client = await RawClient.connectTls(s.tlsPort, TRUST);
          try {
            assert.equal(client.peerCertificate.fingerprint256, FP.leaf);
            await client.expect(220);
            const keywords = await client.ehlo();
            assert.ok(!keywords.includes("STARTTLS"), keywords.join("|"));
            assert.equal((await client.command("STARTTLS")).code, 503, "TLS is already active");
            assert.equal((await sendMessage(client)).code, 250);
          } finally {
            client.close();
          }
          assert.equal(s.messages.length, 1);
          assertEncrypted(s.messages[0]);
          // The plain port still offers STARTTLS.
          const { client: plain, keywords } = await ehloTlsClient(s.port);
          plain.close();
          assert.ok(keywords.includes("STARTTLS"));
        });
      });

      it("a plaintext client of the TLS port gets no greeting in clear", TEST, async () => {
        await withServer(transport, { tlsPorts: 0 }, async (s) => {
          const client = await RawClient.connect(s.tlsPort);
          try {
            await delay(200);
            assert.equal(client.pending, "");
          } finally {
            client.close();
          }
        });
      });

      it("nodemailer with secure: true sends through the TLS port", TEST, async () => {
        await withServer(transport, { tlsPorts: 0, tlsMode: "TLS_FORBIDDEN" }, async (s) => {
          await withMailer(s.tlsPort, { secure: true, tls: { ca: [CA], servername: "localhost" } }, async (m) => {
            const info = await m.sendMail(MAIL);
            assert.deepEqual(info.accepted, ["b@example.com"]);
          });
          assert.equal(s.messages.length, 1);
          assertEncrypted(s.messages[0]);
          // With TLS_FORBIDDEN the plain port offers no STARTTLS, though TLS is set up for the TLS port.
          const { client, keywords } = await ehloTlsClient(s.port);
          client.close();
          assert.ok(!keywords.includes("STARTTLS"));
        });
      });
    });

    describe("SNI (tlsSni)", () => {
      const sni = { tlsSni: { "other.example": OTHER }, tlsPorts: 0 };

      it("STARTTLS: other.example gets its own certificate, localhost the default", TEST, async () => {
        await withServer(transport, sni, async (s) => {
          for (
            const [servername, cn, fp] of [["other.example", "other.example", FP.other], [
              "localhost",
              "localhost",
              FP.leaf,
            ]]
          ) {
            const { client } = await ehloTlsClient(s.port);
            try {
              await client.startTls({ ca: CA, servername });
              assert.equal(client.peerCertificate.subject.CN, cn, servername);
              assert.equal(client.peerCertificate.fingerprint256, fp, servername);
              await client.ehlo();
              assert.equal((await sendMessage(client)).code, 250);
            } finally {
              client.close();
            }
          }
          assert.equal(s.messages.length, 2);
        });
      });

      it("implicit TLS: other.example gets its own certificate, localhost the default", TEST, async () => {
        await withServer(transport, sni, async (s) => {
          for (
            const [servername, cn, fp] of [["other.example", "other.example", FP.other], [
              "localhost",
              "localhost",
              FP.leaf,
            ]]
          ) {
            const client = await RawClient.connectTls(s.tlsPort, { ca: CA, servername });
            try {
              assert.equal(client.peerCertificate.subject.CN, cn, servername);
              assert.equal(client.peerCertificate.fingerprint256, fp, servername);
              await client.expect(220);
              await client.ehlo();
            } finally {
              client.close();
            }
          }
        });
      });
    });

    describe("certificates from files, EC keys, self-signed fallback, replacement", () => {
      it("tlsCertPath: one file with leaf, intermediate and key; the client trusts only the root", TEST, async () => {
        await withServer(transport, {
          tlsCert: undefined,
          tlsKey: undefined,
          tlsCertPath: path("combined.pem"),
          tlsPorts: 0,
        }, async (s) => {
          assert.equal(await deliverOverStartTls(s.port), FP.chained);
          const implicit = await RawClient.connectTls(s.tlsPort, TRUST);
          try {
            assert.equal(implicit.peerCertificate.fingerprint256, FP.chained);
            await implicit.expect(220);
          } finally {
            implicit.close();
          }
        });
        // Control: without the intermediate in the file the same client cannot verify the leaf.
        await withServer(
          transport,
          { tlsCert: undefined, tlsKey: undefined, tlsCertPath: path("chained-only.pem") },
          async (s) => {
            const { client } = await ehloTlsClient(s.port);
            try {
              assert.equal((await client.command("STARTTLS")).code, 220);
              await assert.rejects(client.upgradeTls(TRUST), /certificate|verify|issuer/i);
            } finally {
              client.close();
            }
          },
        );
      });

      it("tlsCertPath and tlsKeyPath with an EC P-256 key", TEST, async () => {
        await withServer(transport, {
          tlsCert: undefined,
          tlsKey: undefined,
          tlsCertPath: path("ec.pem"),
          tlsKeyPath: path("ec.key"),
        }, async (s) => {
          assert.equal(s.server.tlsFingerprint, FP.ec);
          assert.equal(await deliverOverStartTls(s.port), FP.ec);
          assertEncrypted(s.messages[0]);
        });
      });

      it("self-signed fallback: a client pinning server.tlsFingerprint gets through STARTTLS", TEST, async () => {
        await withServer(transport, { tlsCert: undefined, tlsKey: undefined }, async (s) => {
          const pinned = s.server.tlsFingerprint;
          assert.match(pinned ?? "", /^(?:[0-9A-F]{2}:){31}[0-9A-F]{2}$/);
          // A client verifying against our CA refuses it: it is not one of ours.
          {
            const { client } = await ehloTlsClient(s.port);
            try {
              assert.equal((await client.command("STARTTLS")).code, 220);
              await assert.rejects(client.upgradeTls(TRUST));
            } finally {
              client.close();
            }
          }
          const { client } = await ehloTlsClient(s.port);
          try {
            await client.startTls({ rejectUnauthorized: false, servername: "localhost" });
            assert.equal(client.peerCertificate.fingerprint256, pinned, "the pinned certificate is served");
            await client.ehlo();
            assert.equal((await sendMessage(client)).code, 250);
          } finally {
            client.close();
          }
          assertEncrypted(s.messages[0]);
        });
      });

      it(
        "updateTlsCertificate(): new connections see the new certificate, STARTTLS and implicit TLS",
        TEST,
        async () => {
          await withServer(transport, { tlsPorts: 0 }, async (s) => {
            const seen = async (): Promise<[string, string]> => {
              const { client } = await ehloTlsClient(s.port);
              let starttls: string;
              try {
                await client.startTls(TRUST);
                starttls = client.peerCertificate.fingerprint256;
              } finally {
                client.close();
              }
              const implicit = await RawClient.connectTls(s.tlsPort, TRUST);
              try {
                await implicit.expect(220);
                return [starttls, implicit.peerCertificate.fingerprint256];
              } finally {
                implicit.close();
              }
            };
            assert.deepEqual(await seen(), [FP.leaf, FP.leaf]);
            // A session encrypted before the switch keeps its certificate and goes on.
            const { client: old } = await ehloTlsClient(s.port);
            try {
              await old.startTls(TRUST);
              s.server.updateTlsCertificate(EC_LEAF);
              assert.equal(s.server.tlsFingerprint, FP.ec);
              assert.deepEqual(await seen(), [FP.ec, FP.ec]);
              assert.equal(old.peerCertificate.fingerprint256, FP.leaf);
              await old.ehlo();
              assert.equal((await sendMessage(old)).code, 250);
            } finally {
              old.close();
            }
            // A bad pair is refused and leaves the certificate in use alone.
            assert.throws(() => s.server.updateTlsCertificate({ cert: LEAF.cert, key: EC_LEAF.key }));
            assert.equal(s.server.tlsFingerprint, FP.ec);
            assert.deepEqual(await seen(), [FP.ec, FP.ec]);
          });
        },
      );
    });

    describe("failed and stalled handshakes", () => {
      it("garbage instead of a ClientHello closes only that connection", TEST, async () => {
        await withServer(transport, { tlsPorts: 0 }, async (s) => {
          const { client: other } = await ehloTlsClient(s.port);
          const { client: bad } = await ehloTlsClient(s.port);
          const badImplicit = await RawClient.connect(s.tlsPort);
          try {
            assert.equal((await bad.command("STARTTLS")).code, 220);
            await bad.send("this is not a TLS ClientHello\r\n".repeat(20));
            await bad.waitClosed();
            await badImplicit.send("EHLO not-tls.example\r\n".repeat(20));
            await badImplicit.waitClosed();
            // The other session is untouched and completes a message over TLS.
            await other.startTls(TRUST);
            await other.ehlo();
            assert.equal((await sendMessage(other)).code, 250);
          } finally {
            other.close();
            bad.close();
            badImplicit.close();
          }
          assert.equal(s.messages.length, 1);
          // And the server still serves new clients.
          const fresh = await RawClient.connectTls(s.tlsPort, TRUST);
          try {
            await fresh.expect(220);
          } finally {
            fresh.close();
          }
        });
      });

      it("a stalled handshake is closed after tlsHandshakeTimeout (STARTTLS and implicit TLS)", TEST, async () => {
        await withServer(transport, { tlsPorts: 0, tlsHandshakeTimeout: 0.5 }, async (s) => {
          const { client: other } = await ehloTlsClient(s.port);
          const { client: stalled } = await ehloTlsClient(s.port);
          const stalledImplicit = await RawClient.connect(s.tlsPort);
          try {
            assert.equal((await stalled.command("STARTTLS")).code, 220);
            const started = Date.now();
            await stalled.waitClosed(4000);
            await stalledImplicit.waitClosed(4000);
            const waited = Date.now() - started;
            assert.ok(waited >= 350, `closed after ${waited} ms, before the timeout`);
            assert.ok(waited < 4000, `closed after ${waited} ms`);
            assert.equal((await sendMessage(other)).code, 250, "another session is not affected");
          } finally {
            other.close();
            stalled.close();
            stalledImplicit.close();
          }
        });
      });
    });

    describe("onTlsEvent", () => {
      it("is called once after STARTTLS, with the TLS facts set", TEST, async () => {
        const calls: Array<{ protocol: string; cipher: string; encrypted: boolean; helo: string }> = [];
        await withServer(transport, {
          onTlsEvent(ctx: SmtpdContext) {
            calls.push({
              protocol: ctx.server.tlsProtocol,
              cipher: ctx.server.tlsCipher,
              encrypted: ctx.server.encrypted instanceof Date,
              helo: ctx.server.helo,
            });
          },
        }, async (s) => {
          const { client } = await ehloTlsClient(s.port);
          try {
            assert.equal(calls.length, 0, "not called for plaintext");
            await client.startTls(TRUST);
            await client.ehlo();
            assert.equal((await sendMessage(client)).code, 250);
            assert.equal((await client.command("QUIT")).code, 221);
            await client.waitClosed();
          } finally {
            client.close();
          }
          assert.equal(calls.length, 1);
          assert.match(calls[0].protocol, /^TLSv1\.[23]$/);
          assert.notEqual(calls[0].cipher, "");
          assert.equal(calls[0].encrypted, true);
          assert.equal(calls[0].helo, "", "the session was reset before the hook");
        });
      });

      it("is called once for an implicit TLS connection too", TEST, async () => {
        const protocols: string[] = [];
        await withServer(
          transport,
          { tlsPorts: 0, onTlsEvent: (ctx) => void protocols.push(ctx.server.tlsProtocol) },
          async (s) => {
            const client = await RawClient.connectTls(s.tlsPort, TRUST);
            try {
              await client.expect(220);
              await client.ehlo();
            } finally {
              client.close();
            }
            assert.equal(protocols.length, 1);
            assert.match(protocols[0], /^TLSv1\.[23]$/);
          },
        );
      });

      it("throwing Smtpd421Exception after STARTTLS answers 421 over TLS and closes", TEST, async () => {
        const disconnected: boolean[] = [];
        await withServer(transport, {
          onTlsEvent() {
            throw new Smtpd421Exception(undefined, "No TLS for you", "4.7.0");
          },
          onDisconnectEvent: () => void disconnected.push(true),
        }, async (s) => {
          const { client } = await ehloTlsClient(s.port);
          try {
            await client.startTls(TRUST);
            const r = await client.reply();
            assert.equal(r.raw, "421 4.7.0 No TLS for you\r\n");
            await client.waitClosed();
          } finally {
            client.close();
          }
          await until(() => disconnected.length === 1, "onDisconnectEvent");
        });
      });

      it("throwing Smtpd421Exception on an implicit TLS connection answers 421 and closes", TEST, async () => {
        await withServer(transport, {
          tlsPorts: 0,
          onTlsEvent() {
            throw new Smtpd421Exception(undefined, "No TLS for you", "4.7.0");
          },
        }, async (s) => {
          const client = await RawClient.connectTls(s.tlsPort, TRUST);
          try {
            await client.waitClosed();
            const r = await client.reply(100).catch((err: Error) => err);
            assert.ok(!(r instanceof Error), `no reply before the close: ${r instanceof Error ? r.message : ""}`);
            assert.equal(r.raw, "421 4.7.0 No TLS for you\r\n");
          } finally {
            client.close();
          }
        });
      });
    });
  });
}
