/**
 * Unit tests of the dev server's start deadline and bounded waits (src/dev_server/deadline.ts), run under all
 * three runtimes:
 *
 *   deno test -A tests/dev_server_deadline.test.ts
 *   bun test ./tests/dev_server_deadline.test.ts
 *   node --import tsx --test tests/dev_server_deadline.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Deadline, DeadlineError, settlesWithin } from "../src/dev_server/deadline.ts";

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const never = () => new Promise<never>(() => {});

describe("Deadline", () => {
  it("passes on what a step resolves or rejects with while there is time", async () => {
    const deadline = new Deadline(5, "start-up");
    assert.equal(await deadline.race("one", Promise.resolve(1)), 1);
    await assert.rejects(deadline.race("two", Promise.reject(new Error("boom"))), /^Error: boom$/);
  });

  it("rejects with a DeadlineError naming the step still going on", async () => {
    const deadline = new Deadline(0.05, "start-up");
    await assert.rejects(deadline.race("stuck", never()), (err: unknown) => {
      assert.ok(err instanceof DeadlineError);
      assert.equal(err.name, "DeadlineError");
      assert.equal(err.message, "start-up did not finish within 0.05 s: still stuck");
      return true;
    });
  });

  it("is one clock for every step: time used by the first is gone for the next", async () => {
    const deadline = new Deadline(0.15, "start-up");
    await deadline.race("first", delay(100));
    const started = Date.now();
    await assert.rejects(deadline.race("second", delay(1000)), /still second/);
    assert.ok(Date.now() - started < 500, "the second step got only what was left");
    // Past the deadline, a step that is already done still gives its value.
    assert.equal(await deadline.race("third", Promise.resolve("done")), "done");
  });

  it("runs `late` when a given-up step still resolves, and not otherwise", async () => {
    const deadline = new Deadline(0.02, "start-up");
    let late: string | undefined;
    await assert.rejects(deadline.race<string>("slow", delay(80).then(() => "up"), (value) => late = value));
    assert.equal(late, undefined);
    await delay(120);
    assert.equal(late, "up");
    let called = false;
    await new Deadline(5, "x").race("quick", Promise.resolve(1), () => called = true);
    await delay(10);
    assert.equal(called, false);
  });
});

describe("settlesWithin", () => {
  it("true when the promise resolves or rejects in time, false when it does not", async () => {
    assert.equal(await settlesWithin(delay(10), 1000), true);
    assert.equal(await settlesWithin(Promise.reject(new Error("no")), 1000), true);
    assert.equal(await settlesWithin(never(), 30), false);
  });
});
