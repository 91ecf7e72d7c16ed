/**
 * ReadQueue (src/transport/read_queue.ts), the bounded queue between a
 * push-based socket (node:net, Bun) and pull-based reads.
 *
 *   node --import tsx --test tests/transport_read_queue.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ReadQueue } from "../src/transport/read_queue.ts";

const KiB = 1024;

describe("ReadQueue", () => {
  it("gives chunks back in order and nothing once empty", () => {
    const queue = new ReadQueue();
    assert.equal(queue.empty, true);
    assert.equal(queue.shift(), undefined);
    queue.push(new Uint8Array(100 * KiB).fill(1));
    queue.push(new Uint8Array(10).fill(2));
    assert.equal(queue.empty, false);
    // Above the merge limit: one chunk per read, the same arrays.
    assert.equal(queue.shift()?.length, 100 * KiB);
    assert.deepEqual(queue.shift(), new Uint8Array(10).fill(2));
    assert.equal(queue.empty, true);
  });

  it("merges small queued chunks into one read", () => {
    const queue = new ReadQueue();
    for (const byte of [1, 2, 3]) queue.push(new Uint8Array([byte, byte]));
    assert.deepEqual(queue.shift(), new Uint8Array([1, 1, 2, 2, 3, 3]));
    assert.equal(queue.shift(), undefined);
  });

  it("asks for a pause past 256 KiB and allows resuming at half of it", () => {
    const queue = new ReadQueue();
    const chunk = new Uint8Array(64 * KiB);
    for (let i = 0; i < 4; i++) assert.equal(queue.push(chunk), false, `chunk ${i} stays under the mark`);
    assert.equal(queue.push(new Uint8Array(1)), true, "one byte over 256 KiB pauses");
    assert.equal(queue.canResume, false);
    queue.shift();
    queue.shift();
    assert.equal(queue.canResume, false, "128 KiB + 1 byte still queued");
    queue.shift();
    assert.equal(queue.canResume, true);
  });

  it("drops everything on clear()", () => {
    const queue = new ReadQueue();
    queue.push(new Uint8Array(300 * KiB));
    queue.clear();
    assert.equal(queue.empty, true);
    assert.equal(queue.canResume, true);
    assert.equal(queue.shift(), undefined);
    assert.equal(queue.push(new Uint8Array(1)), false, "the byte count starts again at 0");
  });
});
