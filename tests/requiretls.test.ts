/**
 * REQUIRETLS (RFC 8689) in the session, over real sockets with every
 * transport of the running runtime: offered and accepted only inside TLS
 * (after STARTTLS, or on an implicit TLS port), `555` on plaintext, `501`
 * for a value, and `ctx.envelope.requireTls` for the application.
 *
 *   deno test -A tests/requiretls.test.ts
 *   bun test ./tests/requiretls.test.ts
 *   node --import tsx --test tests/requiretls.test.ts
 *
 * The certificate is made with the openssl CLI in a temporary directory at
 * load time (no key is committed) and removed at the end.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { MidiSmtpServerOptions, SmtpdContext } from "../mod.ts";
import type { Transport } from "../src/transport/types.ts";
import { RawClient, type RunningServer, startServer, TRANSPORTS, withTimeout } from "./helpers.ts";
import { scratchFolder } from "./scratch.ts";

/** Per-test limit for the runner; every wait inside a test has its own, shorter limit. */
const TEST = { timeout: 20_000 };

const scratch = scratchFolder("requiretls");
const CERT = scratch.selfSigned("leaf", { cn: "localhost", san: "DNS:localhost,IP:127.0.0.1" });
/** Client TLS options trusting only our certificate. */
const TRUST = { ca: CERT.cert, servername: "localhost" } as const;

/** What the message hook saw of one transaction. */
interface Seen {
  requireTls: boolean;
  encrypted: boolean;
  mailParams: Record<string, unknown>;
}

/** A started server, its implicit TLS port and what its message hook saw. */
interface TlsServer extends RunningServer {
  tlsPort: number;
  seen: Seen[];
}

/**
 * Runs `body` with a server offering STARTTLS (TLS_OPTIONAL) and an
 * implicit TLS port, REQUIRETLS on unless `options` say otherwise; always stops it.
 */
async function withServer(
  transport: Transport,
  options: MidiSmtpServerOptions,
  body: (srv: TlsServer) => Promise<void>,
): Promise<void> {
  const seen: Seen[] = [];
  const running = await startServer(transport, {
    tlsMode: "TLS_OPTIONAL",
    tlsCert: CERT.cert,
    tlsKey: CERT.key,
    tlsPorts: 0,
    requireTlsExtension: true,
    onMessageDataEvent(ctx: SmtpdContext) {
      seen.push({
        requireTls: ctx.envelope.requireTls,
        encrypted: ctx.server.encrypted !== null,
        mailParams: { ...ctx.envelope.mailParams },
      });
    },
    ...options,
  });
  const tlsAddress = running.server.tlsAddresses[0];
  const tlsPort = Number(tlsAddress.slice(tlsAddress.lastIndexOf(":") + 1));
  try {
    await withTimeout(body({ ...running, tlsPort, seen }), 15_000, "test body");
  } finally {
    await withTimeout(running.close(), 5000, "server.stop()");
  }
}

/** Sends `line` and asserts the exact reply. */
async function exchange(client: RawClient, line: string, expected: string): Promise<void> {
  const r = await client.command(line);
  assert.equal(r.raw, expected + "\r\n", line);
}

/** One whole transaction with `mail` as the MAIL line; asserts every reply. */
async function transaction(client: RawClient, mail: string): Promise<void> {
  await exchange(client, mail, "250 2.1.0 OK");
  await exchange(client, "RCPT TO:<b@example.com>", "250 2.1.5 OK");
  await exchange(client, "DATA", '354 Enter message, ending with "." on a line by itself');
  await exchange(client, "Subject: requiretls\r\n\r\nbody\r\n.", "250 2.0.0 Requested mail action okay, completed");
}

/** Connects in plaintext, reads the 220, sends EHLO; returns the client and the keywords. */
async function plainClient(port: number): Promise<{ client: RawClient; keywords: string[] }> {
  const client = await RawClient.connect(port);
  try {
    await client.expect(220);
    return { client, keywords: await client.ehlo() };
  } catch (err) {
    client.close();
    throw err;
  }
}

const UNSUPPORTED = "555 5.5.4 Unsupported parameter REQUIRETLS";
const BAD_VALUE = "501 5.5.4 Bad REQUIRETLS parameter syntax";

for (const transport of TRANSPORTS) {
  describe(`REQUIRETLS (${transport.name} transport)`, () => {
    it("plaintext: not in EHLO, MAIL ... REQUIRETLS gets 555; a plain MAIL has requireTls false", TEST, async () => {
      await withServer(transport, {}, async (s) => {
        const { client, keywords } = await plainClient(s.port);
        try {
          assert.ok(keywords.includes("STARTTLS"), keywords.join("|"));
          assert.ok(!keywords.includes("REQUIRETLS"), keywords.join("|"));
          await exchange(client, "MAIL FROM:<a@example.com> REQUIRETLS", UNSUPPORTED);
          await exchange(client, "MAIL FROM:<a@example.com> requiretls", UNSUPPORTED);
          // Not looked at further: a value gets the same 555.
          await exchange(client, "MAIL FROM:<a@example.com> REQUIRETLS=x", UNSUPPORTED);
          await transaction(client, "MAIL FROM:<a@example.com>");
        } finally {
          client.close();
        }
        assert.deepEqual(s.seen, [{ requireTls: false, encrypted: false, mailParams: {} }]);
      });
    });

    it("after STARTTLS: EHLO lists REQUIRETLS, MAIL with it sets ctx.envelope.requireTls", TEST, async () => {
      await withServer(transport, {}, async (s) => {
        const { client } = await plainClient(s.port);
        try {
          // A MAIL refused before TLS leaves nothing behind for the TLS session.
          await exchange(client, "MAIL FROM:<a@example.com> REQUIRETLS", UNSUPPORTED);
          await client.startTls(TRUST);
          const keywords = await client.ehlo();
          assert.ok(keywords.includes("REQUIRETLS"), keywords.join("|"));
          assert.ok(!keywords.includes("STARTTLS"), keywords.join("|"));
          await exchange(client, "MAIL FROM:<a@example.com> REQUIRETLS=x", BAD_VALUE);
          await exchange(
            client,
            "MAIL FROM:<a@example.com> REQUIRETLS=",
            '501 5.5.4 Syntax error in parameter "REQUIRETLS="',
          );
          await transaction(client, "MAIL FROM:<a@example.com> REQUIRETLS");
          // The flag belongs to one transaction: the next one starts without it.
          await transaction(client, "MAIL FROM:<a@example.com>");
          // Any case; and RSET drops it with the transaction.
          await exchange(client, "MAIL FROM:<a@example.com> requireTLS", "250 2.1.0 OK");
          await exchange(client, "RSET", "250 2.0.0 OK");
          await transaction(client, "MAIL FROM:<a@example.com> SIZE=100");
        } finally {
          client.close();
        }
        assert.deepEqual(s.seen, [
          { requireTls: true, encrypted: true, mailParams: { REQUIRETLS: true } },
          { requireTls: false, encrypted: true, mailParams: {} },
          { requireTls: false, encrypted: true, mailParams: { SIZE: "100" } },
        ]);
      });
    });

    it("implicit TLS (tlsPorts): EHLO lists REQUIRETLS at once, MAIL with it is accepted", TEST, async () => {
      await withServer(transport, {}, async (s) => {
        const client = await RawClient.connectTls(s.tlsPort, TRUST);
        try {
          await client.expect(220);
          const keywords = await client.ehlo();
          assert.ok(keywords.includes("REQUIRETLS"), keywords.join("|"));
          assert.ok(!keywords.includes("STARTTLS"), keywords.join("|"));
          await exchange(client, "MAIL FROM:<a@example.com> REQUIRETLS=yes", BAD_VALUE);
          await transaction(client, "MAIL FROM:<a@example.com> REQUIRETLS");
        } finally {
          client.close();
        }
        assert.deepEqual(s.seen, [{ requireTls: true, encrypted: true, mailParams: { REQUIRETLS: true } }]);
      });
    });

    it("without requireTlsExtension: not offered over TLS either, and MAIL with it gets 555", TEST, async () => {
      await withServer(transport, { requireTlsExtension: false }, async (s) => {
        const { client } = await plainClient(s.port);
        try {
          await client.startTls(TRUST);
          const keywords = await client.ehlo();
          assert.ok(!keywords.includes("REQUIRETLS"), keywords.join("|"));
          await exchange(client, "MAIL FROM:<a@example.com> REQUIRETLS", UNSUPPORTED);
        } finally {
          client.close();
        }
        const tls = await RawClient.connectTls(s.tlsPort, TRUST);
        try {
          await tls.expect(220);
          assert.ok(!(await tls.ehlo()).includes("REQUIRETLS"));
          await exchange(tls, "MAIL FROM:<a@example.com> REQUIRETLS", UNSUPPORTED);
        } finally {
          tls.close();
        }
      });
    });

    it("ehloKeywords hiding REQUIRETLS from a TLS client makes its parameter 555", TEST, async () => {
      const options: MidiSmtpServerOptions = {
        ehloKeywords: (_ctx, lines) => lines.filter((l) => l !== "REQUIRETLS"),
      };
      await withServer(transport, options, async (s) => {
        const client = await RawClient.connectTls(s.tlsPort, TRUST);
        try {
          await client.expect(220);
          assert.ok(!(await client.ehlo()).includes("REQUIRETLS"));
          await exchange(client, "MAIL FROM:<a@example.com> REQUIRETLS", UNSUPPORTED);
        } finally {
          client.close();
        }
      });
    });
  });
}
