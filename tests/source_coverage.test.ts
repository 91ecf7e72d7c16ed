/**
 * Every source file has a test file that names it: each .ts file under src/,
 * and mod.ts, is imported by at least one tests/**\/*.test.ts file. Imports
 * count when static (`import ... from`, `import "..."`, `export ... from`,
 * `import type` too) or dynamic with a literal path (`import("../src/x.ts")`),
 * resolved from the test file's folder; helpers (tests/*.ts without `.test`)
 * do not count, nor do paths built at run time or handed to a subprocess.
 *
 * {@link ALLOWED} may exempt a file only when it cannot be imported in every
 * runtime (say why). {@link PENDING} lists files whose owners are reworking
 * them and owe a test: those are `todo` until the test exists.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Files that cannot be imported in every runtime, with the reason. None today. */
const ALLOWED: Readonly<Record<string, string>> = {};

/** Files being reworked by their owners, whose test is owed (remove the entry with the test). */
const PENDING: Readonly<Record<string, string>> = {};

/** Files under `dir` (relative to the repository, with `/`) whose names pass `keep`, sorted. */
function filesUnder(dir: string, keep: (name: string) => boolean): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return filesUnder(path, keep);
    return keep(entry.name) ? [path] : [];
  }).sort();
}

/** The module specifiers a file imports: static, re-exported, and dynamic with a literal. */
function importSpecifiers(text: string): string[] {
  // Comments out, so that a commented-out import does not count (`://` in strings is left alone).
  const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");
  const patterns = [
    /\b(?:import|export)\b[^;'"`]*?\bfrom\s*(["'])([^"']+)\1/g,
    /\bimport\s*(["'])([^"']+)\1/g,
    /\bimport\s*\(\s*(["'`])([^"'`$]+)\1\s*[,)]/g,
  ];
  return patterns.flatMap((pattern) => [...code.matchAll(pattern)].map((m) => m[2]));
}

const sources = ["mod.ts", ...filesUnder("src", (name) => name.endsWith(".ts"))];
const testFiles = filesUnder("tests", (name) => name.endsWith(".test.ts"));

/** Source file (relative path) → the test files that import it. */
const importedBy = new Map<string, string[]>();
for (const file of testFiles) {
  for (const specifier of importSpecifiers(readFileSync(join(ROOT, file), "utf8"))) {
    if (!specifier.startsWith("./") && !specifier.startsWith("../")) continue;
    const target = relative(ROOT, resolve(ROOT, dirname(file), specifier)).replaceAll("\\", "/");
    importedBy.set(target, [...(importedBy.get(target) ?? []), file]);
  }
}

test("the import scanner sees every kind of import, and no commented-out one", () => {
  const text = [
    'import { a } from "./a.ts";',
    'import type {\n  B,\n} from "../b.ts";',
    'import "./c.ts";',
    'export { d } from "./d.ts";',
    'const e = await import("./e.ts");',
    "const f = await import(`./f.ts`);",
    '// import { g } from "./g.ts";',
    '/* import("./h.ts") */',
    'const url = "http://example.com"; import("./i.ts");',
  ].join("\n");
  assert.deepEqual(importSpecifiers(text).sort(), [
    "../b.ts",
    "./a.ts",
    "./c.ts",
    "./d.ts",
    "./e.ts",
    "./f.ts",
    "./i.ts",
  ]);
});

test("the lists name existing source files", () => {
  assert.ok(sources.length > 40, `only ${sources.length} source files found`);
  for (const file of [...Object.keys(ALLOWED), ...Object.keys(PENDING)]) {
    assert.ok(sources.includes(file), `${file} is listed but is no source file`);
  }
});

test("every source file is imported by a test file", () => {
  const missing = sources.filter((file) => !importedBy.has(file) && !(file in ALLOWED) && !(file in PENDING));
  assert.deepEqual(missing, [], "write a focused test that imports each of these (tests/<name>.test.ts)");
});

for (const [file, why] of Object.entries(PENDING)) {
  test(`${file} is imported by a test file`, { todo: why }, () => {
    assert.ok(importedBy.has(file), `no test file imports ${file}`);
  });
}
