/**
 * Unit tests of the dev server's envelope files (src/dev_server/envelope_file.ts): the record built from a session's
 * context, and the atomic write into --envelope-dir. Run under all three runtimes:
 *
 *   deno test -A tests/dev_server_envelope_file.test.ts
 *   bun test ./tests/dev_server_envelope_file.test.ts
 *   node --import tsx --test tests/dev_server_envelope_file.test.ts
 *
 * The dev server writing them for real messages is in tests/dev_server_extensions.test.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newContext, type ServerContext, type SmtpdContext } from "../src/context.ts";
import { serverContext } from "./server_context.ts";
import { EnvelopeDir, type EnvelopeRecord, envelopeRecord } from "../src/dev_server/envelope_file.ts";

const RECEIVED = new Date("2026-11-28T10:00:00.250Z");
const STORED = { id: "4F2A9C0B1D2E", messageFile: "1764324000.42_ab.host", receivedAt: RECEIVED };

/** A context holding one accepted message from `<a@x.example>` to `<b@y.example>` and the BCC `<c@y.example>`. */
function contextWithMessage(server: ServerContext): SmtpdContext {
  const ctx = newContext(server);
  const envelope = ctx.envelope;
  envelope.from = "<a@x.example>";
  envelope.to = ["<b@y.example>", "<c@y.example>"];
  envelope.mailParams = { RET: "HDRS", ENVID: "QQ314159+2B1", BODY: "BINARYMIME", SMTPUTF8: true };
  envelope.encodingBody = "binarymime";
  envelope.encodingUtf8 = "utf8";
  envelope.dsn = { ret: "HDRS", envid: "QQ314159+1" };
  envelope.requireTls = true;
  const params = { NOTIFY: "SUCCESS,FAILURE", ORCPT: "rfc822;b+40y.example" };
  envelope.rcptParams = [params, {}];
  envelope.recipients = [
    {
      address: "<b@y.example>",
      params,
      notify: ["SUCCESS", "FAILURE"],
      orcpt: { type: "rfc822", address: "b@y.example" },
      values: {},
    },
    { address: "<c@y.example>", params: {}, notify: null, orcpt: null, values: {} },
  ];
  ctx.message.bytesize = 1234;
  return ctx;
}

describe("envelopeRecord", () => {
  it("a plain TCP client: the sender, every recipient with its DSN parameters decoded, the body type", () => {
    const record = envelopeRecord(contextWithMessage(serverContext()), STORED);
    assert.deepEqual(
      record,
      {
        version: 1,
        id: "4F2A9C0B1D2E",
        messageFile: "1764324000.42_ab.host",
        receivedAt: "2026-11-28T10:00:00.250Z",
        protocol: "ESMTP",
        client: {
          ip: "127.0.0.1",
          host: "127.0.0.1",
          port: 40000,
          helo: "client.example",
          heloMode: "EHLO",
          xclient: null,
          proxy: null,
          tls: null,
          auth: null,
        },
        server: { host: "127.0.0.1", ip: "127.0.0.1", port: 2525 },
        from: "a@x.example",
        mailParams: { RET: "HDRS", ENVID: "QQ314159+2B1", BODY: "BINARYMIME", SMTPUTF8: true },
        bodyType: "BINARYMIME",
        smtputf8: true,
        dsn: { ret: "HDRS", envid: "QQ314159+1" },
        requireTls: true,
        recipients: [
          {
            address: "b@y.example",
            notify: ["SUCCESS", "FAILURE"],
            orcpt: { type: "rfc822", address: "b@y.example" },
            params: { NOTIFY: "SUCCESS,FAILURE", ORCPT: "rfc822;b+40y.example" },
          },
          { address: "c@y.example", notify: null, orcpt: null, params: {} },
        ],
        xforward: null,
        size: 1234,
      } satisfies EnvelopeRecord,
    );
    // Everything in it survives JSON as it is.
    assert.deepEqual(JSON.parse(JSON.stringify(record)), record);
  });

  it("TLS, AUTH, a PROXY header (without its binary TLVs), XCLIENT and XFORWARD as the session saw them", () => {
    const server = serverContext({
      remoteIp: "192.0.2.9",
      remoteHost: "real.example",
      remotePort: 50000,
      helo: "real.helo",
      encrypted: new Date(),
      tlsProtocol: "TLSv1.3",
      tlsCipher: "TLS_AES_256_GCM_SHA384",
      authenticated: new Date(),
      authenticationId: "alice",
      authorizationId: "bob",
      proxy: {
        version: 2,
        command: "PROXY",
        family: "IPv4",
        sourceIp: "192.0.2.7",
        sourcePort: 40000,
        destIp: "198.51.100.1",
        destPort: 25,
        tlvs: { raw: [{ type: 0xe0, value: new Uint8Array([1, 2]) }] },
        proxyIp: "127.0.0.1",
        proxyPort: 33333,
      },
      xclient: { addr: "192.0.2.9", name: "real.example", helo: "real.helo", login: null },
    });
    const ctx = contextWithMessage(server);
    ctx.envelope.xforward = {
      name: "up.example",
      addr: "203.0.113.5",
      port: null,
      proto: "ESMTP",
      helo: null,
      ident: "Q1",
      source: "REMOTE",
    };
    const record = envelopeRecord(ctx, STORED);
    assert.equal(record.protocol, "ESMTPSA");
    assert.deepEqual(record.client, {
      ip: "192.0.2.9",
      host: "real.example",
      port: 50000,
      helo: "real.helo",
      heloMode: "EHLO",
      xclient: { addr: "192.0.2.9", name: "real.example", helo: "real.helo", login: null },
      proxy: {
        version: 2,
        command: "PROXY",
        sourceIp: "192.0.2.7",
        sourcePort: 40000,
        destIp: "198.51.100.1",
        destPort: 25,
        proxyIp: "127.0.0.1",
        proxyPort: 33333,
      },
      tls: { protocol: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384" },
      auth: { authenticationId: "alice", authorizationId: "bob" },
    });
    assert.deepEqual(record.xforward, ctx.envelope.xforward);
    assert.notEqual(record.xforward, ctx.envelope.xforward, "a copy, not the session's own object");
  });

  it("LMTP over a Unix socket: no address, no port; the null sender; no BODY", () => {
    const server = serverContext({
      localHost: "localhost",
      localIp: "",
      localPort: 0,
      remoteHost: "localhost",
      remoteIp: "",
      remotePort: 0,
      heloMode: "LHLO",
      protocol: "LMTP",
    });
    const ctx = contextWithMessage(server);
    ctx.envelope.from = "<>";
    ctx.envelope.encodingBody = "";
    ctx.envelope.encodingUtf8 = "";
    const record = envelopeRecord(ctx, STORED);
    assert.equal(record.protocol, "LMTP");
    assert.deepEqual([record.client.ip, record.client.host, record.client.port], [null, "localhost", null]);
    assert.deepEqual(record.server, { host: "localhost", ip: null, port: null });
    assert.deepEqual([record.from, record.bodyType, record.smtputf8], ["", null, false]);
  });
});

describe("EnvelopeDir", () => {
  const record = envelopeRecord(contextWithMessage(serverContext()), STORED);

  it("init creates the folder (and its parents); write puts NAME.json there atomically, nothing else", async () => {
    const base = mkdtempSync(join(tmpdir(), "midi-envelopes-"));
    try {
      const envelopes = new EnvelopeDir(join(base, "deep", "envelopes") + "/");
      assert.equal(envelopes.dir, join(base, "deep", "envelopes"), "trailing slash dropped");
      await envelopes.init();
      assert.deepEqual(readdirSync(envelopes.dir), [], "the probe file is gone");
      const path = await envelopes.write(STORED.messageFile, record);
      assert.equal(path, join(envelopes.dir, `${STORED.messageFile}.json`));
      assert.deepEqual(readdirSync(envelopes.dir), [`${STORED.messageFile}.json`], "no temporary file left");
      const text = readFileSync(path, "utf8");
      assert.ok(text.endsWith("}\n"), "one JSON document and a newline");
      assert.deepEqual(JSON.parse(text), record);
      // init again (a restart): the folder is there already.
      await envelopes.init();
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  it("a write that fails leaves nothing behind and rejects", async () => {
    const base = mkdtempSync(join(tmpdir(), "midi-envelopes-"));
    try {
      const envelopes = new EnvelopeDir(join(base, "envelopes"));
      await envelopes.init();
      // Tests run as root, so permissions would not stop the write: put a file where the folder was.
      rmSync(envelopes.dir, { recursive: true });
      writeFileSync(envelopes.dir, "in the way");
      await assert.rejects(envelopes.write(STORED.messageFile, record), /ENOTDIR|not a directory/i);
      assert.deepEqual(readdirSync(base), ["envelopes"]);
      assert.equal(readFileSync(envelopes.dir, "utf8"), "in the way");
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  it("init names the folder when it cannot be created: a file in the way", async () => {
    const base = mkdtempSync(join(tmpdir(), "midi-envelopes-"));
    try {
      writeFileSync(join(base, "file"), "");
      const envelopes = new EnvelopeDir(join(base, "file", "envelopes"));
      await assert.rejects(
        envelopes.init(),
        (err: Error) => err.message.startsWith(`envelope directory ${envelopes.dir} cannot be created or written: `),
      );
      assert.equal(existsSync(join(base, "file", "envelopes")), false);
      assert.throws(() => new EnvelopeDir(""), /must not be empty/);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
