/**
 * The layout of src/transport/, checked from the source text (so the same on
 * every runtime): no import cycles, and each transport loads only its own code
 * and the shared layers (Node never loads deno.ts or bun.ts and vice versa).
 * That every file there has a test file is checked for all of src/ in
 * source_coverage.test.ts.
 *
 *   node --import tsx --test tests/transport_layout.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const TRANSPORT_DIR = join(ROOT, "src", "transport");
const TRANSPORT_FILES = readdirSync(TRANSPORT_DIR).filter((name) => name.endsWith(".ts")).sort();

/** Relative specifiers a module imports at run time (`import type` and `export type` are erased, so left out). */
function runtimeImports(file: string): { static: string[]; dynamic: string[] } {
  const source = readFileSync(file, "utf8");
  const statics: string[] = [];
  for (const m of source.matchAll(/^(?:import|export)\s+(type\s+)?[^;]*?from\s+"(\.{1,2}\/[^"]+)"/gm)) {
    if (!m[1]) statics.push(m[2]);
  }
  for (const m of source.matchAll(/^import\s+"(\.{1,2}\/[^"]+)"/gm)) statics.push(m[1]);
  const dynamic = [...source.matchAll(/\bimport\(\s*"(\.{1,2}\/[^"]+)"\s*\)/g)].map((m) => m[1]);
  return { static: statics, dynamic };
}

/** The files a module loads when it is imported (its static imports, followed to the end), as paths from src/. */
function loadedBy(path: string): Set<string> {
  const seen = new Set<string>();
  const visit = (path: string) => {
    const name = relative(join(ROOT, "src"), path);
    if (seen.has(name)) return;
    seen.add(name);
    for (const spec of runtimeImports(path).static) visit(resolve(dirname(path), spec));
  };
  visit(path);
  return seen;
}

describe("src/transport layout", () => {
  it("has no import cycle", () => {
    const state = new Map<string, "visiting" | "done">();
    const visit = (path: string, trail: string[]) => {
      const name = relative(ROOT, path);
      if (state.get(name) === "done") return;
      assert.notEqual(state.get(name), "visiting", `import cycle: ${[...trail, name].join(" -> ")}`);
      state.set(name, "visiting");
      for (const spec of runtimeImports(path).static) visit(resolve(dirname(path), spec), [...trail, name]);
      state.set(name, "done");
    };
    for (const file of TRANSPORT_FILES) visit(join(TRANSPORT_DIR, file), []);
  });

  it("loads only the chosen runtime's transport", () => {
    const transports = ["transport/node.ts", "transport/deno.ts", "transport/bun.ts"];
    for (const own of transports) {
      const loaded = loadedBy(join(ROOT, "src", own));
      for (const other of transports) {
        if (other !== own) assert.ok(!loaded.has(other), `${own} loads ${other}: ${[...loaded].join(", ")}`);
      }
      // The TLS layer is shared: every transport does its TLS through it.
      assert.ok(loaded.has("transport/node_tls.ts"), `${own} does not use node_tls.ts`);
    }
    // detect.ts reaches the transports only through import(), one per runtime.
    const detect = runtimeImports(join(TRANSPORT_DIR, "detect.ts"));
    assert.deepEqual(detect.static, []);
    assert.deepEqual(detect.dynamic.sort(), ["./bun.ts", "./deno.ts", "./node.ts"]);
    // Importing the library loads no transport until the server (or the user) asks detect.ts for one.
    const library = loadedBy(join(ROOT, "mod.ts"));
    assert.ok(library.has("server.ts") && library.has("transport/detect.ts"), "the import graph was followed");
    for (const transport of transports) assert.ok(!library.has(transport), `mod.ts loads ${transport}`);
  });
});
