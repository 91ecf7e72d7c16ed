/**
 * The environment scripts/test_all.ts gives each run: npm, which the package and README tests start, runs on a Node
 * npm supports, even in the run of the oldest Node tested (npm 11 wants ^20.17 or >=22.9; node-min is 20.10).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

/** Whether `version` (x.y.z) is in `range`, of the forms npm's own engines uses: `^x.y.z`, `>=x.y.z`, joined by `||`. */
function inRange(version: string, range: string): boolean {
  const parse = (v: string) => v.replace(/^v/, "").split(".").map(Number) as [number, number, number];
  const compare = (a: number[], b: number[]) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
  const v = parse(version);
  return range.split("||").some((part) => {
    const m = /^\s*(\^|>=)(\d+\.\d+\.\d+)\s*$/.exec(part);
    if (!m) throw new Error(`range part not understood: ${JSON.stringify(part)}`);
    const bound = parse(m[2]);
    return m[1] === ">=" ? compare(v, bound) >= 0 : v[0] === bound[0] && compare(v, bound) >= 0;
  });
}

test("inRange reads npm's engines ranges", () => {
  const npm11 = "^20.17.0 || >=22.9.0";
  assert.equal(inRange("20.17.0", npm11), true);
  assert.equal(inRange("v20.20.2", npm11), true);
  assert.equal(inRange("20.10.0", npm11), false);
  assert.equal(inRange("21.7.0", npm11), false);
  assert.equal(inRange("22.9.0", npm11), true);
  assert.equal(inRange("24.1.0", npm11), true);
  assert.throws(() => inRange("20.0.0", "~20.1"), /not understood/);
});

test("npm runs on a Node that npm supports, whatever Node this run tests", () => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));
  const run = (args: string[]) => execFileSync("npm", args, { cwd: tmpdir(), env, encoding: "utf8" }).trim();
  const versions = JSON.parse(run(["version", "--json"])) as { npm: string; node: string };
  // npm's global root is beside the Node it runs on: npm's own package is there when that Node is the one npm came with.
  const own = join(run(["root", "-g"]), "npm", "package.json");
  assert.ok(existsSync(own), `npm ${versions.npm} runs on Node ${versions.node}, not the Node it was installed with`);
  const engines = JSON.parse(readFileSync(own, "utf8")).engines as { node: string };
  assert.ok(
    inRange(versions.node, engines.node),
    `npm ${versions.npm} runs on Node ${versions.node}, outside its engines ${engines.node}`,
  );
});
