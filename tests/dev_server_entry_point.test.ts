/**
 * Unit tests of how src/cli.ts tells that it is the program (src/dev_server/entry_point.ts), run under all three
 * runtimes:
 *
 *   deno test -A tests/dev_server_entry_point.test.ts
 *   bun test ./tests/dev_server_entry_point.test.ts
 *   node --import tsx --test tests/dev_server_entry_point.test.ts
 *
 * That the CLI really runs as a program, also through an npm bin symlink, is tested in tests/cli.test.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { isEntryPoint, programArgs } from "../src/dev_server/entry_point.ts";

describe("isEntryPoint", () => {
  it("believes import.meta.main where the runtime sets it", () => {
    assert.equal(isEntryPoint({ url: import.meta.url, main: true }), true);
    assert.equal(isEntryPoint({ url: import.meta.url, main: false }), false);
  });

  it("without import.meta.main: whether the process runs this module's file, also through a symlink", () => {
    const dir = mkdtempSync(join(tmpdir(), "midi-entry-"));
    const saved = process.argv[1];
    try {
      const file = join(dir, "cli.js");
      const link = join(dir, "midi-smtp-server");
      writeFileSync(file, "");
      symlinkSync(file, link);
      const url = pathToFileURL(file).href;
      process.argv[1] = file;
      assert.equal(isEntryPoint({ url }), true);
      process.argv[1] = link; // how npm runs a bin
      assert.equal(isEntryPoint({ url }), true);
      process.argv[1] = join(dir, "other.js");
      assert.equal(isEntryPoint({ url }), false, "a script that does not exist");
      writeFileSync(join(dir, "other.js"), "");
      assert.equal(isEntryPoint({ url }), false, "another script");
      process.argv[1] = "";
      assert.equal(isEntryPoint({ url }), false, "no script (a REPL)");
    } finally {
      process.argv[1] = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("programArgs", () => {
  it("is the arguments after the script, as a fresh array", () => {
    const args = programArgs();
    assert.ok(Array.isArray(args));
    assert.ok(args.every((arg) => typeof arg === "string"));
    assert.notEqual(programArgs(), programArgs());
  });
});
