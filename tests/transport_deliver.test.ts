/**
 * connectionDeliverer (src/transport/deliver.ts): a throwing connection
 * callback closes only that connection and reports the error asynchronously.
 *
 *   node --import tsx --test tests/transport_deliver.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { connectionDeliverer } from "../src/transport/deliver.ts";
import { FakeConnection } from "./fake_connection.ts";

describe("connectionDeliverer", () => {
  it("hands the connection to the callback", () => {
    const seen: unknown[] = [];
    const conn = new FakeConnection();
    connectionDeliverer((c) => seen.push(c))(conn);
    assert.deepEqual(seen, [conn]);
    assert.equal(conn.closes, 0);
  });

  it("closes the connection when the callback throws, and rethrows in a microtask", () => {
    const queued: Array<() => void> = [];
    const original = globalThis.queueMicrotask;
    // Caught here instead of as an uncaught error, which the test runner would blame on this test.
    globalThis.queueMicrotask = (fn) => queued.push(fn);
    const conn = new FakeConnection();
    const deliver = connectionDeliverer(() => {
      throw new Error("hook failed");
    });
    try {
      deliver(conn); // does not throw: the accept loop goes on
    } finally {
      globalThis.queueMicrotask = original;
    }
    assert.equal(conn.closes, 1);
    assert.equal(queued.length, 1);
    assert.throws(queued[0], /hook failed/);
  });
});
