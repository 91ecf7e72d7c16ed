/**
 * The examples in the JSDoc are tests: every fenced ```ts block inside an
 * `@example` of a JSDoc comment in mod.ts and src/**\/*.ts is type-checked,
 * run when it is safe to, and its result comments are checked.
 *
 * A block is a module of its own. It may use the names its source file
 * exports without importing them (the test adds that import); anything else
 * it imports: from `"@midi/smtp-server"` (or `"midi-smtp-server"`, with
 * `/cli` for the CLI entry point: `DEFAULT_CONFIG`, `parseCliArgs`, ...),
 * from `"node:..."`, or from a path relative to its source file. Prefer the
 * package: a relative `.ts` path stays in the comments of the npm build's
 * .js files, which tests/npm_package.test.ts refuses.
 *
 * Compiles: all blocks are written to a scratch folder as .mts modules
 * (package imports pointed at mod.ts and src/cli.ts, relative ones at the
 * source file's folder; .mts so that tsx loads them as ES modules) and
 * checked by one `deno check --config deno.json` run, also under Bun and
 * Node (node_modules/.bin/deno).
 *
 * Runs: in this process, by dynamic import, with console output captured,
 * unless the block
 * - has a comment `// not run: <why>` (say why), or its code (comments aside)
 * - calls `.start()` with no `.stop(` (a server left listening),
 * - calls `listen(` (a raw listener),
 * - uses `Deno.`, `Bun.` or `process.` (exit, environment, signals), or
 * - has a string starting with `/`, `./`, `../` or `~/` outside an import
 *   (a file path: it would touch files outside the scratch folder).
 *
 * Result comments: a trailing comment that starts with `=>` or `throws`
 * claims a result; any other comment is prose. The claim belongs to the
 * expression statement on the same line (one line, ending with `;`):
 * - `expr; // => value`: `expr` deep-equals `value` (`deepStrictEqual`);
 *   `value` is an expression: `"a\r\n"`, `{ consumed: 23, done: true }`,
 *   `new Uint8Array([1, 2])`, `undefined`.
 * - `console.log(a, b); // => x, y`: the logged values deep-equal `x`, `y`.
 * - `expr; // throws Name` or `// throws Name: message`: evaluating `expr`
 *   throws (awaited: rejects) an error whose name or class is `Name`, whose
 *   message is exactly `message` when one is given.
 * A wrong claim fails the test naming its source line (`src/x.ts:12: ...`);
 * the checks are in doc_examples_claims.ts. In a block that is not run,
 * claims are only type-checked. A claim that the run never reaches (inside
 * an `if` that did not hold) fails the test.
 *
 * No example is exempt: one that does not type-check, or whose run or claims
 * fail, fails its test (there is no `todo` or skip list).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { format } from "node:util";
import { scratchFolder } from "./scratch.ts";
import { reached, resetClaims } from "./doc_examples_claims.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DENO = join(ROOT, "node_modules", ".bin", "deno");
const CLAIMS_URL = new URL("./doc_examples_claims.ts", import.meta.url).href;

// ---------------------------------------------------------------------------
// finding the examples

/** One fenced block of an `@example`. */
interface Example {
  /** Source file, relative to the repository, with `/`. */
  readonly file: string;
  /** Line of the block's first code line (1-based). */
  readonly line: number;
  /** The code lines, JSDoc ` * ` removed. */
  readonly code: readonly string[];
}

/** `file:line`, the example's name in test output. */
const nameOf = (ex: Example) => `${ex.file}:${ex.line}`;

/** mod.ts and every .ts file under src/, sorted. */
function sourceFiles(): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) return walk(path);
      return entry.name.endsWith(".ts") ? [path] : [];
    });
  return ["mod.ts", ...walk("src").sort()];
}

const CODE_LANGUAGES = new Set(["ts", "typescript"]);

/** The examples of one file's text, and what is malformed about them. */
function extractExamples(file: string, text: string): { examples: Example[]; problems: string[] } {
  const examples: Example[] = [];
  const problems: string[] = [];
  for (const comment of text.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
    const firstLine = text.slice(0, comment.index).split("\n").length;
    const lines = comment[0].split("\n").map((line, i, all) => {
      let body = line;
      if (i === 0) body = body.replace(/^\s*\/\*\*/, "");
      if (i === all.length - 1) body = body.replace(/\s*\*\/$/, "");
      return body.replace(/^\s*\* ?/, "");
    });
    let inExample = false;
    let fence: { line: number; lang: string; code: string[] } | undefined;
    lines.forEach((body, i) => {
      const lineNo = firstLine + i;
      if (fence) {
        if (/^```\s*$/.test(body)) {
          if (CODE_LANGUAGES.has(fence.lang)) examples.push({ file, line: fence.line + 1, code: fence.code });
          fence = undefined;
        } else {
          fence.code.push(body);
        }
        return;
      }
      if (/^@example\b/.test(body)) inExample = true;
      else if (/^@\w/.test(body)) inExample = false;
      else if (inExample && body.startsWith("```")) fence = { line: lineNo, lang: body.slice(3).trim(), code: [] };
    });
    if (fence) problems.push(`${file}:${fence.line}: the example's code fence is not closed`);
  }
  return { examples, problems };
}

// ---------------------------------------------------------------------------
// the rules

/** Why the example is not run, or `undefined` when it runs (see the header). */
function notRunReason(code: readonly string[]): string | undefined {
  const marker = code.map((line) => /\/\/ not run: (.+)$/.exec(line)).find((m) => m);
  if (marker) return marker[1].trim();
  const lines = code.map((line) => line.replace(/(^|\s)\/\/.*$/, ""));
  const text = lines.join("\n");
  if (/\.start\(\)/.test(text) && !/\.stop\(/.test(text)) return "starts a server and leaves it running";
  if (/\blisten\(/.test(text)) return "listens on a socket";
  if (/\b(?:Deno|Bun|process)\./.test(text)) return "uses the runtime's process globals";
  const paths = lines.filter((line) => !/^\s*import\b|\bfrom\s*["']/.test(line)).join("\n");
  if (/["'`](?:\/|\.\.?\/|~\/)/.test(paths)) return "names a file path (files outside the scratch folder)";
  return undefined;
}

const IDENT = /[A-Za-z_$][\w$]*/;
const LOG_CLAIM = /^(\s*)console\.log\((.*)\);\s*\/\/\s*=>\s*(.+?)\s*$/;
const VALUE_CLAIM = /^(\s*)(.+?);\s*\/\/\s*=>\s*(.+?)\s*$/;
const THROWS_CLAIM = /^(\s*)(.+?);\s*\/\/\s*throws\s+([A-Za-z_$][\w$]*)(?::\s*(.*?))?\s*$/;
const NOT_AN_EXPRESSION = /^(?:const|let|var|return|throw|import|export|if|for|while|function|class)\b/;

/** The package's import names (deno.json `exports`, as JSR and npm name them) mapped to file URLs. */
function packageImports(): Map<string, string> {
  const config = JSON.parse(readFileSync(join(ROOT, "deno.json"), "utf8")) as { exports: Record<string, string> };
  const map = new Map<string, string>();
  for (const [subpath, target] of Object.entries(config.exports)) {
    const url = pathToFileURL(join(ROOT, target)).href;
    for (const name of ["@midi/smtp-server", "midi-smtp-server"]) map.set(name + subpath.slice(1), url);
  }
  return map;
}
const PACKAGE_IMPORTS = packageImports();

/** The names a module exports, by regular expressions over its text (`export *` is not followed). */
function exportedNames(text: string): { values: Set<string>; types: Set<string> } {
  const values = new Set<string>();
  const types = new Set<string>();
  const declarations =
    /^export\s+(?:declare\s+)?(?:(async\s+function\*?|function\*?|abstract\s+class|class|const\s+enum|enum|const|let|var)|(interface|type))\s+([A-Za-z_$][\w$]*)/gm;
  for (const m of text.matchAll(declarations)) (m[2] ? types : values).add(m[3]);
  for (const m of text.matchAll(/^export\s+(type\s+)?\{([^}]*)\}/gm)) {
    for (const item of m[2].split(",").map((s) => s.trim()).filter(Boolean)) {
      const typeOnly = Boolean(m[1]) || item.startsWith("type ");
      const name = item.replace(/^type\s+/, "").split(/\s+as\s+/).pop()!;
      (typeOnly ? types : values).add(name);
    }
  }
  return { values, types };
}

/** Names the example binds itself: its imports and declarations. */
function boundNames(code: string): Set<string> {
  const names = new Set<string>();
  for (const m of code.matchAll(/\bimport\s+(?:type\s+)?([\s\S]*?)\s+from\s*["'][^"']+["']/g)) {
    for (const part of m[1].replace(/[{}]/g, ",").split(",")) {
      const name = part.trim().replace(/^type\s+/, "").split(/\s+as\s+/).pop()!.replace(/^\*\s*/, "");
      if (IDENT.test(name)) names.add(name);
    }
  }
  for (const m of code.matchAll(/\b(?:const|let|var|function|class|interface|type|enum)\s+([A-Za-z_$][\w$]*)/g)) {
    names.add(m[1]);
  }
  for (const m of code.matchAll(/\b(?:const|let|var)\s*\{([^}]*)\}/g)) {
    for (const part of m[1].split(",")) names.add(part.split(":").pop()!.trim());
  }
  return names;
}

/** An example made into a module. */
interface ExampleModule {
  /** The module text: one header line (the added imports), then the example's lines. */
  readonly text: string;
  /** Source locations of its claims. */
  readonly claims: readonly string[];
  /** What breaks the convention (unknown imports, claims on statements that are no expression). */
  readonly problems: readonly string[];
}

/** Module line 2 is the example's first line. */
const HEADER_LINES = 1;

/** Rewrites an example as a module: imports resolved, the source file's names imported, claims made into checks. */
function exampleModule(ex: Example): ExampleModule {
  const source = join(ROOT, ex.file);
  const claims: string[] = [];
  const problems: string[] = [];
  const body = ex.code.map((line, i) => {
    const where = `${ex.file}:${ex.line + i}`;
    const specifiers = line.replace(
      /(\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)(["'])([^"']+)\2/g,
      (all, lead: string, quote: string, spec: string) => {
        if (spec.startsWith("./") || spec.startsWith("../")) {
          return `${lead}${quote}${pathToFileURL(resolve(dirname(source), spec)).href}${quote}`;
        }
        const mapped = PACKAGE_IMPORTS.get(spec);
        if (mapped) return `${lead}${quote}${mapped}${quote}`;
        if (!/^(?:node|npm|jsr):/.test(spec)) {
          problems.push(`${where}: import "${spec}": use "@midi/smtp-server", a relative path or "node:..."`);
        }
        return all;
      },
    );
    const log = LOG_CLAIM.exec(specifiers);
    const value = VALUE_CLAIM.exec(specifiers);
    const throws = THROWS_CLAIM.exec(specifiers);
    const found = log ?? value ?? throws;
    if (!found) return specifiers;
    if (!log && NOT_AN_EXPRESSION.test(found[2])) {
      problems.push(`${where}: a result comment must follow an expression statement, not "${found[2].split(" ")[0]}"`);
      return specifiers;
    }
    claims.push(where);
    const at = JSON.stringify(where);
    if (log) return `${log[1]}__claimLog(${at}, [${log[2]}], [${log[3]}]);`;
    if (value) return `${value[1]}__claim(${at}, (${value[2]}), (${value[3]}));`;
    const [, indent, expr, name, message] = throws!;
    const messageArg = message ? `, ${JSON.stringify(message)}` : "";
    return /\bawait\b/.test(expr)
      ? `${indent}await __claimThrows(${at}, async () => (${expr}), ${JSON.stringify(name)}${messageArg});`
      : `${indent}__claimThrows(${at}, () => (${expr}), ${JSON.stringify(name)}${messageArg});`;
  });
  const code = ex.code.join("\n");
  const bound = boundNames(code);
  const { values, types } = exportedNames(readFileSync(source, "utf8"));
  const used = (name: string) =>
    !bound.has(name) && new RegExp(`(?<![\\w$.])${name.replace(/\$/g, "\\$")}\\b`).test(code);
  const imports = [
    ...[...values].filter(used),
    ...[...types].filter((name) => !values.has(name) && used(name)).map((name) => `type ${name}`),
  ];
  const header = [
    `import { claim as __claim, claimLog as __claimLog, claimThrows as __claimThrows } from "${CLAIMS_URL}";`,
    ...(imports.length > 0 ? [`import { ${imports.join(", ")} } from "${pathToFileURL(source).href}";`] : []),
  ].join(" ");
  return { text: [header, ...body, ""].join("\n"), claims, problems };
}

// ---------------------------------------------------------------------------
// type-checking and running

/** Runs a command; resolves with its exit code and its output (stdout, then stderr). */
function run(command: string, args: string[], timeoutMs: number): Promise<{ code: number; output: string }> {
  return new Promise((done) => {
    execFile(
      command,
      args,
      {
        cwd: ROOT,
        timeout: timeoutMs,
        maxBuffer: 64 * 1024 * 1024,
        env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        done({ code, output: `${stdout}${stderr}${err && !stderr ? String(err) : ""}` });
      },
    );
  });
}

/** What `deno check` said: diagnostics per scratch file, and anything it could not place. */
interface CheckResult {
  readonly byFile: Map<string, string[]>;
  readonly unplaced: string;
}

/**
 * Type-checks the modules in one `deno check` run. A module that stops the
 * whole run (a syntax error ends it before type-checking) is set aside with
 * its error and the run is repeated without it.
 */
async function typeCheck(paths: string[]): Promise<CheckResult> {
  const byFile = new Map<string, string[]>();
  let left = paths;
  for (let attempt = 0; attempt < 10 && left.length > 0; attempt++) {
    const config = join(ROOT, "deno.json");
    const { code, output } = await run(DENO, ["check", "--quiet", "--no-lock", "--config", config, ...left], 120_000);
    if (code === 0) return { byFile, unplaced: "" };
    const inRun = new Set(left);
    let placed = 0;
    let unplaced = "";
    for (const block of output.replace(/\r/g, "").split(/\n\s*\n/)) {
      const at = /\bat (file:\/\/\S+?):\d+:\d+/.exec(block);
      const path = at ? fileURLToPath(at[1]) : undefined;
      if (path && inRun.has(path)) {
        byFile.set(path, [...(byFile.get(path) ?? []), block.trim()]);
        placed++;
      } else if (/\bat file:\/\/|\[ERROR\]|^error:/m.test(block) && !/^error: Type checking failed\.$/.test(block)) {
        unplaced += block.trim() + "\n\n";
      }
    }
    const typeChecked = /Found \d+ errors?\.|Type checking failed/.test(output);
    if (typeChecked || placed === 0) return { byFile, unplaced: placed === 0 && !unplaced ? output : unplaced };
    left = left.filter((path) => !byFile.has(path));
  }
  return { byFile, unplaced: "" };
}

/** Rejects after `ms`. */
function timeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) =>
      timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms)
    ),
  ]).finally(() => clearTimeout(timer));
}

const CAPTURED = ["log", "info", "warn", "error", "debug"] as const;

/** Imports the module with console output captured; checks its claims were all reached; returns what it printed. */
async function runModule(path: string, claims: readonly string[], what: string): Promise<string> {
  resetClaims();
  const printed: string[] = [];
  const saved = CAPTURED.map((method) => console[method]);
  for (const method of CAPTURED) console[method] = (...args: unknown[]) => printed.push(format(...args));
  try {
    await timeout(import(pathToFileURL(path).href), 15_000, what);
  } catch (err) {
    if (err instanceof Error && printed.length > 0) err.message += `\n--- the example printed:\n${printed.join("\n")}`;
    throw err;
  } finally {
    CAPTURED.forEach((method, i) => console[method] = saved[i]);
  }
  const missed = claims.filter((where) => !reached.has(where));
  assert.deepEqual(missed, [], `${what}: claims never evaluated (the code before them took another path)`);
  return printed.join("\n");
}

/** Points `file:///scratch/N.ts:L:C` in deno's output at the example's source line instead. */
function inSource(text: string, path: string, ex: Example): string {
  const url = pathToFileURL(path).href;
  return text.replaceAll(
    new RegExp(`${url.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:(\\d+):(\\d+)`, "g"),
    (_, line: string, column: string) => `${ex.file}:${ex.line + Number(line) - 1 - HEADER_LINES}:${column}`,
  );
}

// ---------------------------------------------------------------------------
// the tests

const scratch = scratchFolder("doc-examples");
const found = sourceFiles().map((file) => extractExamples(file, readFileSync(join(ROOT, file), "utf8")));
const examples = found.flatMap((f) => f.examples);
const modules = examples.map((ex, i) => {
  const module = exampleModule(ex);
  const path = scratch.path(`${String(i).padStart(3, "0")}_${ex.file.replace(/[/.]/g, "_")}_${ex.line}.mts`);
  writeFileSync(path, module.text);
  return { ex, module, path };
});
// Started now, awaited by the tests, so that it runs while the examples do.
const checked = typeCheck(modules.filter((m) => m.module.problems.length === 0).map((m) => m.path));
// A test that never awaits it must not leave a rejection unhandled.
checked.catch(() => {});

test("the examples are found, with closed fences", () => {
  assert.deepEqual(found.flatMap((f) => f.problems), []);
  assert.ok(examples.length >= 30, `only ${examples.length} examples found`);
  assert.ok(examples.some((ex) => ex.file === "src/session/data_reader.ts"), "the DataReader example is missing");
});

test("deno check reports only on the examples", async () => {
  const { unplaced } = await checked;
  assert.equal(unplaced, "", "deno check failed outside the examples");
});

for (const { ex, module, path } of modules) {
  const reason = notRunReason(ex.code);
  const name = `${nameOf(ex)}${reason ? ` (type-checked only: ${reason})` : ""}`;
  test(name, async () => {
    assert.deepEqual(module.problems, [], "the example breaks the convention in this file's header");
    let failure: unknown;
    if (!reason) {
      await runModule(path, module.claims, nameOf(ex)).catch((err) => failure = err);
    }
    const diagnostics = inSource(((await checked).byFile.get(path) ?? []).join("\n\n"), path, ex);
    if (diagnostics && failure) {
      assert.fail(`the example does not type-check:\n${diagnostics}\n\nand running it failed:\n${failure}`);
    }
    assert.equal(diagnostics, "", "the example does not type-check");
    if (failure) throw failure;
  });
}

// The rules themselves, on made-up examples.

/** Writes a made-up example into the scratch folder as a module, for the self-tests. */
function madeUp(name: string, code: string[]): { path: string; module: ExampleModule } {
  const module = exampleModule({ file: "src/bytes.ts", line: 1, code });
  const path = scratch.path(`made_up_${name}.mts`);
  writeFileSync(path, module.text);
  return { path, module };
}

test("a wrong claim fails the example, naming its line", async () => {
  const { path, module } = madeUp("wrong", ["const r = { consumed: 23 };", "r; // => { consumed: 24 }"]);
  await assert.rejects(runModule(path, module.claims, "wrong"), /src\/bytes\.ts:2: /);
});

test("claims: values, logged values, throws; a claim never reached fails", async () => {
  const ok = madeUp("ok", [
    "[1, 2].map((n) => n * 2); // => [2, 4]",
    'console.log("a", 1); // => "a", 1',
    'JSON.parse("{"); // throws SyntaxError',
    'await Promise.reject(new RangeError("r")); // throws RangeError: r',
  ]);
  assert.equal(ok.module.claims.length, 4);
  assert.equal(await runModule(ok.path, ok.module.claims, "ok"), "a 1");
  const skipped = madeUp("skipped", ["if (Math.random() > 2) {", "  1; // => 1", "}"]);
  await assert.rejects(runModule(skipped.path, skipped.module.claims, "skipped"), /claims never evaluated/);
  const notThrown = madeUp("not_thrown", ["Number(1); // throws TypeError"]);
  await assert.rejects(runModule(notThrown.path, notThrown.module.claims, "not thrown"), /claims it throws TypeError/);
});

test("which examples run", () => {
  assert.equal(notRunReason(["const x = 1; // not run: needs a mail server"]), "needs a mail server");
  assert.equal(notRunReason(["await server.start();"]), "starts a server and leaves it running");
  assert.equal(notRunReason(["await server.start();", "await server.stop();"]), undefined);
  assert.equal(notRunReason(['mechanism.start("mx.example.com");']), undefined);
  assert.match(notRunReason(['new Maildir("./mail");'])!, /file path/);
  assert.equal(notRunReason(['import { x } from "./x.ts";', "x; // see ./x.ts"]), undefined);
  assert.match(notRunReason(["process.exit(1);"])!, /process globals/);
});

test("imports: package names, relative paths, the source file's own exports", () => {
  const { text, problems } = exampleModule({
    file: "src/session/data_phase.ts",
    line: 1,
    code: [
      'import { MidiSmtpServer } from "@midi/smtp-server";',
      'import { x } from "./data_reader.ts";',
      "DataPhase;",
    ],
  });
  assert.deepEqual(problems, []);
  const lines = text.split("\n");
  assert.match(lines[0], /import \{ DataPhase \} from "file:\/\/.*\/src\/session\/data_phase\.ts";$/);
  assert.equal(lines[1], `import { MidiSmtpServer } from "${pathToFileURL(join(ROOT, "mod.ts")).href}";`);
  assert.equal(lines[2], `import { x } from "${pathToFileURL(join(ROOT, "src", "session", "data_reader.ts")).href}";`);
  assert.deepEqual(
    exampleModule({ file: "mod.ts", line: 1, code: ['import x from "nodemailer";'] }).problems,
    ['mod.ts:1: import "nodemailer": use "@midi/smtp-server", a relative path or "node:..."'],
  );
});

// Last, and not left to scratchFolder's `after` hook alone: the removal is checked.
test("the scratch folder is removed", () => {
  scratch.remove();
  assert.ok(!existsSync(scratch.dir));
});
