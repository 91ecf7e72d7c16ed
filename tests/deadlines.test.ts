/** The shared deadline clock used for session timeouts. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Deadlines, resolutionFor } from "../src/session/deadlines.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("Deadlines", () => {
  it("fires once after the delay, within one resolution step", async () => {
    const clock = new Deadlines(10);
    const owner = {};
    const fired: number[] = [];
    const started = Date.now();
    clock.set(owner, 50, () => fired.push(Date.now() - started));
    await sleep(150);
    assert.equal(fired.length, 1);
    assert.ok(fired[0] >= 50 && fired[0] < 120, `fired after ${fired[0]} ms`);
  });

  it("does not fire once cleared, and setting again replaces the deadline", async () => {
    const clock = new Deadlines(10);
    const a = {};
    const b = {};
    const fired: string[] = [];
    clock.set(a, 30, () => fired.push("a"));
    clock.clear(a);
    clock.set(b, 30, () => fired.push("b1"));
    clock.set(b, 80, () => fired.push("b2"));
    await sleep(50);
    assert.deepEqual(fired, []);
    await sleep(100);
    assert.deepEqual(fired, ["b2"]);
  });

  it("forgets removed owners and never fires for them; a cleared owner stays known", async () => {
    const clock = new Deadlines(10);
    const a = {};
    const b = {};
    const fired: string[] = [];
    clock.set(a, 30, () => fired.push("a"));
    clock.set(b, 30, () => fired.push("b"));
    clock.clear(b);
    assert.equal(clock.size, 2);
    assert.equal(clock.ticking, true, "a is still armed");
    clock.clear(a);
    assert.equal(clock.ticking, false, "nothing armed: no interval, though a and b are still known");
    assert.equal(clock.size, 2);
    clock.remove(a);
    clock.remove(b);
    assert.equal(clock.size, 0);
    await sleep(60);
    assert.equal(fired.length, 0);
    clock.set(a, 20, () => fired.push("a again"));
    await sleep(60);
    assert.deepEqual(fired, ["a again"]);
    clock.remove(a);
  });

  it("picks a tenth of the shortest timeout, between 10 ms and 1 s", () => {
    assert.equal(resolutionFor([300, 300, 600]), 1000);
    assert.equal(resolutionFor([0.3, 300, null]), 30);
    assert.equal(resolutionFor([0.01]), 10);
    assert.equal(resolutionFor([null, null]), 1000);
  });
});
