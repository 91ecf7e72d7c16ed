/**
 * What keeps a server alive and fair when clients or the application's own
 * hooks misbehave: hook deadlines, clients that leave during a hook, stop()
 * with hung hooks, per-client limits, the queue timeout, overload mode, early
 * talkers, HTTP on the SMTP port and AUTH guessing across connections. Real
 * sockets, every transport of the running runtime.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Smtpd535Exception, Smtpd550Exception, type SmtpdContext } from "../mod.ts";
import { delay, ehloClient, RawClient, type RunningServer, startServer, TRANSPORTS, withTimeout } from "./helpers.ts";

const TEST = { timeout: 60_000 };

/** Collects log lines at or above `loggerSeverity`. */
function logCollector(): { lines: string[]; onLoggingEvent(ctx: unknown, severity: string, msg: string): void } {
  const lines: string[] = [];
  return { lines, onLoggingEvent: (_ctx, severity, msg) => void lines.push(`${severity}: ${msg}`) };
}

/** Polls `condition` until it holds or `ms` passes. */
async function eventually(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for: ${what}`);
    await delay(20);
  }
}

async function withServer(
  transport: (typeof TRANSPORTS)[number],
  options: Parameters<typeof startServer>[1],
  body: (s: RunningServer) => Promise<void>,
): Promise<void> {
  const s = await startServer(transport, options);
  try {
    await body(s);
  } finally {
    await s.close();
  }
}

const never = () => new Promise<never>(() => {});

for (const transport of TRANSPORTS) {
  describe(`resilience (${transport.name} transport)`, () => {
    describe("hooks cannot hold the server", () => {
      it(
        "a hook that never settles: 421 4.3.0 after hookTimeout, ctx.signal aborts, the slot is freed",
        TEST,
        async () => {
          const signals: AbortSignal[] = [];
          let disconnects = 0;
          await withServer(transport, {
            hookTimeout: 0.3,
            maxProcessings: 1,
            onMailFromEvent(ctx) {
              signals.push(ctx.signal);
              return never();
            },
            onDisconnectEvent() {
              disconnects++;
            },
          }, async (s) => {
            const c = await ehloClient(s.port);
            const started = Date.now();
            const r = await c.command("MAIL FROM:<a@example.com>", 5000);
            assert.equal(r.raw, "421 4.3.0 Local processing timed out, closing transmission channel\r\n");
            assert.ok(Date.now() - started >= 250, "not before hookTimeout");
            await c.waitClosed();
            assert.equal(signals[0].aborted, true);
            await eventually(() => disconnects === 1 && s.server.processings() === 0, 3000, "session ended");
            // The only slot is free again: the next client is greeted.
            const next = await RawClient.connect(s.port);
            await next.expect(220);
            next.close();
          });
        },
      );

      it("a result that comes after hookTimeout is ignored and logged", TEST, async () => {
        const log = logCollector();
        await withServer(transport, {
          hookTimeout: 0.2,
          loggerSeverity: "info",
          onLoggingEvent: log.onLoggingEvent,
          onRcptToEvent: () => delay(600),
        }, async (s) => {
          const c = await ehloClient(s.port);
          assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
          assert.equal((await c.command("RCPT TO:<b@example.com>", 5000)).code, 421);
          await eventually(
            () => log.lines.some((l) => l.includes("onRcptToEvent returned after the session stopped waiting")),
            3000,
            "the late result logged",
          );
          assert.ok(log.lines.some((l) => l.startsWith("warn: onRcptToEvent did not finish within 0.2 s")));
        });
      });

      it(
        "a client that leaves while a hook runs: ctx.signal aborts at once, while the hook still runs",
        TEST,
        async () => {
          let abortedAfter = -1;
          let hookEnded = false;
          let disconnected = false;
          await withServer(transport, {
            hookTimeout: 30,
            async onMessageDataEvent(ctx: SmtpdContext) {
              const started = Date.now();
              await new Promise<void>((resolve) => {
                const timer = setTimeout(resolve, 10_000);
                ctx.signal.addEventListener("abort", () => {
                  abortedAfter = Date.now() - started;
                  clearTimeout(timer);
                  resolve();
                });
              });
              hookEnded = true;
            },
            onDisconnectEvent() {
              disconnected = true;
            },
          }, async (s) => {
            const c = await ehloClient(s.port);
            assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
            assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
            assert.equal((await c.command("DATA")).code, 354);
            await c.send("Subject: x\r\n\r\nbody\r\n.\r\n");
            await delay(100); // the hook is running now
            c.close();
            await eventually(() => abortedAfter >= 0, 5000, "ctx.signal aborted");
            assert.ok(abortedAfter < 5000, `aborted after ${abortedAfter} ms, long before the hook's own 10 s`);
            await eventually(() => disconnected && hookEnded, 5000, "onDisconnectEvent ran");
            assert.equal(s.server.processings(), 0);
          });
        },
      );

      it(
        "a client that half-closes after its message still gets the 250 (ctx.signal aborts, the hook finishes)",
        TEST,
        async () => {
          let aborted = false;
          let delivered = 0;
          await withServer(transport, {
            pipeliningExtension: true,
            async onMessageDataEvent(ctx: SmtpdContext) {
              await delay(300);
              aborted = ctx.signal.aborted;
              delivered++;
            },
          }, async (s) => {
            const c = await ehloClient(s.port);
            await c.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
            for (const code of [250, 250, 354]) await c.expect(code);
            await c.send("Subject: x\r\n\r\nbody\r\n.\r\n");
            await delay(100); // the hook is running
            c.halfClose();
            assert.equal((await c.reply(5000)).raw, "250 2.0.0 Requested mail action okay, completed\r\n");
            await c.waitClosed();
            assert.equal(delivered, 1);
            assert.equal(aborted, true, "the hook could see that the client has left its sending side");
          });
        },
      );

      it("stop() does not wait for an onDisconnectEvent that hangs (1 s after the abort at most)", TEST, async () => {
        const s = await startServer(transport, { hookTimeout: 30, onDisconnectEvent: () => delay(20_000) });
        const c = await ehloClient(s.port);
        c.close();
        await delay(200); // the disconnect hook is running now
        const started = Date.now();
        await s.server.stop({ gracefully: false });
        assert.ok(Date.now() - started < 4000, `stop() took ${Date.now() - started} ms`);
        assert.equal(s.server.connections(), 0);
        assert.equal(s.server.processings(), 0);
      });

      it(
        "a headers hook that never settles ends the session mid-DATA; the message is never delivered",
        TEST,
        async () => {
          let delivered = 0;
          await withServer(transport, {
            hookTimeout: 0.3,
            onMessageDataHeadersEvent: never,
            onMessageDataEvent() {
              delivered++;
            },
          }, async (s) => {
            const c = await ehloClient(s.port);
            assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
            assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
            assert.equal((await c.command("DATA")).code, 354);
            await c.send("Subject: x\r\n\r\nbody line\r\n");
            // No final dot yet: the 421 comes at the timeout, not at the end of the message.
            assert.equal((await c.reply(5000)).code, 421);
            await c.waitClosed();
            assert.equal(delivered, 0);
          });
        },
      );

      it(
        "stop() with hung hooks resolves; connections() and processings() are 0; start() serves again",
        TEST,
        async () => {
          let hang = true;
          const s = await startServer(transport, {
            hookTimeout: null, // the application asked for no limit: stop() must still end these sessions
            maxProcessings: 2,
            onMailFromEvent: () => hang ? never() : undefined,
          });
          try {
            const stuck = await Promise.all([ehloClient(s.port), ehloClient(s.port)]);
            for (const c of stuck) await c.send("MAIL FROM:<a@example.com>\r\n");
            const queued = await RawClient.connect(s.port); // waits for a slot
            await eventually(() => s.server.connections() === 3 && s.server.processings() === 2, 3000, "3 clients");
            const started = Date.now();
            await withTimeout(s.server.stop({ gracefully: true, waitSecondsBeforeClose: 0.2 }), 10_000, "stop()");
            assert.ok(Date.now() - started < 8000);
            assert.equal(s.server.connections(), 0);
            assert.equal(s.server.processings(), 0);
            for (const c of [...stuck, queued]) await c.waitClosed();
            hang = false;
            await s.server.start();
            const port = Number(s.server.addresses[0].split(":").pop());
            const c = await ehloClient(port);
            assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
            c.close();
          } finally {
            await s.server.stop({ gracefully: false });
          }
        },
      );
    });

    describe("per-client admission", () => {
      it(
        "a 1000-connection flood from one address is refused (421 4.7.0) while another address is served",
        TEST,
        async () => {
          const log = logCollector();
          await withServer(transport, { onLoggingEvent: log.onLoggingEvent, loggerSeverity: "warn" }, async (s) => {
            const flood = await Promise.all(
              Array.from({ length: 1000 }, () => RawClient.connect(s.port, "127.0.0.1").catch(() => undefined)),
            );
            try {
              const started = Date.now();
              const other = await RawClient.connect(s.port, "127.0.0.1", "127.0.0.2");
              await other.expect(220, 5000);
              assert.ok(Date.now() - started < 5000);
              other.close();
              // Default limits: 50 connections per address, 600 new ones a minute.
              let greeted = 0;
              let refused = 0;
              for (const c of flood) {
                if (!c) continue;
                const r = await c.reply(10_000);
                if (r.code === 220) greeted++;
                else if (r.raw.startsWith("421 4.7.0 Too many connections from your address")) refused++;
              }
              assert.equal(greeted, 50);
              assert.equal(greeted + refused, flood.filter(Boolean).length);
              // One log line per kind of refusal and address, not one per connection.
              const refusals = log.lines.filter((l) => l.includes("refused 127.0.0.1"));
              assert.ok(refusals.length >= 1 && refusals.length <= 2, refusals.join("\n"));
            } finally {
              for (const c of flood) c?.close();
            }
          });
        },
      );

      it(
        "on an implicit-TLS port a refused client is closed before the handshake, with no plaintext reply",
        TEST,
        async () => {
          const log = logCollector();
          await withServer(transport, {
            tlsPorts: 0,
            maxConnectionsPerIp: 1,
            loggerSeverity: "warn",
            onLoggingEvent: log.onLoggingEvent,
          }, async (s) => {
            const tlsPort = Number(s.server.tlsAddresses[0].split(":").pop());
            const first = await RawClient.connectTls(tlsPort, { rejectUnauthorized: false });
            await first.expect(220);
            await assert.rejects(RawClient.connectTls(tlsPort, { rejectUnauthorized: false }));
            assert.ok(log.lines.some((l) => l.includes("maxConnectionsPerIp (1) reached")), log.lines.join("\n"));
            first.close();
          });
        },
      );

      it("maxConnectionRatePerIp: connections past the rate get 421 4.7.0", TEST, async () => {
        await withServer(transport, { maxConnectionRatePerIp: 3 }, async (s) => {
          for (let i = 0; i < 3; i++) {
            const c = await RawClient.connect(s.port);
            await c.expect(220);
            c.close();
          }
          const c = await RawClient.connect(s.port);
          const r = await c.reply();
          assert.equal(r.raw, "421 4.7.0 Too many connections from your address per minute, try again later\r\n");
          await c.waitClosed();
          const other = await RawClient.connect(s.port, "127.0.0.1", "127.0.0.3");
          await other.expect(220);
          other.close();
        });
      });

      it("maxMessageRatePerIp: MAIL past the rate gets 450 4.7.1", TEST, async () => {
        await withServer(transport, { maxMessageRatePerIp: 2 }, async (s) => {
          const c = await ehloClient(s.port);
          for (let i = 0; i < 2; i++) {
            assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
            assert.equal((await c.command("RSET")).code, 250);
          }
          const r = await c.command("MAIL FROM:<a@example.com>");
          assert.equal(r.raw, "450 4.7.1 Too much mail from your address, try again later\r\n");
          c.close();
        });
      });

      it(
        "AUTH guessing across connections: after maxAuthFailuresPerIp failures AUTH is locked for that address",
        TEST,
        async () => {
          const plain = (user: string, pass: string) => Buffer.from(`\0${user}\0${pass}`).toString("base64");
          await withServer(transport, {
            authMode: "AUTH_OPTIONAL",
            allowInsecureAuth: true,
            maxAuthFailures: 2,
            maxAuthFailuresPerIp: 3,
            softErrorLimit: null,
            onAuthEvent(_ctx, _authz, user, password) {
              if (user !== "alice" || password !== "right") throw new Smtpd535Exception();
            },
          }, async (s) => {
            let failures = 0;
            for (let i = 0; i < 2; i++) {
              const c = await ehloClient(s.port);
              for (let j = 0; j < 2 && failures < 3; j++) {
                assert.equal((await c.command(`AUTH PLAIN ${plain("alice", `guess${i}${j}`)}`)).code, 535);
                failures++;
              }
              c.close();
            }
            const c = await ehloClient(s.port);
            // Locked: even the right password is refused now, and the connection closes.
            const r = await c.command(`AUTH PLAIN ${plain("alice", "right")}`);
            assert.equal(r.raw, "421 4.7.0 Too many failed authentications from your address, try again later\r\n");
            await c.waitClosed();
            // Another address is not locked.
            const other = await RawClient.connect(s.port, "127.0.0.1", "127.0.0.4");
            await other.expect(220);
            await other.send("EHLO other.example\r\n");
            await other.expect(250);
            assert.equal((await other.command(`AUTH PLAIN ${plain("alice", "right")}`)).code, 235);
            other.close();
          });
        },
      );

      it("queueTimeout: a client waiting behind maxProcessings gets 421 4.3.2 after it", TEST, async () => {
        await withServer(transport, { maxProcessings: 1, queueTimeout: 0.3, overloadTimeout: null }, async (s) => {
          const a = await RawClient.connect(s.port);
          await a.expect(220);
          const started = Date.now();
          const b = await RawClient.connect(s.port);
          const r = await b.reply(5000);
          assert.equal(r.raw, "421 4.3.2 Service too busy or not available, closing transmission channel\r\n");
          assert.ok(Date.now() - started >= 250);
          await b.waitClosed();
          assert.equal(s.server.connections(), 1);
          a.close();
        });
      });
    });

    describe("overload", () => {
      it("most slots busy: greeting and command timeouts shrink to overloadTimeout", TEST, async () => {
        await withServer(transport, { maxProcessings: 2, overloadThreshold: 1, overloadTimeout: 0.4 }, async (s) => {
          const a = await RawClient.connect(s.port);
          await a.expect(220);
          assert.equal(s.server.isOverloaded(), false);
          const b = await RawClient.connect(s.port);
          await b.expect(220);
          await eventually(() => s.server.isOverloaded(), 2000, "overloaded");
          // The default 300 s greeting timeout no longer applies.
          for (const c of [a, b]) {
            assert.equal((await c.reply(5000)).raw, "421 4.4.2 Timeout, closing transmission channel\r\n");
          }
          await eventually(() => !s.server.isOverloaded() && s.server.processings() === 0, 3000, "back to normal");
        });
      });

      it("a client waiting for a slot gets the one of the session idle longest", TEST, async () => {
        await withServer(transport, { maxProcessings: 2, overloadTimeout: 30, queueTimeout: 10 }, async (s) => {
          const idle = await RawClient.connect(s.port);
          await idle.expect(220);
          await delay(1200); // idle for more than a second
          const busy = await ehloClient(s.port);
          const waiting = await RawClient.connect(s.port);
          assert.equal(
            (await idle.reply(5000)).raw,
            "421 4.7.0 Server busy, closing idle connection, try again later\r\n",
          );
          await waiting.expect(220, 5000);
          assert.equal((await busy.command("NOOP")).code, 250); // the newer session was kept
          busy.close();
          waiting.close();
        });
      });
    });

    describe("early talkers and other protocols", () => {
      it("a client that sends before the 220 gets 554 5.5.0 and is closed", TEST, async () => {
        await withServer(transport, { greetingDelay: 0.5 }, async (s) => {
          const c = await RawClient.connect(s.port);
          await c.send("EHLO eager.example\r\n");
          const r = await c.reply(5000);
          assert.equal(r.raw, "554 5.5.0 Protocol error: data sent before the greeting, closing connection\r\n");
          await c.waitClosed();
        });
      });

      it("data sent while waiting for a slot is refused when the session starts", TEST, async () => {
        await withServer(transport, { maxProcessings: 1, overloadTimeout: null }, async (s) => {
          const a = await RawClient.connect(s.port);
          await a.expect(220);
          const b = await RawClient.connect(s.port);
          await b.send("EHLO eager.example\r\n");
          await delay(100);
          a.close();
          assert.equal((await b.reply(5000)).code, 554);
          await b.waitClosed();
        });
      });

      it("without a greeting delay, data sent while onConnectEvent runs is refused too", TEST, async () => {
        await withServer(transport, { onConnectEvent: () => delay(300) }, async (s) => {
          const c = await RawClient.connect(s.port);
          await c.send("EHLO eager.example\r\n");
          assert.equal((await c.reply(5000)).code, 554);
          await c.waitClosed();
        });
      });

      it("a client that waits is greeted after greetingDelay", TEST, async () => {
        await withServer(transport, { greetingDelay: 0.3 }, async (s) => {
          const started = Date.now();
          const c = await RawClient.connect(s.port);
          await c.expect(220, 5000);
          assert.ok(Date.now() - started >= 250);
          assert.equal((await c.command("EHLO patient.example")).code, 250);
          c.close();
        });
      });

      it("HTTP on the SMTP port closes the connection at once (221 2.7.0)", TEST, async () => {
        await withServer(transport, {}, async (s) => {
          for (const request of ["GET / HTTP/1.1\r\nHost: x\r\n\r\n", "CONNECT example.com:443 HTTP/1.1\r\n\r\n"]) {
            const c = await RawClient.connect(s.port);
            await c.expect(220);
            await c.send(request);
            const r = await c.reply();
            assert.equal(r.raw, "221 2.7.0 This is an SMTP server, not an HTTP one: closing connection\r\n");
            await c.waitClosed();
            assert.equal(c.pending, "");
          }
        });
      });
    });

    describe("tarpit", () => {
      it("past softErrorLimit each error reply is delayed a little more", TEST, async () => {
        await withServer(transport, {
          softErrorLimit: 2,
          errorSleepTime: 0.2,
          onRcptToEvent() {
            throw new Smtpd550Exception();
          },
        }, async (s) => {
          const c = await ehloClient(s.port);
          assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
          const took: number[] = [];
          for (let i = 0; i < 4; i++) {
            const started = Date.now();
            assert.equal((await c.command(`RCPT TO:<u${i}@example.com>`)).code, 550);
            took.push(Date.now() - started);
          }
          assert.ok(took[2] >= 180, `3rd error delayed ~0.2 s: ${took}`);
          assert.ok(took[3] >= 380, `4th error delayed ~0.4 s: ${took}`);
          c.close();
        });
      });
    });

    describe("smaller defects", () => {
      it(
        "TLS_REQUIRED: everything but NOOP, EHLO, STARTTLS and QUIT gets 530 before STARTTLS (RFC 3207 4)",
        TEST,
        async () => {
          await withServer(transport, { tlsMode: "TLS_REQUIRED" }, async (s) => {
            const c = await RawClient.connect(s.port);
            await c.expect(220);
            assert.equal((await c.command("NOOP")).code, 250);
            assert.equal((await c.command("EHLO client.example")).code, 250);
            for (
              const line of ["VRFY postmaster", "HELP", "RSET", "HELO client.example", "XUNKNOWN", "MAIL FROM:<a@b.c>"]
            ) {
              assert.equal((await c.command(line)).raw, "530 5.7.0 Must issue a STARTTLS command first\r\n", line);
            }
            assert.equal((await c.command("QUIT")).code, 221);
          });
        },
      );

      it("the tarpit's own delay does not use up the client's command timeout", TEST, async () => {
        await withServer(transport, { softErrorLimit: 1, errorSleepTime: 0.6, ioCmdTimeout: 0.5 }, async (s) => {
          const c = await ehloClient(s.port);
          assert.equal((await c.command("XNOPE1")).code, 500);
          // The second error waits 0.6 s before its reply: longer than the 0.5 s the client has per command.
          assert.equal((await c.command("XNOPE2", 5000)).code, 500);
          assert.equal((await c.command("NOOP")).code, 250);
          c.close();
        });
      });

      it("under TLS_REQUIRED, the lines after a refused AUTH are not logged either", TEST, async () => {
        const log = logCollector();
        await withServer(transport, {
          tlsMode: "TLS_REQUIRED",
          authMode: "AUTH_OPTIONAL",
          loggerSeverity: "debug",
          onLoggingEvent: log.onLoggingEvent,
        }, async (s) => {
          const c = await RawClient.connect(s.port);
          await c.expect(220);
          await c.send("AUTH LOGIN\r\ndXNlcg==\r\nc2VjcmV0cGFzc3dvcmQ=\r\n");
          for (let i = 0; i < 3; i++) await c.reply();
          assert.equal((await c.command("NOOP")).code, 250);
          c.close();
          await eventually(() => log.lines.some((l) => l.includes("<<< NOOP")), 3000, "NOOP logged");
          const all = log.lines.join("\n");
          assert.ok(!all.includes("dXNlcg==") && !all.includes("c2VjcmV0cGFzc3dvcmQ="), all);
        });
      });

      it("a multi-line string from onProcessLineUnknownEvent is one valid multi-line reply", TEST, async () => {
        await withServer(transport, {
          onProcessLineUnknownEvent: (_ctx, line) =>
            line === "XMULTI"
              ? "250-first line\n250-second line\r\n250 last line"
              : line === "XBAD"
              ? "250 ok\nnot a reply"
              : undefined,
        }, async (s) => {
          const c = await ehloClient(s.port);
          const r = await c.command("XMULTI");
          assert.equal(r.raw, "250-first line\r\n250-second line\r\n250 last line\r\n");
          assert.equal((await c.command("XBAD")).code, 451);
          assert.equal((await c.command("NOOP")).code, 250); // still in sync
          c.close();
        });
      });

      it("RCPTs past maxRecipients count toward maxBadCommands", TEST, async () => {
        await withServer(transport, { maxRecipients: 1, maxBadCommands: 3, softErrorLimit: null }, async (s) => {
          const c = await ehloClient(s.port);
          assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
          assert.equal((await c.command("RCPT TO:<b0@example.com>")).code, 250);
          assert.equal((await c.command("RCPT TO:<b1@example.com>")).code, 452);
          assert.equal((await c.command("RCPT TO:<b2@example.com>")).code, 452);
          await c.send("RCPT TO:<b3@example.com>\r\n");
          assert.equal((await c.reply()).code, 452);
          assert.equal((await c.reply()).raw, "421 4.7.0 Too many errors, closing transmission channel\r\n");
          await c.waitClosed();
        });
      });

      it("a plain Error thrown in onConnectEvent answers 421 4.3.0 (a local error), not 'too busy'", TEST, async () => {
        await withServer(transport, {
          onConnectEvent() {
            throw new Error("database down");
          },
        }, async (s) => {
          const c = await RawClient.connect(s.port);
          assert.equal((await c.reply()).raw, "421 4.3.0 Local error in processing, closing transmission channel\r\n");
          await c.waitClosed();
        });
      });

      it("after AUTH LOGIN is refused with 503, the lines that follow (a password) are not logged", TEST, async () => {
        const log = logCollector();
        await withServer(transport, {
          authMode: "AUTH_OPTIONAL",
          allowInsecureAuth: true,
          loggerSeverity: "debug",
          onLoggingEvent: log.onLoggingEvent,
        }, async (s) => {
          const c = await RawClient.connect(s.port);
          await c.expect(220);
          // No EHLO yet: AUTH gets 503, and the client sends its username and password anyway.
          assert.equal((await c.command("AUTH LOGIN")).code, 503);
          assert.equal((await c.command("YWxpY2U=")).code, 500);
          assert.equal((await c.command("c2VjcmV0LXBhc3N3b3Jk")).code, 500);
          assert.equal((await c.command("NOOP")).code, 250);
          c.close();
          await eventually(() => log.lines.some((l) => l.includes("<<< NOOP")), 3000, "NOOP logged");
          const all = log.lines.join("\n");
          assert.ok(!all.includes("YWxpY2U=") && !all.includes("c2VjcmV0LXBhc3N3b3Jk"), all);
          assert.ok(all.includes("<<< AUTH LOGIN"));
        });
      });
    });
  });
}
