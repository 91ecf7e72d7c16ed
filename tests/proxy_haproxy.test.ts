/**
 * The PROXY protocol (HAProxy's spec, v1 and v2) against a real HAProxy in
 * TCP mode, and against raw headers sent straight to the server, with every
 * transport of the running runtime:
 *
 *   deno test -A tests/proxy_haproxy.test.ts
 *   bun test ./tests/proxy_haproxy.test.ts
 *   node --import tsx --test tests/proxy_haproxy.test.ts
 *
 * Needs Debian's `haproxy` (/usr/sbin/haproxy; `apt-get install haproxy`):
 * without it this file fails at load, it does not skip. Addresses on
 * loopback tell the parties apart: clients connect to HAProxy from
 * 127.0.0.2 (or 127.0.0.4), HAProxy connects to the server from 127.0.0.3,
 * the server listens on 127.0.0.1.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { type MidiSmtpServerOptions, Smtpd554Exception, type SmtpdContext } from "../mod.ts";
import type { Transport } from "../src/transport/types.ts";
import {
  addToError,
  delay,
  RawClient,
  type RunningServer,
  startServer,
  TRANSPORTS,
  withMailer,
  withTimeout,
} from "./helpers.ts";
import { type HaproxyFrontend, haproxyMissing, type RunningHaproxy, type SendProxy, startHaproxy } from "./haproxy.ts";

// A missing HAProxy fails under CI (which installs it) and is reported as skipped elsewhere, never a silent pass.
const NO_HAPROXY = haproxyMissing();
if (NO_HAPROXY) it(`HAProxy tests: ${NO_HAPROXY}`, { skip: NO_HAPROXY }, () => {});

/** Per-test limit for the runner; every wait inside a test has its own, shorter limit. */
const TEST = { timeout: 20_000 };

/** Where clients connect from. */
const CLIENT_IP = "127.0.0.2";
/** A second client address. */
const OTHER_CLIENT_IP = "127.0.0.4";
/** Where HAProxy connects to the server from (`source` on its server lines). */
const HAPROXY_IP = "127.0.0.3";

type ProxyInfo = NonNullable<SmtpdContext["server"]["proxy"]>;

// ---------------------------------------------------------------------------
// clients from a chosen address

/** A TCP connection to 127.0.0.1:`port` from `localAddress`. */
function tcpFrom(port: number, localAddress: string): Promise<net.Socket> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: "127.0.0.1", localAddress });
      socket.once("connect", () => resolve(socket));
      socket.once("error", reject);
    }),
    5000,
    `TCP connect from ${localAddress}`,
  );
}

/** A connected client and the port it connected from. */
interface FromClient {
  client: RawClient;
  localPort: number;
}

/** A raw SMTP client on 127.0.0.1:`port`, connected from `localAddress`. */
async function connectFrom(port: number, localAddress = CLIENT_IP): Promise<FromClient> {
  const client = await RawClient.connect(port, "127.0.0.1", localAddress);
  return { client, localPort: client.localPort };
}

/** The same with implicit TLS over it (any certificate accepted: the server's is self-signed). */
async function connectTlsFrom(port: number, localAddress = CLIENT_IP): Promise<FromClient> {
  const socket = await tcpFrom(port, localAddress);
  const localPort = socket.localPort!;
  try {
    return { client: await RawClient.connectTls(port, { socket, rejectUnauthorized: false }), localPort };
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

/** 220, EHLO, one message (250) and QUIT (221). */
async function deliver(client: RawClient): Promise<void> {
  await client.expect(220);
  await client.ehlo();
  assert.equal((await client.command("MAIL FROM:<a@example.com>")).code, 250);
  assert.equal((await client.command("RCPT TO:<b@example.com>")).code, 250);
  assert.equal((await client.command("DATA")).code, 354);
  const done = await client.command("Subject: proxied\r\n\r\nHello through the proxy.\r\n.");
  assert.equal(done.code, 250, done.raw);
  assert.equal((await client.command("QUIT")).code, 221);
}

/**
 * Sends `header` to the server one byte at a time (3 ms apart), then expects the 220 and sends EHLO; returns what
 * onProxyEvent saw and the client's port once the session has ended.
 */
async function greetByteByByte(
  port: number,
  rec: Recorder,
  header: Uint8Array,
): Promise<{ proxy: ProxyInfo; localPort: number }> {
  const { client, localPort } = await connectFrom(port, "127.0.0.1");
  try {
    for (const byte of header) {
      await client.send(new Uint8Array([byte]));
      await delay(3);
    }
    await client.expect(220);
    await client.ehlo();
  } finally {
    client.close();
  }
  await until(() => rec.of("disconnect").length === 1, "the disconnect hook");
  const proxy = rec.of("proxy")[0]?.arg;
  assert.ok(proxy);
  return { proxy, localPort };
}

/** Polls `done` until it holds or `ms` passes (then throws with `what`). */
async function until(done: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(10);
  }
}

// ---------------------------------------------------------------------------
// raw PROXY headers

/** A v1 header line. */
function v1Header(src: string, dst: string, srcPort: number, dstPort: number): string {
  return `PROXY ${net.isIPv6(src) ? "TCP6" : "TCP4"} ${src} ${dst} ${srcPort} ${dstPort}\r\n`;
}

const V2_SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** The 16 bytes of an IPv6 address. */
function ipv6Bytes(ip: string): number[] {
  const [head, tail = ""] = ip.split("::");
  const words = (s: string) => s === "" ? [] : s.split(":").map((w) => parseInt(w, 16));
  const h = words(head);
  const t = words(tail);
  const all = [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  return all.flatMap((w) => [w >> 8, w & 0xff]);
}

/** A v2 header: PROXY over TCP with these addresses (IPv4 or IPv6), or LOCAL; TLVs as [type, bytes]. */
function v2Header(
  addresses: { src: string; dst: string; srcPort: number; dstPort: number } | "LOCAL",
  tlvs: Array<[number, Uint8Array]> = [],
): Uint8Array {
  let famProto = 0x00;
  let body: number[] = [];
  if (addresses !== "LOCAL") {
    const { src, dst, srcPort, dstPort } = addresses;
    const v6 = net.isIPv6(src);
    famProto = v6 ? 0x21 : 0x11; // TCP over IPv6 / IPv4
    const ip = (a: string) => v6 ? ipv6Bytes(a) : a.split(".").map(Number);
    body = [...ip(src), ...ip(dst), srcPort >> 8, srcPort & 0xff, dstPort >> 8, dstPort & 0xff];
  }
  for (const [type, value] of tlvs) body.push(type, value.length >> 8, value.length & 0xff, ...value);
  const command = addresses === "LOCAL" ? 0x20 : 0x21; // version 2, LOCAL / PROXY
  return new Uint8Array([...V2_SIGNATURE, command, famProto, body.length >> 8, body.length & 0xff, ...body]);
}

const text = (s: string) => new TextEncoder().encode(s);

// ---------------------------------------------------------------------------
// a server that records what its hooks saw

/** One hook call. */
interface Seen {
  hook: string;
  remoteIp: string;
  remotePort: number;
  proxy: ProxyInfo | null;
  encrypted: boolean;
  /** onProxyEvent's second argument. */
  arg?: ProxyInfo;
}

/** One log line. */
interface Logged {
  severity: string;
  msg: string;
  err?: unknown;
}

/** Hook options recording into `events`, `logs` and `messages`. */
class Recorder {
  readonly events: Seen[] = [];
  readonly logs: Logged[] = [];
  readonly messages: string[] = [];

  /** The calls of `hook`. */
  of(hook: string): Seen[] {
    return this.events.filter((e) => e.hook === hook);
  }

  /** The calls of the session whose client used `remotePort` (as the server sees it). */
  session(remotePort: number): Seen[] {
    return this.events.filter((e) => e.remotePort === remotePort);
  }

  options(loggerSeverity: MidiSmtpServerOptions["loggerSeverity"] = "debug"): MidiSmtpServerOptions {
    const seen = (hook: string, ctx: SmtpdContext, arg?: ProxyInfo) =>
      this.events.push({
        hook,
        remoteIp: ctx.server.remoteIp,
        remotePort: ctx.server.remotePort,
        proxy: ctx.server.proxy,
        encrypted: ctx.server.encrypted !== null,
        ...(arg ? { arg } : {}),
      });
    return {
      loggerSeverity,
      onLoggingEvent: (_ctx, severity, msg, err) => {
        this.logs.push({ severity, msg, err });
      },
      onProxyEvent: (ctx, proxy) => {
        seen("proxy", ctx, proxy);
      },
      onConnectEvent: (ctx) => {
        seen("connect", ctx);
      },
      onTlsEvent: (ctx) => {
        seen("tls", ctx);
      },
      onHeloEvent: (ctx) => {
        seen("helo", ctx);
      },
      onMailFromEvent: (ctx) => {
        seen("mail", ctx);
      },
      onRcptToEvent: (ctx) => {
        seen("rcpt", ctx);
      },
      onMessageDataEvent: (ctx) => {
        seen("message", ctx);
        this.messages.push(ctx.message.text);
      },
      onDisconnectEvent: (ctx) => {
        seen("disconnect", ctx);
      },
    };
  }
}

/** Every HAProxy started, so that `after` stops any a failed test left running. */
const running = new Set<RunningHaproxy>();
after(async () => {
  await Promise.all([...running].map((hp) => hp.stop()));
});

/** A server (with `proxyExtension`), a recorder on it, and optionally HAProxy in front. */
interface Rig {
  srv: RunningServer;
  rec: Recorder;
  /** HAProxy, when frontends were asked for. */
  hp: RunningHaproxy | undefined;
  /** HAProxy's ports by frontend name. */
  ports: Record<string, number>;
  /** The first implicit TLS port of the server, or 0. */
  tlsPort: number;
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}

/**
 * Starts a recording server with `proxyExtension: true` and `options`, and
 * HAProxy with `frontends(srv)` unless that is undefined; runs `body`; stops both.
 */
async function withRig(
  transport: Transport,
  options: MidiSmtpServerOptions,
  frontends: ((s: { port: number; tlsPort: number }) => HaproxyFrontend[]) | undefined,
  body: (rig: Rig) => Promise<void>,
): Promise<void> {
  const rec = new Recorder();
  const srv = await startServer(transport, {
    ...rec.options(options.loggerSeverity),
    proxyExtension: true,
    ...options,
  });
  let hp: RunningHaproxy | undefined;
  try {
    const tlsAddress = srv.server.tlsAddresses[0];
    const tlsPort = tlsAddress ? portOf(tlsAddress) : 0;
    if (frontends) {
      hp = await startHaproxy({ frontends: frontends({ port: srv.port, tlsPort }) });
      running.add(hp);
    }
    const rig: Rig = { srv, rec, hp, ports: hp?.ports ?? {}, tlsPort };
    try {
      await withTimeout(body(rig), 15_000, "test body");
    } catch (err) {
      // What HAProxy and the server said helps more than the assertion alone.
      if (err instanceof Error) {
        addToError(err, `\n--- server log ---\n${rec.logs.map((l) => `${l.severity}: ${l.msg}`).join("\n")}`);
        if (hp) addToError(err, `\n--- HAProxy log ---\n${hp.log()}`);
      }
      throw err;
    }
  } finally {
    if (hp) {
      await hp.stop();
      running.delete(hp);
    }
    await withTimeout(srv.close(), 5000, "server.stop()");
  }
}

/** One frontend `fe` to the server's `port`, HAProxy connecting from {@link HAPROXY_IP}. */
function oneFrontend(
  sendProxy: SendProxy,
  extra: {
    check?: boolean;
    inter?: number;
    proxyV2Options?: string[];
    uniqueIdFormat?: string;
    smtpCheck?: boolean;
  } = {},
): (s: { port: number }) => HaproxyFrontend[] {
  const { uniqueIdFormat, smtpCheck, ...line } = extra;
  return (s) => [{
    name: "fe",
    uniqueIdFormat,
    backend: {
      smtpCheck,
      servers: [{ host: "127.0.0.1", port: s.port, sendProxy, source: HAPROXY_IP, ...line }],
    },
  }];
}

/** Asserts a session was served with the client's address in every hook, and the PROXY facts. */
function assertProxiedSession(rec: Recorder, localPort: number, version: 1 | 2, frontendPort: number): ProxyInfo {
  const session = rec.session(localPort);
  assert.deepEqual(
    session.map((e) => e.hook),
    ["proxy", "connect", "helo", "mail", "rcpt", "message", "disconnect"],
    "every hook of the session, in order, with the client's port",
  );
  assert.equal(rec.events.length, session.length, "no other session");
  for (const e of session) assert.equal(e.remoteIp, CLIENT_IP, `remoteIp in the ${e.hook} hook`);
  const proxy = session[0].arg!;
  assert.ok(proxy, "onProxyEvent got the header");
  assert.equal(session[0].proxy, proxy, "ctx.server.proxy is the hook's argument");
  for (const e of session) assert.equal(e.proxy, proxy, `ctx.server.proxy in the ${e.hook} hook`);
  assert.equal(proxy.version, version);
  assert.equal(proxy.command, "PROXY");
  assert.equal(proxy.family, "IPv4");
  assert.equal(proxy.sourceIp, CLIENT_IP);
  assert.equal(proxy.sourcePort, localPort);
  assert.equal(proxy.destIp, "127.0.0.1");
  assert.equal(proxy.destPort, frontendPort, "the destination is HAProxy's frontend");
  assert.equal(proxy.proxyIp, HAPROXY_IP, "the socket peer is HAProxy");
  assert.ok(Number.isInteger(proxy.proxyPort) && proxy.proxyPort > 0, `proxyPort ${proxy.proxyPort}`);
  assert.notEqual(proxy.proxyPort, localPort);
  return proxy;
}

const VERSIONS = [["v1", 1], ["v2", 2]] as const;

// ---------------------------------------------------------------------------

for (const transport of TRANSPORTS) {
  describe(`PROXY protocol (${transport.name} transport)`, () => {
    describe("through HAProxy", { skip: NO_HAPROXY }, () => {
      for (const [sendProxy, version] of VERSIONS) {
        it(
          `send-proxy${version === 2 ? "-v2" : ""}: a client delivers; every hook sees the client, not HAProxy`,
          TEST,
          async () => {
            await withRig(transport, {}, oneFrontend(sendProxy), async ({ rec, ports }) => {
              const { client, localPort } = await connectFrom(ports.fe);
              try {
                await deliver(client);
              } finally {
                client.close();
              }
              await until(() => rec.of("disconnect").length === 1, "the disconnect hook");
              const proxy = assertProxiedSession(rec, localPort, version, ports.fe);
              assert.deepEqual(proxy.tlvs, { raw: [] }, "HAProxy sends no TLVs by default");
              assert.match(rec.messages[0], /Hello through the proxy\./);
            });
          },
        );
      }

      it("send-proxy-v2-ssl with unique-id and crc32c: the TLVs HAProxy sends are read", TEST, async () => {
        const frontends = oneFrontend("v2-ssl", { proxyV2Options: ["unique-id", "crc32c"], uniqueIdFormat: "%ci:%cp" });
        await withRig(transport, {}, frontends, async ({ rec, ports }) => {
          const { client, localPort } = await connectFrom(ports.fe);
          try {
            await deliver(client);
          } finally {
            client.close();
          }
          await until(() => rec.of("disconnect").length === 1, "the disconnect hook");
          const proxy = assertProxiedSession(rec, localPort, 2, ports.fe);
          assert.ok(proxy.tlvs.uniqueId instanceof Uint8Array, "uniqueId is bytes");
          assert.equal(new TextDecoder().decode(proxy.tlvs.uniqueId), `${CLIENT_IP}:${localPort}`);
          assert.equal(proxy.tlvs.ssl?.client, 0, "the SSL TLV says the client did not use TLS to HAProxy");
          assert.equal(typeof proxy.tlvs.crc32c, "number", "the CRC32C TLV (checked by the server)");
          assert.deepEqual(proxy.tlvs.raw, [], "every TLV HAProxy sent is a known one");
        });
      });

      it("nodemailer sends through send-proxy and send-proxy-v2", TEST, async () => {
        const frontends = ({ port }: { port: number }): HaproxyFrontend[] =>
          VERSIONS.map(([sendProxy]) => ({
            name: sendProxy,
            backend: { servers: [{ host: "127.0.0.1", port, sendProxy, source: HAPROXY_IP }] },
          }));
        await withRig(transport, {}, frontends, async ({ rec, ports }) => {
          for (const [sendProxy] of VERSIONS) {
            await withMailer(ports[sendProxy], { localAddress: CLIENT_IP }, async (m) => {
              const info = await m.sendMail({
                from: "a@example.com",
                to: "b@example.com",
                subject: `via ${sendProxy}`,
                text: "Hello from nodemailer.",
              });
              assert.deepEqual(info.accepted, ["b@example.com"]);
            });
          }
          const delivered = rec.of("message");
          assert.deepEqual(delivered.map((e) => e.remoteIp), [CLIENT_IP, CLIENT_IP]);
          assert.deepEqual(delivered.map((e) => e.proxy?.version), [1, 2]);
          assert.deepEqual(delivered.map((e) => e.proxy?.proxyIp), [HAPROXY_IP, HAPROXY_IP]);
          assert.match(rec.messages[1], /Hello from nodemailer\./);
        });
      });

      it("implicit TLS behind send-proxy-v2: the header in clear, then the handshake", TEST, async () => {
        const frontends = ({ tlsPort }: { tlsPort: number }): HaproxyFrontend[] => [{
          name: "fe",
          backend: { servers: [{ host: "127.0.0.1", port: tlsPort, sendProxy: "v2", source: HAPROXY_IP }] },
        }];
        await withRig(transport, { tlsPorts: [0] }, frontends, async ({ rec, ports, tlsPort }) => {
          assert.ok(tlsPort > 0, "the server has an implicit TLS port");
          const { client, localPort } = await connectTlsFrom(ports.fe);
          try {
            await deliver(client);
          } finally {
            client.close();
          }
          await until(() => rec.of("disconnect").length === 1, "the disconnect hook");
          const session = rec.session(localPort);
          assert.ok(session.some((e) => e.hook === "tls"), `hooks: ${session.map((e) => e.hook).join(",")}`);
          const message = session.find((e) => e.hook === "message");
          assert.ok(message, "the message arrived");
          assert.equal(message.remoteIp, CLIENT_IP);
          assert.ok(message.encrypted, "ctx.server.encrypted is set");
          assert.equal(message.proxy?.version, 2);
          assert.equal(message.proxy?.proxyIp, HAPROXY_IP);
          assert.equal(message.proxy?.destPort, ports.fe);
        });
      });

      for (const [sendProxy, version] of VERSIONS) {
        it(`v${version} from an untrusted proxy: no 220, closed, no hook but logging`, TEST, async () => {
          const options = { proxyTrustedSources: ["10.9.9.9/32"] };
          await withRig(transport, options, oneFrontend(sendProxy), async ({ rec, ports }) => {
            const { client } = await connectFrom(ports.fe);
            try {
              await client.waitClosed(3000);
              assert.equal(client.pending, "", "nothing was sent back");
            } finally {
              client.close();
            }
            await delay(100);
            assert.deepEqual(rec.events.map((e) => e.hook), []);
            assert.ok(rec.logs.length > 0, "the refusal was logged");
          });
        });
      }

      it("maxConnectionsPerIp counts the client from the header, not HAProxy", TEST, async () => {
        await withRig(transport, { maxConnectionsPerIp: 1 }, oneFrontend("v2"), async ({ rec, ports }) => {
          const first = await connectFrom(ports.fe, CLIENT_IP);
          const clients = [first.client];
          try {
            await first.client.expect(220);
            const second = await connectFrom(ports.fe, CLIENT_IP);
            clients.push(second.client);
            const refused = await second.client.reply();
            assert.equal(refused.code, 421, refused.raw);
            await second.client.waitClosed(3000);
            const other = await connectFrom(ports.fe, OTHER_CLIENT_IP);
            clients.push(other.client);
            await other.client.expect(220);
            await other.client.ehlo();
            assert.deepEqual(
              rec.of("connect").map((e) => e.remoteIp).sort(),
              [CLIENT_IP, OTHER_CLIENT_IP],
              "connect hooks ran for the first client and the other address",
            );
          } finally {
            for (const c of clients) c.close();
          }
        });
      });

      for (const [sendProxy, version] of VERSIONS) {
        it(
          `health checks (check inter 100) with send-proxy${
            version === 2 ? "-v2 (LOCAL)" : " (TCP4 line of HAProxy's own socket)"
          }: nothing logged at warn, server healthy`,
          TEST,
          async () => {
            const frontends = oneFrontend(sendProxy, { check: true, inter: 100 });
            await withRig(transport, { loggerSeverity: "warn" }, frontends, async ({ rec, ports, hp }) => {
              await delay(1000);
              // HAProxy's own view: checks ran (L4OK, not INI) and the server is UP.
              const states = await hp!.serverStates();
              assert.deepEqual(states.map((st) => [st.status, st.checkStatus]), [["UP", "L4OK"]]);
              // A check resets its connection right after the header, mostly before the server has even
              // read the peer's address (then it is dropped unseen); those that got in were served so:
              for (const c of rec.of("proxy")) {
                if (version === 2) {
                  assert.equal(c.arg?.command, "LOCAL");
                  assert.equal(c.remoteIp, HAPROXY_IP, "LOCAL keeps the socket's address");
                } else {
                  assert.equal(c.arg?.command, "PROXY");
                  assert.equal(c.arg?.sourceIp, HAPROXY_IP);
                }
              }
              assert.deepEqual(rec.logs.map((l) => `${l.severity}: ${l.msg}`), [], "nothing at warn or above");
              assert.doesNotMatch(hp!.log(), /is DOWN|no server available/);
              const before = rec.events.length;
              const { client, localPort } = await connectFrom(ports.fe);
              try {
                await deliver(client);
              } finally {
                client.close();
              }
              await until(() => rec.session(localPort).some((e) => e.hook === "disconnect"), "the disconnect hook");
              const session = rec.session(localPort);
              assert.ok(session.length >= 7 && rec.events.length > before, "the client's session ran");
              assert.ok(session.every((e) => e.remoteIp === CLIENT_IP));
              assert.deepEqual(rec.logs.map((l) => `${l.severity}: ${l.msg}`), [], "still nothing at warn or above");
              assert.equal((await hp!.serverStates())[0]?.status, "UP", "still UP");
            });
          },
        );
      }
      for (const [sendProxy, version] of VERSIONS) {
        it(
          `option smtpchk with send-proxy${version === 2 ? "-v2" : ""}: every check is a served session`,
          TEST,
          async () => {
            const frontends = oneFrontend(sendProxy, { check: true, inter: 100, smtpCheck: true });
            await withRig(transport, { loggerSeverity: "warn" }, frontends, async ({ rec, hp }) => {
              await until(() => rec.of("helo").length >= 3, "three HELO checks", 5000);
              assert.deepEqual(await hp!.serverStates().then((st) => st.map((x) => [x.status, x.checkStatus])), [
                ["UP", "L7OK"],
              ]);
              for (const e of rec.of("proxy")) {
                // v2 checks say LOCAL: the socket's address stays. v1 checks describe HAProxy's own socket.
                assert.equal(e.arg?.command, version === 2 ? "LOCAL" : "PROXY");
                assert.equal(e.remoteIp, HAPROXY_IP);
                assert.equal(e.arg?.proxyIp, HAPROXY_IP);
              }
              assert.ok(rec.of("helo").every((e) => e.remoteIp === HAPROXY_IP));
              assert.deepEqual(rec.logs.map((l) => `${l.severity}: ${l.msg}`), [], "nothing at warn or above");
            });
          },
        );
      }
    });

    describe("raw headers straight to the server", () => {
      const SRC = { src: "192.0.2.10", dst: "198.51.100.20", srcPort: 40000, dstPort: 2525 };

      it("a v1 header sent byte by byte", TEST, async () => {
        await withRig(transport, {}, undefined, async ({ rec, srv }) => {
          const { proxy, localPort } = await greetByteByByte(
            srv.port,
            rec,
            text(v1Header(SRC.src, SRC.dst, SRC.srcPort, SRC.dstPort)),
          );
          assert.equal(proxy.version, 1);
          assert.equal(proxy.command, "PROXY");
          assert.equal(proxy.family, "IPv4");
          assert.equal(proxy.sourceIp, SRC.src);
          assert.equal(proxy.sourcePort, SRC.srcPort);
          assert.equal(proxy.destIp, SRC.dst);
          assert.equal(proxy.destPort, SRC.dstPort);
          assert.equal(proxy.proxyIp, "127.0.0.1");
          assert.equal(proxy.proxyPort, localPort);
          for (const e of rec.events) {
            assert.equal(e.remoteIp, SRC.src, e.hook);
            assert.equal(e.remotePort, SRC.srcPort, e.hook);
          }
        });
      });

      it("a v2 header (IPv6; AUTHORITY, NOOP and a custom TLV) sent byte by byte", TEST, async () => {
        await withRig(transport, {}, undefined, async ({ rec, srv }) => {
          const header = v2Header(
            { src: "2001:db8::10", dst: "2001:db8::20", srcPort: 40001, dstPort: 25 },
            [[0x02, text("mail.example")], [0x04, new Uint8Array(3)], [0xe0, text("custom")]],
          );
          const { proxy, localPort } = await greetByteByByte(srv.port, rec, header);
          assert.equal(proxy.version, 2);
          assert.equal(proxy.command, "PROXY");
          assert.equal(proxy.family, "IPv6");
          assert.equal(proxy.sourceIp, "2001:db8::10");
          assert.equal(proxy.sourcePort, 40001);
          assert.equal(proxy.destIp, "2001:db8::20");
          assert.equal(proxy.destPort, 25);
          assert.equal(proxy.tlvs.authority, "mail.example");
          // NOOP padding is dropped; a type the server does not know is kept as it came.
          assert.deepEqual(proxy.tlvs.raw, [{ type: 0xe0, value: text("custom") }]);
          assert.equal(proxy.proxyPort, localPort);
          for (const e of rec.events) assert.equal(e.remoteIp, "2001:db8::10", e.hook);
        });
      });

      for (
        const [name, header] of [["v1", v1Header(SRC.src, SRC.dst, SRC.srcPort, SRC.dstPort)], [
          "v2",
          v2Header(SRC),
        ]] as const
      ) {
        it(
          `a ${name} header and EHLO in one packet: the header is read exactly, the EHLO is an early talker`,
          TEST,
          async () => {
            await withRig(transport, {}, undefined, async ({ rec, srv }) => {
              const { client } = await connectFrom(srv.port, "127.0.0.1");
              try {
                const head = typeof header === "string" ? text(header) : header;
                const ehlo = text("EHLO client.example\r\n");
                const packet = new Uint8Array(head.length + ehlo.length);
                packet.set(head);
                packet.set(ehlo, head.length);
                await client.send(packet);
                // The bytes behind the header are the client's, sent before our 220: refused, as without a proxy.
                const r = await client.reply();
                assert.equal(r.raw, "554 5.5.0 Protocol error: data sent before the greeting, closing connection\r\n");
                await client.waitClosed();
              } finally {
                client.close();
              }
              await until(() => rec.of("disconnect").length === 1, "the disconnect hook");
              // The session was the real client's (from the header), and no command ran.
              assert.deepEqual(rec.of("connect").map((e) => e.remoteIp), [SRC.src]);
              assert.deepEqual(rec.of("helo"), []);
            });
          },
        );
      }

      it("v2 LOCAL and v1 UNKNOWN: served, with the socket's own address", TEST, async () => {
        await withRig(transport, {}, undefined, async ({ rec, srv }) => {
          for (const header of [v2Header("LOCAL"), text("PROXY UNKNOWN\r\n")]) {
            const { client, localPort } = await connectFrom(srv.port, "127.0.0.1");
            try {
              await client.send(header);
              await client.expect(220);
              await client.ehlo();
            } finally {
              client.close();
            }
            await until(() => rec.session(localPort).some((e) => e.hook === "disconnect"), "the disconnect hook");
            for (const e of rec.session(localPort)) assert.equal(e.remoteIp, "127.0.0.1", e.hook);
          }
          const proxies = rec.of("proxy").map((e) => e.arg!);
          assert.deepEqual(proxies.map((p) => [p.version, p.command, p.family]), [
            [2, "LOCAL", "UNSPEC"],
            [1, "UNKNOWN", "UNSPEC"],
          ]);
        });
      });

      it("`GET / HTTP/1.1` instead of a header: closed, nothing sent back, no hook but logging", TEST, async () => {
        await withRig(transport, {}, undefined, async ({ rec, srv }) => {
          const { client } = await connectFrom(srv.port, "127.0.0.1");
          try {
            await client.send("GET / HTTP/1.1\r\n");
            await client.waitClosed(3000);
            assert.equal(client.pending, "");
          } finally {
            client.close();
          }
          await delay(100);
          assert.deepEqual(rec.events.map((e) => e.hook), []);
        });
      });

      it("no header at all: closed after proxyTimeout, nothing sent back", TEST, async () => {
        await withRig(transport, { proxyTimeout: 1 }, undefined, async ({ rec, srv }) => {
          const { client } = await connectFrom(srv.port, "127.0.0.1");
          const start = Date.now();
          try {
            await client.waitClosed(4000);
            assert.equal(client.pending, "");
          } finally {
            client.close();
          }
          assert.ok(Date.now() - start >= 800, `closed after ${Date.now() - start} ms, before the 1 s proxyTimeout`);
          assert.deepEqual(rec.events.map((e) => e.hook), []);
        });
      });

      it("a valid header from an untrusted source: closed, nothing sent back", TEST, async () => {
        await withRig(transport, { proxyTrustedSources: ["10.9.9.9/32"] }, undefined, async ({ rec, srv }) => {
          const { client } = await connectFrom(srv.port, "127.0.0.1");
          try {
            await client.send(v1Header(SRC.src, SRC.dst, SRC.srcPort, SRC.dstPort));
            await client.waitClosed(3000);
            assert.equal(client.pending, "");
          } finally {
            client.close();
          }
          await delay(100);
          assert.deepEqual(rec.events.map((e) => e.hook), []);
          assert.ok(rec.logs.length > 0, "the refusal was logged");
        });
      });

      it("onProxyEvent throwing Smtpd554Exception refuses with its reply; no connect hook", TEST, async () => {
        const options: MidiSmtpServerOptions = {
          onProxyEvent(_ctx, proxy) {
            if (proxy.sourceIp === SRC.src) throw new Smtpd554Exception(undefined, "Not from there");
          },
        };
        await withRig(transport, options, undefined, async ({ rec, srv }) => {
          const { client } = await connectFrom(srv.port, "127.0.0.1");
          try {
            await client.send(v2Header(SRC));
            const r = await client.reply();
            assert.equal(r.raw, "554 5.0.0 Not from there\r\n");
            await client.waitClosed(3000);
          } finally {
            client.close();
          }
          await delay(100);
          assert.deepEqual(rec.of("connect"), []);
          assert.deepEqual(rec.of("helo"), []);
        });
      });
    });
  });
}

for (const transport of TRANSPORTS) {
  describe(`examples/haproxy.cfg, as the README shows it (${transport.name} transport)`, { skip: NO_HAPROXY }, () => {
    it(
      "mail flows through it to two receivers with the clients' addresses; its health checks log nothing",
      TEST,
      async () => {
        const receivers = [new Recorder(), new Recorder()];
        const servers = await Promise.all(
          receivers.map((rec) => startServer(transport, { ...rec.options("warn"), proxyExtension: true })),
        );
        const hp = await startHaproxy({
          file: new URL("../examples/haproxy.cfg", import.meta.url).pathname,
          frontends: [{ name: "smtp", backend: { servers: [] } }],
          env: (ports) => ({
            SMTP_FRONT_PORT: String(ports.smtp),
            MX1_PORT: String(servers[0].port),
            MX2_PORT: String(servers[1].port),
          }),
        });
        const front = hp.ports.smtp;
        running.add(hp);
        try {
          // Two clients at once: leastconn gives each receiver one.
          const clients = await Promise.all([connectFrom(front), connectFrom(front)]);
          await Promise.all(clients.map(({ client }) => deliver(client)));
          for (const { client } of clients) client.close();
          await until(() => receivers.every((r) => r.of("disconnect").length >= 1), "both sessions ended");
          const sessions = receivers.flatMap((r) => r.of("message"));
          assert.equal(sessions.length, 2);
          assert.deepEqual(new Set(receivers.map((r) => r.of("message").length)), new Set([1]), "one message each");
          for (const seen of sessions) {
            assert.equal(seen.remoteIp, CLIENT_IP);
            assert.equal(seen.proxy?.version, 2);
            assert.ok(clients.some(({ localPort }) => localPort === seen.remotePort));
          }
          // HAProxy checks each receiver every 2 s (a v2 LOCAL header, then a reset): none of it is worth a warning.
          await delay(2500);
          const warnings = receivers.flatMap((r) => r.logs).filter((l) =>
            l.severity !== "info" && l.severity !== "debug"
          );
          assert.deepEqual(warnings, []);
        } finally {
          await hp.stop();
          running.delete(hp);
          await Promise.all(servers.map((s) => s.close()));
        }
      },
    );
  });
}
