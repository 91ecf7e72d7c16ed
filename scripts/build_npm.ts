/**
 * Builds the npm package from the same sources Deno and JSR use: compiles
 * `mod.ts` and `src/**` with the TypeScript compiler in node_modules (the
 * native TypeScript 7 `tsc`) twice, to ESM in `esm/` and to CommonJS in
 * `cjs/` (each `.js` + `.d.ts`), and writes package.json, README.md and
 * LICENSE next to them.
 *
 * Both formats: `import` gets `esm/`, `require()` gets `cjs/` (Node 20 before
 * 20.19 cannot `require()` ES modules), each with its own declarations;
 * `cjs/package.json` says `"type": "commonjs"`, so Node and TypeScript read
 * the `.js` and `.d.ts` files there as CommonJS. The package's entry points
 * are deno.json's `exports` (`.`, `./cli`, `./testing`), so JSR and npm offer
 * the same ones.
 *
 * CommonJS has no `import.meta` and no top-level `await`. The CommonJS pass
 * compiles a copy of the sources in which {@link CJS_REWRITES} replaces the
 * few lines that use them (today only the dev server's "am I the program?"
 * line in src/cli.ts); the build fails, naming the file, if a rewrite no
 * longer matches or another file starts using them.
 *
 *   deno run -A scripts/build_npm.ts [--out DIR] [--quiet]      (deno task build:npm)
 *   node --import tsx scripts/build_npm.ts [--out DIR] [--quiet]
 *
 * DIR defaults to ./npm and is emptied first. `--quiet` prints nothing on
 * success (`npm start` builds first, and its user wants to see the server,
 * not the build); warnings and errors are printed all the same. Only node: APIs are used, so the
 * script runs the same under Deno, Node (with tsx) and Bun.
 *
 * The compiler options live here, not in a tsconfig file at the root: a
 * `tsconfig.json` there would be read by Deno (its `lib`/`types` break `deno
 * check`), and a `tsconfig.build.json` would be one more file to keep in step
 * with `--out`. The script writes a throw-away config with absolute paths into
 * the output directory, runs `tsc -p` on it and deletes it afterwards, so it
 * never reaches the package.
 *
 * npm dependencies: the emitted code may only import `node:` built-ins and the
 * packages listed in an optional `"npmDependencies": { "name": "^1.2.3" }`
 * mapping in deno.json; the build fails on any other bare import.
 */
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));
const PACKAGE_NAME = "midi-smtp-server";
const DESCRIPTION =
  "An embeddable SMTP server for Node.js, Deno and Bun: RFC 5321 with PIPELINING, SIZE, 8BITMIME, SMTPUTF8 " +
  "and ENHANCEDSTATUSCODES, every step handed to your hooks.";
const KEYWORDS = [
  "smtp",
  "smtpd",
  "smtp-server",
  "lmtp",
  "esmtp",
  "mail",
  "email",
  "server",
  "rfc5321",
  "deno",
  "bun",
];
/**
 * The project's home. No public repository is decided yet: this placeholder is
 * used for `repository`, `homepage` and `bugs` alike, so one edit here moves all three.
 */
const PROJECT_URL = "https://github.com/midi-smtp-server/midi-smtp-server-ts";
/** Where the CLI lands, relative to the package root (`bin`; the `./cli` export has both formats). */
const CLI_SOURCE = "src/cli.ts";
const CLI_JS = "esm/src/cli.js";
const SHEBANG = "#!/usr/bin/env node\n";
/** The two output formats: the directory each is compiled into. */
const FORMATS = ["esm", "cjs"] as const;
type Format = typeof FORMATS[number];
/** Where the CommonJS pass's rewritten copy of the sources lives while it compiles (inside the output directory). */
const CJS_STAGING = "cjs-src";
/** What the build writes at the top of the output directory; with `npm pack` tarballs, all it agrees to delete. */
const BUILD_ENTRIES = new Set([
  "package.json",
  ...FORMATS,
  CJS_STAGING,
  "README.md",
  "LICENSE",
  "tsconfig.build.json",
  ".DS_Store",
]);

/**
 * Source lines CommonJS cannot have, and what the CommonJS build compiles
 * instead. Each must match exactly once in its file (when the file exists).
 */
const CJS_REWRITES: ReadonlyArray<{ file: string; pattern: RegExp; replacement: string }> = [
  {
    // The program check: CommonJS knows its main module as require.main, and
    // has no top-level await (a rejection still ends the process, as in ESM).
    file: CLI_SOURCE,
    pattern: /^if \(isEntryPoint\(import\.meta\)\) await (runCli\(programArgs\(\)\));$/m,
    replacement: "if (require.main === module) void $1;",
  },
];

class BuildError extends Error {}

function fail(message: string): never {
  throw new BuildError(message);
}

const USAGE = "Usage: build_npm.ts [--out DIR] [--quiet]   (default DIR: ./npm, emptied first)";

function parseArgs(argv: string[]): { outDir: string; quiet: boolean } {
  let outDir = join(ROOT, "npm");
  let quiet = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--out") {
      const value = argv[++i];
      if (!value) fail("--out needs a directory");
      outDir = resolve(value);
    } else if (arg.startsWith("--out=")) {
      outDir = resolve(arg.slice("--out=".length));
    } else if (arg === "--quiet" || arg === "-q") {
      quiet = true;
    } else if (arg === "--help" || arg === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else {
      fail(`unknown argument ${arg} (${USAGE})`);
    }
  }
  // The output directory is deleted first: never let that be the project or one of its parents.
  if (outDir === ROOT || ROOT.startsWith(outDir.endsWith(sep) ? outDir : outDir + sep)) {
    fail(`refusing to use ${outDir} as output directory: it holds the project`);
  }
  // ...nor anything else that is not a previous build (e.g. a mistyped `--out ~`).
  if (existsSync(outDir)) {
    const foreign = readdirSync(outDir).filter((name) => !BUILD_ENTRIES.has(name) && !name.endsWith(".tgz"));
    if (foreign.length > 0) {
      fail(`refusing to empty ${outDir}: it holds ${foreign.slice(0, 5).join(", ")}, which this build never writes`);
    }
  }
  return { outDir, quiet };
}

function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
}

/** Every file below `dir`, as absolute paths. */
function walk(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(path));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

/** Every `.ts` source of the package below `ROOT` (mod.ts and src/, tests left out), as paths relative to ROOT. */
function packageSources(): string[] {
  const sources = walk(join(ROOT, "src"))
    .filter((path) => path.endsWith(".ts") && !path.endsWith(".test.ts") && !path.endsWith("_test.ts"))
    .map((path) => relative(ROOT, path));
  return ["mod.ts", ...sources].sort();
}

/** Code without comments: enough to tell `import.meta` in code from `import.meta` in a doc comment. */
function withoutComments(code: string): string {
  return code.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

/**
 * A copy of the sources for the CommonJS pass, with {@link CJS_REWRITES}
 * applied and a link to the project's node_modules (for any npm dependency).
 * Returns its directory.
 */
function stageCommonJsSources(outDir: string): string {
  const staging = join(outDir, CJS_STAGING);
  mkdirSync(staging, { recursive: true });
  const pending = new Map(CJS_REWRITES.map((rewrite) => [rewrite.file, rewrite]));
  for (const file of packageSources()) {
    let code = readFileSync(join(ROOT, file), "utf8");
    const rewrite = pending.get(file.split(sep).join("/"));
    if (rewrite) {
      pending.delete(rewrite.file);
      const matches = code.match(new RegExp(rewrite.pattern.source, rewrite.pattern.flags + "g"))?.length ?? 0;
      if (matches !== 1) {
        fail(
          `${rewrite.file}: the CommonJS rewrite ${rewrite.pattern} matches ${matches} times, not once; ` +
            `update CJS_REWRITES in scripts/build_npm.ts to the file's new form`,
        );
      }
      code = code.replace(rewrite.pattern, rewrite.replacement);
    }
    if (/\bimport\.meta\b/.test(withoutComments(code))) {
      fail(
        `${file} uses import.meta, which CommonJS does not have: avoid it in the library, ` +
          `or add a rewrite for it to CJS_REWRITES in scripts/build_npm.ts`,
      );
    }
    mkdirSync(dirname(join(staging, file)), { recursive: true });
    writeFileSync(join(staging, file), code);
  }
  for (const file of pending.keys()) {
    if (existsSync(join(ROOT, file))) fail(`${file} exists but was not staged for the CommonJS build`);
  }
  symlinkSync(
    join(ROOT, "node_modules"),
    join(staging, "node_modules"),
    process.platform === "win32" ? "junction" : "dir",
  );
  return staging;
}

/**
 * Runs the TypeScript compiler from node_modules on the sources under
 * `sourceRoot` into `outDir/<format>`; throws with its output when it
 * reports any error.
 *
 * ESM: `module: nodenext` (the project's package.json says `"type":
 * "module"`). CommonJS: `module: commonjs`, which also turns the library's
 * dynamic `import()` of its own files and of node: modules into `require()`,
 * so the CommonJS build never needs the ESM loader (test runners such as jest
 * run CommonJS code where `import()` is not available).
 */
function compile(outDir: string, format: Format, sourceRoot: string): void {
  const windows = process.platform === "win32";
  const tsc = join(ROOT, "node_modules", ".bin", windows ? "tsc.cmd" : "tsc");
  if (!existsSync(tsc)) fail(`${tsc} not found: run \`npm install\` first`);
  const config = {
    compilerOptions: {
      target: "ES2022",
      lib: ["ES2022"],
      module: format === "esm" ? "nodenext" : "commonjs",
      moduleResolution: format === "esm" ? "nodenext" : "bundler",
      esModuleInterop: true,
      rewriteRelativeImportExtensions: true,
      allowImportingTsExtensions: false,
      verbatimModuleSyntax: false,
      isolatedModules: true,
      declaration: true,
      strict: true,
      noEmitOnError: true,
      skipLibCheck: true,
      // Deno/Bun APIs are reached through globalThis with local types; the rest is node:*.
      types: ["node"],
      typeRoots: [join(ROOT, "node_modules", "@types")],
      rootDir: sourceRoot,
      outDir: join(outDir, format),
      newLine: "lf",
      removeComments: false,
    },
    files: [join(sourceRoot, "mod.ts")],
    include: [join(sourceRoot, "src", "**", "*.ts")],
    exclude: [join(sourceRoot, "src", "**", "*.test.ts"), join(sourceRoot, "src", "**", "*_test.ts")],
  };
  const configPath = join(outDir, "tsconfig.build.json");
  writeFileSync(configPath, JSON.stringify(config, null, 2) + "\n");
  try {
    const result = spawnSync(tsc, ["-p", configPath, "--pretty", "false"], {
      cwd: ROOT,
      encoding: "utf8",
      shell: windows,
    });
    const output = `${result.stdout ?? ""}${result.stderr ?? ""}`.trim();
    if (result.error) fail(`could not run ${tsc}: ${result.error.message}`);
    if (result.status !== 0 || /error TS\d+/.test(output)) {
      const hint = format === "cjs" && /error TS(1309|1343|1378|1470)\b/.test(output)
        ? "\n(top-level await or import.meta in a file the CommonJS build compiles: see CJS_REWRITES in " +
          "scripts/build_npm.ts)"
        : "";
      fail(`tsc (${format}) failed (exit ${result.status ?? result.signal}):\n${output}${hint}`);
    }
    if (output) console.log(output);
  } finally {
    rmSync(configPath, { force: true });
  }
}

/** Relative module specifiers (`from "./x.ts"`, `import("../y.ts")`) in emitted code and declarations. */
const RELATIVE_TS_SPECIFIER = /((?:\bfrom|\bimport|\bexport)\s*\(?\s*)(["'])(\.{1,2}\/[^"'\n]*?)\.ts\2/g;

/** Rewrites `.ts` module paths to `.js` in the `.d.ts` files (tsc keeps them as written); returns how many. */
function rewriteDeclarations(formatDir: string): { files: number; rewritten: number } {
  let files = 0;
  let rewritten = 0;
  for (const path of walk(formatDir)) {
    if (!path.endsWith(".d.ts")) continue;
    files++;
    const before = readFileSync(path, "utf8");
    const after = before.replace(RELATIVE_TS_SPECIFIER, (_m, lead: string, quote: string, stem: string) => {
      rewritten++;
      return `${lead}${quote}${stem}.js${quote}`;
    });
    if (after !== before) writeFileSync(path, after);
  }
  return { files, rewritten };
}

/** Bare imports of the emitted JavaScript that are neither node: built-ins nor declared dependencies. */
function checkImports(formatDir: string, dependencies: Record<string, string>): void {
  const esmDir = formatDir;
  const problems: string[] = [];
  const specifier = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|\bimport\s+)(["'])([^"'\n]+)\1/g;
  for (const path of walk(formatDir)) {
    if (!path.endsWith(".js") && !path.endsWith(".d.ts")) continue;
    // Comments hold examples (`import ... from "@midi/smtp-server"`): only code counts.
    const text = readFileSync(path, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
    for (const match of text.matchAll(specifier)) {
      const spec = match[2];
      if (spec.startsWith("node:")) continue;
      if (spec.startsWith("./") || spec.startsWith("../")) {
        if (spec.endsWith(".ts") && !spec.endsWith(".d.ts")) {
          problems.push(`${relative(esmDir, path)}: still imports ${spec}`);
        }
        continue;
      }
      const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0];
      if (spec.startsWith("npm:") || spec.startsWith("jsr:") || spec.includes("://")) {
        problems.push(`${relative(esmDir, path)}: imports ${spec}, which Node cannot load`);
      } else if (!(name in dependencies)) {
        problems.push(`${relative(esmDir, path)}: imports ${spec}, not listed in deno.json "npmDependencies"`);
      }
    }
  }
  if (problems.length > 0) fail(`the emitted package has imports it cannot satisfy:\n  ${problems.join("\n  ")}`);
}

/** One entry point of the package: its subpath (`.`, `./cli`) and its source relative to ROOT (`src/cli.ts`). */
interface Entry {
  subpath: string;
  source: string;
}

/** deno.json's `exports` (a string for `.` alone, or a map), as entries; sources must be `.ts` files. */
function entryPoints(denoJson: Record<string, unknown>): Entry[] {
  const exportsField = denoJson.exports;
  const map = typeof exportsField === "string" ? { ".": exportsField } : exportsField;
  if (!map || typeof map !== "object" || Array.isArray(map)) fail('deno.json has no "exports"');
  const entries: Entry[] = [];
  for (const [subpath, target] of Object.entries(map as Record<string, unknown>)) {
    if (typeof target !== "string" || !/^\.\/.+\.ts$/.test(target)) {
      fail(`deno.json "exports"["${subpath}"] must be a "./path.ts" string, got ${JSON.stringify(target)}`);
    }
    if (subpath !== "." && !/^\.\/[\w.-]+(\/[\w.-]+)*$/.test(subpath)) {
      fail(`deno.json "exports" has a subpath npm cannot use: ${subpath}`);
    }
    entries.push({ subpath, source: target.slice(2) });
  }
  if (!entries.some((entry) => entry.subpath === ".")) fail('deno.json "exports" has no "." entry');
  return entries;
}

/** `src/cli.ts` -> `./esm/src/cli.js` (or `.d.ts`). */
function emitted(source: string, format: Format, extension: ".js" | ".d.ts"): string {
  return `./${format}/${source.slice(0, -".ts".length)}${extension}`;
}

/** The exports map: per entry an `import` and a `require` branch, each with its own types first. */
function exportsMap(entries: Entry[]): Record<string, unknown> {
  const map: Record<string, unknown> = {};
  for (const { subpath, source } of entries) {
    map[subpath] = {
      import: { types: emitted(source, "esm", ".d.ts"), default: emitted(source, "esm", ".js") },
      require: { types: emitted(source, "cjs", ".d.ts"), default: emitted(source, "cjs", ".js") },
    };
  }
  map["./package.json"] = "./package.json";
  return map;
}

function build(outDir: string, quiet = false): void {
  const started = Date.now();
  const denoJson = readJson(join(ROOT, "deno.json"));
  const version = denoJson.version;
  if (typeof version !== "string" || !/^\d+\.\d+\.\d+/.test(version)) fail('deno.json has no valid "version"');
  const npmDependencies = (denoJson.npmDependencies ?? {}) as Record<string, unknown>;
  if (typeof npmDependencies !== "object" || Array.isArray(npmDependencies)) {
    fail('deno.json "npmDependencies" must map package names to version ranges');
  }
  const dependencies: Record<string, string> = {};
  for (const [name, range] of Object.entries(npmDependencies)) {
    if (typeof range !== "string") fail(`deno.json "npmDependencies".${name} must be a version range string`);
    dependencies[name] = range;
  }
  // An entry whose source is not written yet is left out (with a warning), as the CLI always was.
  const declared = entryPoints(denoJson);
  const entries = declared.filter((entry) => existsSync(join(ROOT, entry.source)));
  const missingEntries = declared.filter((entry) => !entries.includes(entry));
  if (!entries.some((entry) => entry.subpath === ".")) fail(`the "." entry's source does not exist`);

  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });

  compile(outDir, "esm", ROOT);
  const staging = stageCommonJsSources(outDir);
  try {
    compile(outDir, "cjs", staging);
  } finally {
    // The link first, on its own: removing it must never reach into the project's node_modules.
    unlinkSync(join(staging, "node_modules"));
    rmSync(staging, { recursive: true, force: true });
  }
  writeFileSync(join(outDir, "cjs", "package.json"), JSON.stringify({ type: "commonjs" }, null, 2) + "\n");

  const declarations = { files: 0, rewritten: 0 };
  for (const format of FORMATS) {
    for (const { source } of entries) {
      for (const extension of [".js", ".d.ts"] as const) {
        const file = emitted(source, format, extension);
        if (!existsSync(join(outDir, file))) fail(`tsc reported no error but ${file} is missing`);
      }
    }
    const counts = rewriteDeclarations(join(outDir, format));
    declarations.files += counts.files;
    declarations.rewritten += counts.rewritten;
    checkImports(join(outDir, format), dependencies);
  }

  // The CLI: executable with a shebang (tsc keeps one written in the source; add it otherwise).
  const hasCli = existsSync(join(ROOT, CLI_SOURCE));
  const cliPath = join(outDir, CLI_JS);
  if (hasCli) {
    if (!existsSync(cliPath)) fail(`${CLI_SOURCE} exists but ${CLI_JS} was not emitted`);
    const code = readFileSync(cliPath, "utf8");
    if (!code.startsWith("#!")) writeFileSync(cliPath, SHEBANG + code);
    else if (!code.startsWith(SHEBANG)) writeFileSync(cliPath, SHEBANG + code.slice(code.indexOf("\n") + 1));
    chmodSync(cliPath, 0o755);
  }

  const packageJson = {
    name: PACKAGE_NAME,
    version,
    description: DESCRIPTION,
    keywords: KEYWORDS,
    homepage: `${PROJECT_URL}#readme`,
    bugs: { url: `${PROJECT_URL}/issues` },
    repository: { type: "git", url: `git+${PROJECT_URL}.git` },
    license: typeof denoJson.license === "string" ? denoJson.license : "MIT",
    type: "module",
    // For tools that predate "exports": the CommonJS build, which every Node can load.
    main: emitted("mod.ts", "cjs", ".js"),
    types: emitted("mod.ts", "cjs", ".d.ts"),
    exports: exportsMap(entries),
    ...(hasCli ? { bin: { [PACKAGE_NAME]: "./" + CLI_JS } } : {}),
    files: [...FORMATS.map((format) => `${format}/`), "README.md", "LICENSE"],
    // No module does anything when imported, except the CLI, which runs when it is the program.
    sideEffects: hasCli ? [`./${CLI_JS}`, emitted(CLI_SOURCE, "cjs", ".js")] : false,
    engines: { node: ">=20.10" },
    ...(Object.keys(dependencies).length > 0 ? { dependencies } : {}),
  };
  writeFileSync(join(outDir, "package.json"), JSON.stringify(packageJson, null, 2) + "\n");

  const copied: string[] = [];
  const missing: string[] = [];
  for (const file of ["README.md", "LICENSE"]) {
    if (existsSync(join(ROOT, file))) {
      copyFileSync(join(ROOT, file), join(outDir, file));
      copied.push(file);
    } else {
      missing.push(file);
    }
  }

  // The summary is the only output of a build that went well; warnings are never silenced.
  const info = (line: string) => {
    if (!quiet) console.log(line);
  };
  const fromCwd = relative(process.cwd(), outDir);
  const shown = fromCwd === "" ? "." : fromCwd.startsWith("..") ? outDir : fromCwd;
  info(`built ${PACKAGE_NAME}@${version} in ${shown}/ (${Date.now() - started} ms)`);
  for (const format of FORMATS) {
    const files = walk(join(outDir, format));
    const bytes = files.reduce((sum, path) => sum + statSync(path).size, 0);
    const js = files.filter((p) => p.endsWith(".js")).length;
    const dts = files.filter((p) => p.endsWith(".d.ts")).length;
    info(`  ${format}/: ${js} .js + ${dts} .d.ts, ${(bytes / 1024).toFixed(1)} KiB`);
  }
  info(`  ${declarations.rewritten} .ts import paths rewritten to .js in ${declarations.files} .d.ts files`);
  info(`  exports: ${entries.map((entry) => entry.subpath).join(", ")} (import and require)`);
  info(`  dependencies: ${Object.keys(dependencies).length ? JSON.stringify(dependencies) : "none"}`);
  info(`  copied: ${copied.join(", ") || "nothing"}`);
  if (missing.length) console.warn(`  warning: not found at the project root, not copied: ${missing.join(", ")}`);
  for (const { subpath, source } of missingEntries) {
    console.warn(`  warning: ${source} does not exist yet: the package has no "${subpath}" export`);
  }
  if (!hasCli) {
    console.warn(`  warning: ${CLI_SOURCE} does not exist yet: no bin`);
  } else {
    info(`  bin: ${PACKAGE_NAME} -> ./${CLI_JS} (shebang, mode 755)`);
  }
}

try {
  const { outDir, quiet } = parseArgs(process.argv.slice(2));
  mkdirSync(dirname(outDir), { recursive: true });
  build(outDir, quiet);
} catch (error) {
  if (error instanceof BuildError) {
    console.error(`build_npm: ${error.message}`);
    process.exit(1);
  }
  throw error;
}
