/**
 * The one log line style (src/log_line.ts): the library's default logger and
 * the dev server's text lines; the dev server's JSON lines and message lines
 * (src/dev_server/log_format.ts); and its final line's counts
 * (src/dev_server/stats.ts).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { formatLogLine, logTimestamp } from "../src/log_line.ts";
import { jsonLine, LOG_FORMATS, logLine, messageLine } from "../src/dev_server/log_format.ts";
import { DevServerStats, formatUptime } from "../src/dev_server/stats.ts";
import { MidiSmtpServer } from "../src/server.ts";
import { channels } from "../src/events.ts";
import type { SmtpdContext } from "../src/context.ts";

const AT = new Date(Date.UTC(2026, 11, 2, 4, 0, 0, 789));
const LINE =
  /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \[(DEBUG|INFO|WARN|ERROR|FATAL)\] (?:\[([0-9A-HJKMNP-TV-Z]{12})\] )?(.*)$/;

describe("formatLogLine", () => {
  it("ISO 8601 in UTC with whole seconds (truncated, not rounded)", () => {
    assert.equal(logTimestamp(AT), "2026-12-02T04:00:00Z");
    assert.equal(logTimestamp(new Date(Date.UTC(1999, 0, 1, 23, 59, 59, 999))), "1999-01-01T23:59:59Z");
    assert.match(logTimestamp(), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it("severity upper-case in brackets, then the session id only for lines of a session", () => {
    assert.equal(
      formatLogLine("info", "client vanished during DATA: message dropped", "6K2M9QF1ZP4T", AT),
      "2026-12-02T04:00:00Z [INFO] [6K2M9QF1ZP4T] client vanished during DATA: message dropped",
    );
    assert.equal(
      formatLogLine("warn", "refused 192.0.2.7: busy", undefined, AT),
      "2026-12-02T04:00:00Z [WARN] refused 192.0.2.7: busy",
    );
    assert.equal(formatLogLine("fatal", "x", "", AT), "2026-12-02T04:00:00Z [FATAL] x");
    assert.match(formatLogLine("debug", "now"), LINE);
  });

  it("is what the library's default logger prints to stderr, with the session id of ctx", () => {
    const server = new MidiSmtpServer({ ports: 0 });
    const printed: string[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => void printed.push(args.join(" "));
    try {
      server.onLoggingEvent({ sessionId: "6K2M9QF1ZP4T" } as SmtpdContext, "warn", "in a session");
      server.onLoggingEvent(null, "error", "outside");
    } finally {
      console.error = original;
    }
    assert.equal(printed.length, 2);
    assert.deepEqual(LINE.exec(printed[0])?.slice(1), ["WARN", "6K2M9QF1ZP4T", "in a session"]);
    assert.deepEqual(LINE.exec(printed[1])?.slice(1), ["ERROR", undefined, "outside"]);
  });
});

describe("dev server log formats", () => {
  const session = { sessionId: "6K2M9QF1ZP4T", remoteIp: "192.0.2.7" };

  it("text is the library's line", () => {
    assert.deepEqual(LOG_FORMATS, ["text", "json"]);
    assert.equal(logLine("text", "warn", "m", session, AT), "2026-12-02T04:00:00Z [WARN] [6K2M9QF1ZP4T] m\n");
    assert.equal(logLine("text", "error", "m", null, AT), "2026-12-02T04:00:00Z [ERROR] m\n");
  });

  it("json: one object per line, session fields only on lines of a session", () => {
    const line = logLine("json", "warn", "AUTH PLAIN failed", session, AT);
    assert.ok(line.endsWith("}\n") && !line.slice(0, -1).includes("\n"));
    assert.deepEqual(Object.entries(JSON.parse(line)), [
      ["time", "2026-12-02T04:00:00Z"],
      ["level", "warn"],
      ["sessionId", "6K2M9QF1ZP4T"],
      ["msg", "AUTH PLAIN failed"],
      ["remoteIp", "192.0.2.7"],
    ]);
    assert.deepEqual(JSON.parse(logLine("json", "info", "listening", null, AT)), {
      time: "2026-12-02T04:00:00Z",
      level: "info",
      msg: "listening",
    });
    // A Unix-socket client has no address: no remoteIp.
    assert.deepEqual(Object.keys(JSON.parse(logLine("json", "info", "m", { ...session, remoteIp: "" }, AT))), [
      "time",
      "level",
      "sessionId",
      "msg",
    ]);
  });

  it("the message line: text as scripts parse it (sanitised), json with bare addresses", () => {
    const message = { sessionId: "6K2M9QF1ZP4T", from: "<>", to: ["<b@y>", "<c@y>"], size: 22, file: "m/new/1.x" };
    const upper = (address: string) => address.toUpperCase();
    assert.equal(
      messageLine("text", message, upper, AT),
      "2026-12-02T04:00:00Z <> -> <B@Y>,<C@Y> 22 bytes m/new/1.x\n",
    );
    assert.deepEqual(Object.entries(JSON.parse(messageLine("json", message, upper, AT))), [
      ["time", "2026-12-02T04:00:00Z"],
      ["level", "info"],
      ["event", "message"],
      ["sessionId", "6K2M9QF1ZP4T"],
      ["from", ""],
      ["to", ["b@y", "c@y"]],
      ["size", 22],
      ["file", "m/new/1.x"],
    ]);
  });

  it("json escapes what could drive a terminal or split the line, and keeps the value", () => {
    const tricky = "a\u001b[2Jb\u007fc\u009bd\u2028e\u2029f\r\ng\u00e9";
    const line = jsonLine({ msg: tricky });
    assert.equal(line, '{"msg":"a\\u001b[2Jb\\u007fc\\u009bd\\u2028e\\u2029f\\r\\ng\u00e9"}\n');
    assert.equal(JSON.parse(line).msg, tricky);
  });
});

describe("dev server final line", () => {
  it("formats the run time in whole seconds", () => {
    assert.deepEqual(
      [0, 999, 4_999, 60_000, 723_400, 3_600_000, 93_605_000, -5].map(formatUptime),
      ["0s", "0s", "4s", "1m00s", "12m03s", "1h00m00s", "26h00m05s", "0s"],
    );
  });

  it("says how long it ran and what it counted, singular and plural", () => {
    const stats = new DevServerStats();
    stats.startedAt = 1_000;
    assert.equal(
      stats.summary(1_000),
      "stopped after 0s: 0 messages stored, 0 connections, 0 refused, 0 error replies",
    );
    [stats.messages, stats.connections, stats.refused, stats.errorReplies] = [1, 1, 1, 1];
    assert.equal(
      stats.summary(63_000),
      "stopped after 1m02s: 1 message stored, 1 connection, 1 refused, 1 error reply",
    );
  });

  it("counts refusals from the refusal channel until told to stop", () => {
    const stats = new DevServerStats();
    const stop = stats.countRefusals();
    const event = { time: Date.now(), remoteIp: "192.0.2.7", code: 421, reason: "busy" };
    channels.refusal.publish(event);
    channels.refusal.publish(event);
    stop();
    channels.refusal.publish(event);
    assert.equal(stats.refused, 2);
  });
});
