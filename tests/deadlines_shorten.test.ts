/**
 * `Deadlines.shorten()` (src/session/deadlines.ts), run under all three runtimes:
 *
 *   deno test -A tests/deadlines_shorten.test.ts
 *   bun test ./tests/deadlines_shorten.test.ts
 *   node --import tsx --test tests/deadlines_shorten.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Deadlines } from "../src/session/deadlines.ts";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe("Deadlines.shorten", () => {
  it("brings an armed deadline forward", async () => {
    const clock = new Deadlines(10);
    const owner = {};
    const fired: number[] = [];
    const started = Date.now();
    clock.set(owner, 5000, () => fired.push(Date.now() - started));
    clock.shorten(owner, 40);
    await sleep(150);
    assert.equal(fired.length, 1, "fired once, long before the 5 s it was set to");
    assert.ok(fired[0] >= 40 && fired[0] < 140, `fired after ${fired[0]} ms`);
    assert.equal(clock.ticking, false, "nothing armed any more");
    clock.remove(owner);
  });

  it("never makes a deadline later", async () => {
    const clock = new Deadlines(10);
    const owner = {};
    const fired: number[] = [];
    const started = Date.now();
    clock.set(owner, 40, () => fired.push(Date.now() - started));
    clock.shorten(owner, 5000);
    await sleep(150);
    assert.equal(fired.length, 1, "still fired at its first deadline");
    assert.ok(fired[0] >= 40 && fired[0] < 140, `fired after ${fired[0]} ms`);
    clock.remove(owner);
  });

  it("keeps the earliest of several shortenings and the callback that was set", async () => {
    const clock = new Deadlines(10);
    const owner = {};
    const fired: string[] = [];
    clock.set(owner, 5000, () => fired.push("set"));
    clock.shorten(owner, 30);
    clock.shorten(owner, 3000);
    await sleep(120);
    assert.deepEqual(fired, ["set"]);
    clock.remove(owner);
  });

  it("does nothing for an owner that was never armed", async () => {
    const clock = new Deadlines(10);
    const owner = {};
    clock.shorten(owner, 10);
    assert.equal(clock.size, 0, "no entry is made for it");
    assert.equal(clock.ticking, false, "and no interval started");
    // Arming it later sets the deadline that set() asks for, not the earlier shorten().
    const fired: number[] = [];
    const started = Date.now();
    clock.set(owner, 80, () => fired.push(Date.now() - started));
    await sleep(40);
    assert.deepEqual(fired, []);
    await sleep(120);
    assert.equal(fired.length, 1);
    assert.ok(fired[0] >= 80, `fired after ${fired[0]} ms`);
    clock.remove(owner);
  });

  it("does nothing for a cleared or removed owner", async () => {
    const clock = new Deadlines(10);
    const cleared = {};
    const removed = {};
    const fired: string[] = [];
    clock.set(cleared, 5000, () => fired.push("cleared"));
    clock.set(removed, 5000, () => fired.push("removed"));
    clock.clear(cleared);
    clock.remove(removed);
    assert.equal(clock.ticking, false);
    clock.shorten(cleared, 0);
    clock.shorten(removed, 0);
    assert.equal(clock.ticking, false, "shorten() arms nothing");
    assert.equal(clock.size, 1, "the cleared owner is still known, the removed one is not");
    await sleep(60);
    assert.deepEqual(fired, []);
    clock.remove(cleared);
  });

  it("does nothing for a cleared owner while the sweep runs for others", async () => {
    const clock = new Deadlines(10);
    const cleared = {};
    const armed = {};
    const fired: string[] = [];
    clock.set(cleared, 5000, () => fired.push("cleared"));
    clock.clear(cleared);
    clock.set(armed, 5000, () => fired.push("armed"));
    clock.shorten(cleared, 0);
    await sleep(60);
    assert.deepEqual(fired, [], "the cleared deadline stayed cleared");
    clock.clear(armed);
    assert.equal(clock.ticking, false, "the armed count stayed right");
    clock.remove(cleared);
    clock.remove(armed);
  });

  it("leaves the other owners' deadlines alone, and clear() after shorten() stops the interval", async () => {
    const clock = new Deadlines(10);
    const a = {};
    const b = {};
    const fired: string[] = [];
    clock.set(a, 5000, () => fired.push("a"));
    clock.set(b, 5000, () => fired.push("b"));
    clock.shorten(a, 20);
    await sleep(100);
    assert.deepEqual(fired, ["a"]);
    assert.equal(clock.ticking, true, "b is still armed");
    clock.shorten(b, 5000);
    clock.clear(b);
    assert.equal(clock.ticking, false, "the armed count stayed right");
    await sleep(40);
    assert.deepEqual(fired, ["a"]);
    clock.remove(a);
    clock.remove(b);
  });
});
