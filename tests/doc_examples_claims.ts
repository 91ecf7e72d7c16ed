/**
 * The checks that tests/doc_examples.test.ts writes into the JSDoc examples it
 * runs, one call per result comment (the convention is in that file's
 * header). Each check records that it was reached and throws an
 * AssertionError naming the example's source line when the result differs.
 * The example modules import this file by URL, so they share this module
 * instance, and {@link reached}, with the test.
 */
import assert from "node:assert/strict";
import { inspect } from "node:util";

/** The source locations (`src/x.ts:12`) of the claims evaluated since the last {@link resetClaims}. */
export const reached: Set<string> = new Set();

/** Forgets the claims reached so far (before each example runs). */
export function resetClaims(): void {
  reached.clear();
}

/** Prefixes an assertion's message with the claim's source location. */
function located<T>(where: string, check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (!(err instanceof assert.AssertionError)) throw err;
    // A new error, not a changed message: runners print the stack, which holds the message made at construction.
    throw new assert.AssertionError({ message: `${where}: ${err.message}` });
  }
}

/** `expr; // => value`: `actual` must deep-equal `expected` (node:assert/strict `deepStrictEqual`). */
export function claim(where: string, actual: unknown, expected: unknown): void {
  reached.add(where);
  located(where, () => assert.deepStrictEqual(actual, expected));
}

/** `console.log(a, b); // => x, y`: logs `args` as the example does, and they must deep-equal `expected`, one by one. */
export function claimLog(where: string, args: unknown[], expected: unknown[]): void {
  console.log(...args);
  claim(where, args, expected);
}

/** Checks that `err` is an error named `name` (its `name` or its class name) with `message`, if one is claimed. */
function checkError(where: string, err: unknown, name: string, message: string | undefined): void {
  located(where, () => {
    assert.ok(err instanceof Error, `the example claims it throws ${name}, but it threw ${inspect(err)}`);
    assert.ok(
      err.name === name || err.constructor.name === name,
      `the example claims it throws ${name}, but it threw ${err.name}: ${err.message}`,
    );
    if (message !== undefined) assert.equal(err.message, message);
  });
}

/**
 * `expr; // throws Name: message`: evaluating `expr` must throw (or, when
 * it is awaited, reject with) an error named `Name`, with exactly `message`
 * if one follows the colon.
 */
export function claimThrows(
  where: string,
  evaluate: () => unknown,
  name: string,
  message?: string,
): void | Promise<void> {
  reached.add(where);
  let result: unknown;
  try {
    result = evaluate();
  } catch (err) {
    checkError(where, err, name, message);
    return;
  }
  const returned = (value: unknown) =>
    located(where, () => assert.fail(`the example claims it throws ${name}, but it gave ${inspect(value)}`));
  if (result instanceof Promise) {
    return result.then(returned, (err: unknown) => checkError(where, err, name, message));
  }
  returned(result);
}
