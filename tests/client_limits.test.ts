/**
 * Unit tests of the per-client limits (src/client_limits.ts) with a fake clock, run under all three runtimes:
 *
 *   deno test -A tests/client_limits.test.ts
 *   bun test ./tests/client_limits.test.ts
 *   node --import tsx --test tests/client_limits.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ClientLimits, RATE_WINDOW_MS, type Refusal, RefusalLog, WindowCounter } from "../src/client_limits.ts";
import { resolveOptions, type ServerOptions } from "../src/options.ts";

// ---------------------------------------------------------------------------
// helpers

/** A clock the test moves by hand. */
class FakeClock {
  now = 1_700_000_000_000;
  readonly read = (): number => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
}

/** Every limit off unless `options` turns it on. */
const ALL_OFF: ServerOptions = {
  maxConnectionsPerIp: null,
  maxConnectionRatePerIp: null,
  maxMessageRatePerIp: null,
  maxAuthFailuresPerIp: null,
};

function limitsWith(options: ServerOptions, clock = new FakeClock()): { limits: ClientLimits; clock: FakeClock } {
  return { limits: new ClientLimits(resolveOptions({ ...ALL_OFF, ...options }), clock.read), clock };
}

/** Admits `n` connections from `ip`, failing on the first refusal. */
function admitMany(limits: ClientLimits, ip: string, n: number): void {
  for (let i = 0; i < n; i++) assert.equal(limits.admitConnection(ip), undefined, `connection ${i + 1} from ${ip}`);
}

/** Only the fields a client and the log see. */
function shape(r: Refusal | undefined): { code: number; enhancedCode: string; reason: string } | undefined {
  return r && { code: r.code, enhancedCode: r.enhancedCode, reason: r.reason };
}

// ---------------------------------------------------------------------------

describe("WindowCounter", () => {
  it("counts hits per key within the window, the current one included", () => {
    const counter = new WindowCounter(1000);
    assert.equal(counter.hit("a", 0), 1);
    assert.equal(counter.hit("a", 10), 2);
    assert.equal(counter.hit("b", 20), 1);
    assert.equal(counter.hit("a", 999), 3);
    assert.equal(counter.count("a", 999), 3);
    assert.equal(counter.count("b", 999), 1);
    assert.equal(counter.count("unknown", 999), 0);
  });

  it("restarts a key's count once its window (from its first hit) is over", () => {
    const counter = new WindowCounter(1000);
    counter.hit("a", 100);
    counter.hit("a", 600);
    assert.equal(counter.count("a", 1099), 2, "still inside [100, 1100)");
    assert.equal(counter.count("a", 1100), 0, "the window ends at first hit + windowMs");
    assert.equal(counter.hit("a", 1100), 1, "a new window starts");
    assert.equal(counter.hit("a", 2099), 2);
    assert.equal(counter.hit("a", 2100), 1);
  });

  it("keeps windows of different keys apart", () => {
    const counter = new WindowCounter(1000);
    counter.hit("a", 0);
    counter.hit("b", 500);
    assert.equal(counter.count("a", 1000), 0);
    assert.equal(counter.count("b", 1000), 1);
    assert.equal(counter.count("b", 1500), 0);
  });

  it("restart() moves the window start to now and keeps the count", () => {
    const counter = new WindowCounter(1000);
    counter.hit("a", 0);
    counter.hit("a", 800);
    counter.restart("a", 800);
    assert.equal(counter.count("a", 1000), 2, "without the restart the window would have ended at 1000");
    assert.equal(counter.count("a", 1799), 2);
    assert.equal(counter.count("a", 1800), 0);
  });

  it("restart() of an unknown key adds nothing", () => {
    const counter = new WindowCounter(1000);
    counter.restart("ghost", 5);
    assert.equal(counter.size, 0);
    assert.equal(counter.count("ghost", 5), 0);
  });

  it("sweeps expired keys when a new key comes a window later", () => {
    const counter = new WindowCounter(1000);
    for (let i = 0; i < 500; i++) counter.hit(`k${i}`, 1000 + i);
    assert.equal(counter.size, 500);
    counter.hit("late", 1000 + 499 + 1000);
    assert.equal(counter.size, 1, "every old key had expired");
    assert.equal(counter.count("late", 2499), 1);
  });

  it("stays bounded at 100000 keys: a new key drops the oldest one", () => {
    const counter = new WindowCounter(60_000);
    const MAX = 100_000;
    for (let i = 0; i < MAX; i++) counter.hit(`k${i}`, 0);
    assert.equal(counter.size, MAX);
    assert.equal(counter.hit("newest", 1), 1);
    assert.equal(counter.size, MAX);
    assert.equal(counter.count("k0", 1), 0, "the oldest key was dropped");
    assert.equal(counter.count("k1", 1), 1);
    assert.equal(counter.count("newest", 1), 1);
    counter.hit("newer", 2);
    assert.equal(counter.size, MAX);
    assert.equal(counter.count("k1", 2), 0);
    // A hit on a key that is still tracked does not evict anything.
    assert.equal(counter.hit("k2", 3), 2);
    assert.equal(counter.size, MAX);
    assert.equal(counter.count("k3", 3), 1);
  });
});

describe("ClientLimits: maxConnectionsPerIp", () => {
  it("admits up to N open connections and refuses the next with 421 4.7.0", () => {
    const { limits } = limitsWith({ maxConnectionsPerIp: 3 });
    admitMany(limits, "192.0.2.1", 3);
    assert.equal(limits.openConnections("192.0.2.1"), 3);
    const refused = limits.admitConnection("192.0.2.1");
    assert.deepEqual(shape(refused), { code: 421, enhancedCode: "4.7.0", reason: "maxConnectionsPerIp (3) reached" });
    assert.equal(refused?.text, "Too many connections from your address, try again later");
    assert.equal(limits.openConnections("192.0.2.1"), 3, "a refused connection is not counted as open");
    // Another address is not affected.
    admitMany(limits, "192.0.2.2", 3);
  });

  it("frees one place per released connection", () => {
    const { limits } = limitsWith({ maxConnectionsPerIp: 2 });
    admitMany(limits, "192.0.2.1", 2);
    assert.notEqual(limits.admitConnection("192.0.2.1"), undefined);
    limits.releaseConnection("192.0.2.1");
    assert.equal(limits.openConnections("192.0.2.1"), 1);
    assert.equal(limits.admitConnection("192.0.2.1"), undefined);
    assert.notEqual(limits.admitConnection("192.0.2.1"), undefined);
    limits.releaseConnection("192.0.2.1");
    limits.releaseConnection("192.0.2.1");
    assert.equal(limits.openConnections("192.0.2.1"), 0);
  });

  it("never counts below zero on extra releases", () => {
    const { limits } = limitsWith({ maxConnectionsPerIp: 1 });
    limits.releaseConnection("192.0.2.1");
    limits.releaseConnection("192.0.2.1");
    assert.equal(limits.openConnections("192.0.2.1"), 0);
    assert.equal(limits.admitConnection("192.0.2.1"), undefined);
    assert.notEqual(limits.admitConnection("192.0.2.1"), undefined, "still only one, not three");
  });

  it("counts IPv6 addresses in one /64 together, whatever their spelling", () => {
    const { limits } = limitsWith({ maxConnectionsPerIp: 3 });
    assert.equal(limits.admitConnection("2001:db8:1:2::1"), undefined);
    assert.equal(limits.admitConnection("2001:db8:1:2:ffff:ffff:ffff:ffff"), undefined);
    assert.equal(limits.admitConnection("2001:DB8:1:2:0:0:0:abcd"), undefined);
    assert.equal(limits.openConnections("2001:db8:1:2:1234::"), 3);
    assert.equal(limits.admitConnection("2001:db8:1:2:aaaa::5")?.code, 421);
    limits.releaseConnection("2001:0db8:0001:0002::9");
    assert.equal(limits.openConnections("2001:db8:1:2::1"), 2);
  });

  it("counts different /64s apart", () => {
    const { limits } = limitsWith({ maxConnectionsPerIp: 1 });
    assert.equal(limits.admitConnection("2001:db8:1:2::1"), undefined);
    assert.equal(limits.admitConnection("2001:db8:1:3::1"), undefined, "next /64");
    assert.equal(limits.admitConnection("2001:db8:2:2::1"), undefined);
    assert.equal(limits.admitConnection("2001:db9:1:2::1"), undefined);
    assert.equal(limits.admitConnection("2001:db8:1:2::2")?.code, 421);
    assert.equal(limits.openConnections("2001:db8:1:3::77"), 1);
  });

  it("counts a v4-mapped IPv6 address as the IPv4 address it carries", () => {
    const { limits } = limitsWith({ maxConnectionsPerIp: 2 });
    assert.equal(limits.admitConnection("192.0.2.1"), undefined);
    assert.equal(limits.admitConnection("::ffff:192.0.2.1"), undefined);
    assert.equal(limits.openConnections("192.0.2.1"), 2);
    assert.equal(limits.admitConnection("::FFFF:192.0.2.1")?.code, 421);
    assert.equal(limits.admitConnection("192.0.2.1")?.code, 421);
    limits.releaseConnection("::ffff:c000:201"); // the same address, written in hex
    assert.equal(limits.openConnections("192.0.2.1"), 1);
    // Not any ::ffff-ish address: ::192.0.2.1 (v4-compatible) is an IPv6 address of its own.
    assert.equal(limits.admitConnection("::192.0.2.1"), undefined);
  });
});

describe("ClientLimits: maxConnectionRatePerIp", () => {
  it("admits N new connections a minute, then refuses with 421 4.7.0 until the window is over", () => {
    const { limits, clock } = limitsWith({ maxConnectionRatePerIp: 3 });
    for (let i = 0; i < 3; i++) {
      assert.equal(limits.admitConnection("192.0.2.1"), undefined, `connection ${i + 1}`);
      limits.releaseConnection("192.0.2.1");
      clock.advance(1000);
    }
    const refused = limits.admitConnection("192.0.2.1");
    assert.deepEqual(shape(refused), {
      code: 421,
      enhancedCode: "4.7.0",
      reason: "maxConnectionRatePerIp (3 a minute) reached",
    });
    assert.equal(limits.openConnections("192.0.2.1"), 0, "a refused connection is not counted as open");
    assert.equal(limits.admitConnection("192.0.2.2"), undefined, "another client has its own rate");
    // The window started with the first connection, 3 s ago.
    clock.advance(RATE_WINDOW_MS - 3000 - 1);
    assert.equal(limits.admitConnection("192.0.2.1")?.code, 421, "1 ms before the window ends");
    clock.advance(1);
    assert.equal(limits.admitConnection("192.0.2.1"), undefined, "a new window admits again");
    assert.equal(limits.admitConnection("192.0.2.1"), undefined);
    assert.equal(limits.admitConnection("192.0.2.1"), undefined);
    assert.equal(limits.admitConnection("192.0.2.1")?.code, 421);
  });

  it("counts the rate per /64 and v4-mapped as IPv4", () => {
    const { limits } = limitsWith({ maxConnectionRatePerIp: 1 });
    assert.equal(limits.admitConnection("2001:db8::1"), undefined);
    assert.equal(limits.admitConnection("2001:db8::2")?.code, 421);
    assert.equal(limits.admitConnection("192.0.2.9"), undefined);
    assert.equal(limits.admitConnection("::ffff:192.0.2.9")?.code, 421);
  });
});

describe("ClientLimits: maxMessageRatePerIp", () => {
  it("refuses the MAIL after N a minute with 450 4.7.1, and admits again in the next window", () => {
    const { limits, clock } = limitsWith({ maxMessageRatePerIp: 2 });
    assert.equal(limits.admitMessage("192.0.2.1"), undefined);
    clock.advance(30_000);
    assert.equal(limits.admitMessage("192.0.2.1"), undefined);
    const refused = limits.admitMessage("192.0.2.1");
    assert.deepEqual(shape(refused), {
      code: 450,
      enhancedCode: "4.7.1",
      reason: "maxMessageRatePerIp (2 a minute) reached",
    });
    assert.equal(refused?.text, "Too much mail from your address, try again later");
    assert.equal(limits.admitMessage("192.0.2.2"), undefined, "another client has its own rate");
    clock.advance(29_999);
    assert.equal(limits.admitMessage("192.0.2.1")?.code, 450);
    clock.advance(1);
    assert.equal(limits.admitMessage("192.0.2.1"), undefined);
    assert.equal(limits.admitMessage("::ffff:192.0.2.1"), undefined);
    assert.equal(limits.admitMessage("192.0.2.1")?.code, 450);
  });
});

describe("ClientLimits: AUTH lockout", () => {
  it("locks AUTH once maxAuthFailuresPerIp failures are counted", () => {
    const { limits, clock } = limitsWith({ maxAuthFailuresPerIp: 3, authLockoutTime: 100 });
    assert.equal(limits.authLocked("192.0.2.1"), undefined);
    limits.authFailed("192.0.2.1");
    clock.advance(1000);
    limits.authFailed("192.0.2.1");
    assert.equal(limits.authLocked("192.0.2.1"), undefined, "2 of 3 failures: not locked yet");
    limits.authFailed("192.0.2.1");
    const locked = limits.authLocked("192.0.2.1");
    assert.deepEqual(shape(locked), {
      code: 421,
      enhancedCode: "4.7.0",
      reason: "maxAuthFailuresPerIp (3) reached: AUTH locked for 100 s",
    });
    assert.equal(limits.authLocked("192.0.2.2"), undefined, "another client is not locked");
    assert.equal(limits.authLocked("::ffff:192.0.2.1")?.code, 421, "the same client, v4-mapped");
  });

  it("keeps the lock for authLockoutTime from the failure that reached the limit, then unlocks", () => {
    const { limits, clock } = limitsWith({ maxAuthFailuresPerIp: 3, authLockoutTime: 100 });
    const start = clock.now;
    limits.authFailed("192.0.2.1"); // t = 0
    clock.now = start + 10_000;
    limits.authFailed("192.0.2.1"); // t = 10 s
    clock.now = start + 50_000;
    limits.authFailed("192.0.2.1"); // t = 50 s: the limit is reached, locked until 150 s
    clock.now = start + 100_000;
    assert.notEqual(limits.authLocked("192.0.2.1"), undefined, "100 s after the first failure: still locked");
    clock.now = start + 149_999;
    assert.notEqual(limits.authLocked("192.0.2.1"), undefined, "1 ms before the lock ends");
    clock.now = start + 150_000;
    assert.equal(limits.authLocked("192.0.2.1"), undefined, "authLockoutTime after the third failure");
    // Counting starts from zero again.
    limits.authFailed("192.0.2.1");
    limits.authFailed("192.0.2.1");
    assert.equal(limits.authLocked("192.0.2.1"), undefined);
    limits.authFailed("192.0.2.1");
    assert.notEqual(limits.authLocked("192.0.2.1"), undefined);
  });

  it("failures spread over more than authLockoutTime do not add up", () => {
    const { limits, clock } = limitsWith({ maxAuthFailuresPerIp: 2, authLockoutTime: 10 });
    limits.authFailed("192.0.2.1");
    clock.advance(10_000);
    limits.authFailed("192.0.2.1");
    assert.equal(limits.authLocked("192.0.2.1"), undefined);
    clock.advance(9_999);
    limits.authFailed("192.0.2.1");
    assert.notEqual(limits.authLocked("192.0.2.1"), undefined);
  });

  it("counts failures per /64", () => {
    const { limits } = limitsWith({ maxAuthFailuresPerIp: 2 });
    limits.authFailed("2001:db8:0:1::a");
    limits.authFailed("2001:db8:0:1::b");
    assert.equal(limits.authLocked("2001:db8:0:1::c")?.code, 421);
    assert.equal(limits.authLocked("2001:db8:0:2::a"), undefined);
  });

  it("locks with a limit of 1 on the first failure", () => {
    const { limits, clock } = limitsWith({ maxAuthFailuresPerIp: 1, authLockoutTime: 1 });
    limits.authFailed("192.0.2.1");
    assert.equal(limits.authLocked("192.0.2.1")?.code, 421);
    clock.advance(1000);
    assert.equal(limits.authLocked("192.0.2.1"), undefined);
  });
});

describe("ClientLimits: null turns a limit off", () => {
  it("maxConnectionsPerIp: null admits any number of open connections", () => {
    const { limits } = limitsWith({ maxConnectionsPerIp: null, maxConnectionRatePerIp: null });
    admitMany(limits, "192.0.2.1", 5000);
  });

  it("maxConnectionRatePerIp: null admits any number of new connections a minute", () => {
    const { limits } = limitsWith({ maxConnectionsPerIp: 1, maxConnectionRatePerIp: null });
    for (let i = 0; i < 2000; i++) {
      assert.equal(limits.admitConnection("192.0.2.1"), undefined, `connection ${i + 1}`);
      limits.releaseConnection("192.0.2.1");
    }
  });

  it("maxMessageRatePerIp: null never refuses MAIL", () => {
    const { limits } = limitsWith({ maxMessageRatePerIp: null });
    for (let i = 0; i < 5000; i++) assert.equal(limits.admitMessage("192.0.2.1"), undefined);
  });

  it("maxAuthFailuresPerIp: null never locks AUTH", () => {
    const { limits } = limitsWith({ maxAuthFailuresPerIp: null });
    for (let i = 0; i < 1000; i++) limits.authFailed("192.0.2.1");
    assert.equal(limits.authLocked("192.0.2.1"), undefined);
  });

  it("one limit off leaves the others on", () => {
    const { limits } = limitsWith({ maxConnectionsPerIp: null, maxConnectionRatePerIp: 2, maxMessageRatePerIp: 1 });
    admitMany(limits, "192.0.2.1", 2);
    assert.equal(limits.admitConnection("192.0.2.1")?.reason, "maxConnectionRatePerIp (2 a minute) reached");
    assert.equal(limits.admitMessage("192.0.2.1"), undefined);
    assert.equal(limits.admitMessage("192.0.2.1")?.code, 450);
  });

  it("the defaults of resolveOptions are on (50 open, 600 a minute, 1200 MAIL a minute, 10 AUTH failures)", () => {
    const limits = new ClientLimits(resolveOptions({}), () => 0);
    admitMany(limits, "192.0.2.1", 50);
    assert.equal(limits.admitConnection("192.0.2.1")?.reason, "maxConnectionsPerIp (50) reached");
    for (let i = 0; i < 1200; i++) assert.equal(limits.admitMessage("192.0.2.1"), undefined);
    assert.equal(limits.admitMessage("192.0.2.1")?.code, 450);
    for (let i = 0; i < 9; i++) limits.authFailed("192.0.2.1");
    assert.equal(limits.authLocked("192.0.2.1"), undefined);
    limits.authFailed("192.0.2.1");
    assert.equal(limits.authLocked("192.0.2.1")?.reason, "maxAuthFailuresPerIp (10) reached: AUTH locked for 900 s");
  });
});

describe("ClientLimits: perIpLimitsExempt", () => {
  const strict: ServerOptions = {
    maxConnectionsPerIp: 1,
    maxConnectionRatePerIp: 1,
    maxMessageRatePerIp: 1,
    maxAuthFailuresPerIp: 1,
    perIpLimitsExempt: ["192.0.2.0/24", "2001:db8:aaaa::/48"],
  };

  it("never refuses an exempt address and counts nothing for it", () => {
    const { limits } = limitsWith(strict);
    for (const ip of ["192.0.2.7", "::ffff:192.0.2.8", "2001:db8:aaaa:1::1", "2001:db8:aaaa:2::1"]) {
      assert.equal(limits.applies(ip), false, ip);
      admitMany(limits, ip, 20);
      assert.equal(limits.openConnections(ip), 0, `${ip}: not counted`);
      for (let i = 0; i < 20; i++) assert.equal(limits.admitMessage(ip), undefined, ip);
      for (let i = 0; i < 20; i++) limits.authFailed(ip);
      assert.equal(limits.authLocked(ip), undefined, ip);
      limits.releaseConnection(ip);
      assert.equal(limits.openConnections(ip), 0);
    }
  });

  it("never limits a client without an address (a Unix-socket peer): they would all share one counter", () => {
    const { limits } = limitsWith(strict);
    assert.equal(limits.applies(""), false);
    for (let i = 0; i < 5; i++) assert.equal(limits.admitMessage(""), undefined);
    for (let i = 0; i < 5; i++) limits.authFailed("");
    assert.equal(limits.authLocked(""), undefined);
  });

  it("still limits addresses outside the exempt networks", () => {
    const { limits } = limitsWith(strict);
    for (const ip of ["192.0.3.1", "2001:db8:aaab::1"]) {
      assert.equal(limits.applies(ip), true, ip);
      assert.equal(limits.admitConnection(ip), undefined, ip);
      assert.equal(limits.admitConnection(ip)?.code, 421, ip);
      assert.equal(limits.admitMessage(ip), undefined, ip);
      assert.equal(limits.admitMessage(ip)?.code, 450, ip);
      limits.authFailed(ip);
      assert.equal(limits.authLocked(ip)?.code, 421, ip);
    }
  });

  it("an exempt address does not use up the count of its /64 neighbours outside the list", () => {
    const { limits } = limitsWith({ maxConnectionsPerIp: 1, perIpLimitsExempt: ["2001:db8:1:2::1/128"] });
    admitMany(limits, "2001:db8:1:2::1", 5);
    assert.equal(limits.admitConnection("2001:db8:1:2::2"), undefined);
    assert.equal(limits.admitConnection("2001:db8:1:2::3")?.code, 421);
  });
});

describe("RefusalLog", () => {
  it("logs the first refusal, suppresses repeats in the window and reports their count in the next window", () => {
    const clock = new FakeClock();
    const log = new RefusalLog(clock.read);
    assert.deepEqual(log.shouldLog("192.0.2.1", "maxConnectionsPerIp (3) reached"), { suppressed: 0 });
    for (let i = 0; i < 4; i++) {
      clock.advance(1000);
      assert.equal(log.shouldLog("192.0.2.1", "maxConnectionsPerIp (3) reached"), undefined, `repeat ${i + 1}`);
    }
    clock.now += RATE_WINDOW_MS - 4000 - 1;
    assert.equal(log.shouldLog("192.0.2.1", "maxConnectionsPerIp (3) reached"), undefined, "1 ms before the end");
    clock.advance(1);
    assert.deepEqual(log.shouldLog("192.0.2.1", "maxConnectionsPerIp (3) reached"), { suppressed: 5 });
    // The next window counts from zero again.
    clock.advance(1);
    assert.equal(log.shouldLog("192.0.2.1", "maxConnectionsPerIp (3) reached"), undefined);
    clock.advance(RATE_WINDOW_MS);
    assert.deepEqual(log.shouldLog("192.0.2.1", "maxConnectionsPerIp (3) reached"), { suppressed: 1 });
    clock.advance(RATE_WINDOW_MS);
    assert.deepEqual(log.shouldLog("192.0.2.1", "maxConnectionsPerIp (3) reached"), { suppressed: 0 });
  });

  it("keeps clients and reasons apart", () => {
    const clock = new FakeClock();
    const log = new RefusalLog(clock.read);
    assert.deepEqual(log.shouldLog("192.0.2.1", "a"), { suppressed: 0 });
    assert.deepEqual(log.shouldLog("192.0.2.1", "b"), { suppressed: 0 }, "another reason");
    assert.deepEqual(log.shouldLog("192.0.2.2", "a"), { suppressed: 0 }, "another client");
    assert.equal(log.shouldLog("192.0.2.1", "a"), undefined);
    assert.equal(log.shouldLog("192.0.2.1", "a"), undefined);
    assert.equal(log.shouldLog("192.0.2.2", "a"), undefined);
    clock.advance(RATE_WINDOW_MS);
    assert.deepEqual(log.shouldLog("192.0.2.1", "a"), { suppressed: 2 });
    assert.deepEqual(log.shouldLog("192.0.2.1", "b"), { suppressed: 0 });
    assert.deepEqual(log.shouldLog("192.0.2.2", "a"), { suppressed: 1 });
  });

  it("treats one /64 and a v4-mapped address as one client", () => {
    const clock = new FakeClock();
    const log = new RefusalLog(clock.read);
    assert.deepEqual(log.shouldLog("2001:db8:1:2::1", "r"), { suppressed: 0 });
    assert.equal(log.shouldLog("2001:db8:1:2::ffff", "r"), undefined);
    assert.deepEqual(log.shouldLog("2001:db8:1:3::1", "r"), { suppressed: 0 });
    assert.deepEqual(log.shouldLog("192.0.2.1", "r"), { suppressed: 0 });
    assert.equal(log.shouldLog("::ffff:192.0.2.1", "r"), undefined);
    clock.advance(RATE_WINDOW_MS);
    assert.deepEqual(log.shouldLog("2001:db8:1:2::2", "r"), { suppressed: 1 });
    assert.deepEqual(log.shouldLog("192.0.2.1", "r"), { suppressed: 1 });
  });
});
