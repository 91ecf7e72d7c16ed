/**
 * Unit tests of the processing slots (src/slots.ts), run under all three runtimes:
 *
 *   deno test -A tests/slots.test.ts
 *   bun test ./tests/slots.test.ts
 *   node --import tsx --test tests/slots.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Slots } from "../src/slots.ts";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** What `promise` has settled to by now, or "pending". */
async function state<T>(promise: Promise<T>): Promise<T | "pending"> {
  const pending = Symbol("pending");
  const result = await Promise.race([promise, sleep(0).then(() => pending)]);
  return result === pending ? "pending" : result as T;
}

describe("Slots", () => {
  it("gives up to max slots at once, then makes the next one wait", async () => {
    const slots = new Slots(2);
    assert.equal(slots.busy, 0);
    assert.equal(slots.free, true);
    assert.equal(await slots.acquire(null), true);
    assert.equal(await slots.acquire(1000), true);
    assert.equal(slots.busy, 2);
    assert.equal(slots.free, false);
    assert.equal(slots.waiting, 0);
    const third = slots.acquire(null);
    assert.equal(await state(third), "pending");
    assert.equal(slots.waiting, 1);
    assert.equal(slots.busy, 2);
    slots.release();
    assert.equal(await third, true);
  });

  it("hands a released slot straight to the first waiter: busy stays at max", async () => {
    const slots = new Slots(1);
    assert.equal(await slots.acquire(null), true);
    const first = slots.acquire(null);
    const second = slots.acquire(5000);
    assert.equal(slots.waiting, 2);
    slots.release();
    assert.equal(slots.busy, 1, "the slot went on, it was never free");
    assert.equal(slots.free, false);
    assert.equal(slots.waiting, 1);
    assert.equal(await state(first), true);
    assert.equal(await state(second), "pending", "the second waiter is still in line");
    // A newcomer does not overtake the one in line.
    const late = slots.acquire(null);
    assert.equal(await state(late), "pending");
    slots.release();
    assert.equal(await state(second), true);
    assert.equal(await state(late), "pending");
    slots.release();
    assert.equal(await state(late), true);
    assert.equal(slots.busy, 1);
    slots.release();
    assert.equal(slots.busy, 0);
    assert.equal(slots.free, true);
  });

  it("a waiter times out after timeoutMs: it resolves false and no longer waits", async () => {
    const slots = new Slots(1);
    await slots.acquire(null);
    const started = Date.now();
    const waiter = slots.acquire(50);
    assert.equal(slots.waiting, 1);
    await sleep(20);
    assert.equal(await state(waiter), "pending", "not before its timeout");
    assert.equal(await waiter, false);
    const waited = Date.now() - started;
    assert.ok(waited >= 45 && waited < 1000, `timed out after ${waited} ms`);
    assert.equal(slots.waiting, 0);
    assert.equal(slots.busy, 1);
    // The release that comes later frees the slot: it is not given to the waiter that left.
    slots.release();
    assert.equal(slots.busy, 0);
    assert.equal(slots.free, true);
  });

  it("a timed-out waiter leaves the others in line, in order", async () => {
    const slots = new Slots(1);
    await slots.acquire(null);
    const a = slots.acquire(5000);
    const b = slots.acquire(30);
    const c = slots.acquire(5000);
    assert.equal(await b, false);
    assert.equal(slots.waiting, 2);
    slots.release();
    assert.equal(await state(a), true);
    assert.equal(await state(c), "pending");
    slots.release();
    assert.equal(await state(c), true);
    assert.equal(slots.waiting, 0);
  });

  it("a waiter that got its slot is not refused by its timer later", async () => {
    const slots = new Slots(1);
    await slots.acquire(null);
    const waiter = slots.acquire(30);
    slots.release();
    assert.equal(await waiter, true);
    await sleep(60);
    assert.equal(slots.busy, 1);
    assert.equal(slots.waiting, 0);
  });

  it("refuseAll resolves every waiter false and leaves the held slots alone", async () => {
    const slots = new Slots(2);
    await slots.acquire(null);
    await slots.acquire(null);
    const waiters = [slots.acquire(null), slots.acquire(5000), slots.acquire(10)];
    assert.equal(slots.waiting, 3);
    slots.refuseAll();
    assert.equal(slots.waiting, 0);
    assert.deepEqual(await Promise.all(waiters), [false, false, false]);
    assert.equal(slots.busy, 2);
    slots.release();
    slots.release();
    assert.equal(slots.busy, 0);
    // The slots work as before.
    assert.equal(await slots.acquire(null), true);
    assert.equal(slots.busy, 1);
  });

  it("refuseAll with nobody waiting does nothing", async () => {
    const slots = new Slots(1);
    slots.refuseAll();
    assert.equal(await slots.acquire(null), true);
    assert.equal(slots.busy, 1);
  });

  it("busy never goes negative, and extra releases do not add slots", async () => {
    const slots = new Slots(2);
    slots.release();
    assert.equal(slots.busy, 0);
    await slots.acquire(null);
    slots.release();
    slots.release();
    slots.release();
    assert.equal(slots.busy, 0);
    assert.equal(await slots.acquire(null), true);
    assert.equal(await slots.acquire(null), true);
    assert.equal(slots.busy, 2);
    const third = slots.acquire(null);
    assert.equal(await state(third), "pending", "still only 2 slots");
    slots.refuseAll();
    assert.equal(await third, false);
  });
});
