/**
 * Unit tests of what the dev server prints about itself once listening (src/dev_server/startup_report.ts), run
 * under all three runtimes:
 *
 *   deno test -A tests/dev_server_startup_report.test.ts
 *   bun test ./tests/dev_server_startup_report.test.ts
 *   node --import tsx --test tests/dev_server_startup_report.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_CONFIG, type DevServerConfig } from "../src/dev_server/args.ts";
import { authWarnings, type DescribedServer, describeServer } from "../src/dev_server/startup_report.ts";

const FINGERPRINT = "3B:1C:2A:AF:25";
const USERS = [{ user: "alice", password: "s3cret" }, { user: "bob", password: "pa:ss" }];

/** A started server as describeServer sees it. */
function server(
  tlsFingerprint?: string,
  tlsAddresses: string[] = [],
  proxy = ["127.0.0.0/8", "::1/128"],
  more: { socketPaths?: string[]; xclient?: string[]; xclientUnix?: boolean } = {},
): DescribedServer {
  return {
    tlsFingerprint,
    tlsAddresses,
    socketPaths: more.socketPaths ?? [],
    options: {
      proxyTrustedSources: { entries: proxy },
      xclientTrustedSources: { entries: more.xclient ?? [] },
      xclientTrustsUnix: more.xclientUnix ?? false,
    },
  };
}

function config(overrides: Partial<DevServerConfig>): DevServerConfig {
  return { ...DEFAULT_CONFIG, ...overrides };
}

describe("describeServer", () => {
  it("says nothing for a plain server", () => {
    assert.deepEqual(describeServer(DEFAULT_CONFIG, server()), []);
  });

  it("PROXY: who may send the header, as the server resolved it", () => {
    assert.deepEqual(describeServer(config({ proxy: true }), server(undefined, [], ["10.0.0.0/8"])), [
      "PROXY: required from 10.0.0.0/8",
    ]);
  });

  it("TLS: the STARTTLS mode, the implicit TLS listeners the server bound, and the certificate", () => {
    assert.deepEqual(
      describeServer(config({ tlsMode: "TLS_REQUIRED", tlsPorts: ["0"] }), server(FINGERPRINT, ["127.0.0.1:40001"])),
      [
        "TLS: STARTTLS required; implicit TLS on 127.0.0.1:40001",
        `TLS: self-signed certificate, SHA-256 fingerprint ${FINGERPRINT}`,
      ],
    );
    assert.deepEqual(describeServer(config({ tlsMode: "TLS_OPTIONAL", tlsCert: "c.pem" }), server(FINGERPRINT)), [
      "TLS: STARTTLS offered",
      `TLS: certificate c.pem, SHA-256 fingerprint ${FINGERPRINT}`,
    ]);
    const implicitOnly = describeServer(
      config({ tlsPorts: ["465"] }),
      server(FINGERPRINT, ["127.0.0.1:465", "[::1]:465"]),
    );
    assert.equal(implicitOnly[0], "TLS: no STARTTLS; implicit TLS on 127.0.0.1:465, [::1]:465");
  });

  it("AUTH: the mode, where it is offered, the mechanisms and the users, never a password", () => {
    const auth = { authMode: "AUTH_REQUIRED", authUsers: USERS } as const;
    const lines = describeServer(config({ ...auth, tlsMode: "TLS_REQUIRED" }), server(FINGERPRINT));
    assert.equal(lines.at(-1), "AUTH: required, over TLS only; mechanisms PLAIN LOGIN CRAM-MD5; users alice, bob");
    // TLS_REQUIRED refuses AUTH before STARTTLS, --allow-insecure-auth or not.
    const required = describeServer(config({ ...auth, tlsMode: "TLS_REQUIRED", allowInsecureAuth: true }), server("x"));
    assert.match(required.at(-1)!, /, over TLS only;/);
    const insecure = describeServer(
      config({ ...auth, authMode: "AUTH_OPTIONAL", allowInsecureAuth: true, authMechanisms: ["PLAIN"] }),
      server(),
    );
    assert.deepEqual(insecure, ["AUTH: optional, with or without TLS; mechanisms PLAIN; users alice, bob"]);
    for (const line of [...lines, ...insecure]) assert.ok(!/s3cret|pa:ss/.test(line), line);
  });

  it("LMTP, the Unix sockets the server bound, who may send XCLIENT, and where the envelopes go", () => {
    const lines = describeServer(
      config({
        lmtp: true,
        socketPaths: ["/run/a.sock", "/run/b.sock"],
        xclientTrusted: ["10.0.0.1", "unix"],
        envelopeDir: "/tmp/envelopes",
        tlsMode: "TLS_OPTIONAL",
      }),
      server(FINGERPRINT, [], undefined, {
        socketPaths: ["/run/a.sock", "/run/b.sock"],
        xclient: ["10.0.0.1/32"],
        xclientUnix: true,
      }),
    );
    assert.deepEqual(lines, [
      "LMTP: clients send LHLO, and get one reply per recipient after the message",
      "Unix socket: /run/a.sock, /run/b.sock",
      "XCLIENT: trusted from 10.0.0.1/32, unix",
      "TLS: STARTTLS offered",
      `TLS: self-signed certificate, SHA-256 fingerprint ${FINGERPRINT}`,
      "Envelopes: one JSON file per message in /tmp/envelopes",
    ]);
  });
});

describe("authWarnings", () => {
  const auth = { authMode: "AUTH_OPTIONAL", authUsers: USERS } as const;

  it("none while AUTH is off, offered without TLS, or STARTTLS is on", () => {
    assert.deepEqual(authWarnings(DEFAULT_CONFIG), []);
    assert.deepEqual(authWarnings(config({ ...auth, allowInsecureAuth: true })), []);
    assert.deepEqual(authWarnings(config({ ...auth, tlsMode: "TLS_OPTIONAL" })), []);
  });

  it("TLS off: AUTH is offered nowhere, which AUTH_REQUIRED makes fatal for mail", () => {
    const [optional] = authWarnings(config(auth));
    assert.match(optional, /^AUTH will not be offered: .*TLS is off \(--tls-mode TLS_FORBIDDEN\); add --tls-mode/);
    assert.ok(!optional.includes("AUTH_REQUIRED"));
    const [required] = authWarnings(config({ ...auth, authMode: "AUTH_REQUIRED" }));
    assert.match(required, /so with AUTH_REQUIRED no client can send mail/);
  });

  it("implicit TLS only: AUTH is offered on --tls-port, not on --ports", () => {
    const warnings = authWarnings(config({ ...auth, authMode: "AUTH_REQUIRED", tlsPorts: ["465"] }));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /^AUTH will be offered only on the implicit TLS ports \(--tls-port\), not on --ports/);
    assert.match(warnings[0], /clients there cannot send mail; add --tls-mode/);
  });
});
