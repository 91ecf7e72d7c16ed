/**
 * Builds the npm package from the same sources Deno and JSR use: compiles
 * `mod.ts` and `src/**` with the TypeScript compiler in node_modules (the
 * native TypeScript 7 `tsc`) to ESM `.js` + `.d.ts`, and writes
 * package.json, README.md and LICENSE next to them.
 *
 *   deno run -A scripts/build_npm.ts [--out DIR]      (deno task build:npm)
 *   node --import tsx scripts/build_npm.ts [--out DIR]
 *
 * DIR defaults to ./npm and is emptied first. Only node: APIs are used, so the
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
const KEYWORDS = ["smtp", "smtpd", "smtp-server", "esmtp", "mail", "email", "server", "rfc5321", "deno", "bun"];
/** Where the CLI lands, relative to the package root (`bin` and `exports["./cli"]`). */
const CLI_SOURCE = "src/cli.ts";
const CLI_JS = "esm/src/cli.js";
const SHEBANG = "#!/usr/bin/env node\n";
/** What the build writes at the top of the output directory; with `npm pack` tarballs, all it agrees to delete. */
const BUILD_ENTRIES = new Set(["package.json", "esm", "README.md", "LICENSE", "tsconfig.build.json", ".DS_Store"]);

class BuildError extends Error {}

function fail(message: string): never {
  throw new BuildError(message);
}

function parseArgs(argv: string[]): { outDir: string } {
  let outDir = join(ROOT, "npm");
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--out") {
      const value = argv[++i];
      if (!value) fail("--out needs a directory");
      outDir = resolve(value);
    } else if (arg.startsWith("--out=")) {
      outDir = resolve(arg.slice("--out=".length));
    } else if (arg === "--help" || arg === "-h") {
      console.log("Usage: build_npm.ts [--out DIR]   (default DIR: ./npm, emptied first)");
      process.exit(0);
    } else {
      fail(`unknown argument ${arg} (usage: build_npm.ts [--out DIR])`);
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
  return { outDir };
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

/** Runs the TypeScript compiler from node_modules; throws with its output when it reports any error. */
function compile(outDir: string): void {
  const windows = process.platform === "win32";
  const tsc = join(ROOT, "node_modules", ".bin", windows ? "tsc.cmd" : "tsc");
  if (!existsSync(tsc)) fail(`${tsc} not found: run \`npm install\` first`);
  const config = {
    compilerOptions: {
      target: "ES2022",
      lib: ["ES2022"],
      module: "nodenext",
      moduleResolution: "nodenext",
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
      rootDir: ROOT,
      outDir: join(outDir, "esm"),
      newLine: "lf",
      removeComments: false,
    },
    files: [join(ROOT, "mod.ts")],
    include: [join(ROOT, "src", "**", "*.ts")],
    exclude: [join(ROOT, "src", "**", "*.test.ts"), join(ROOT, "src", "**", "*_test.ts")],
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
      fail(`tsc failed (exit ${result.status ?? result.signal}):\n${output}`);
    }
    if (output) console.log(output);
  } finally {
    rmSync(configPath, { force: true });
  }
}

/** Relative module specifiers (`from "./x.ts"`, `import("../y.ts")`) in emitted code and declarations. */
const RELATIVE_TS_SPECIFIER = /((?:\bfrom|\bimport|\bexport)\s*\(?\s*)(["'])(\.{1,2}\/[^"'\n]*?)\.ts\2/g;

/** Rewrites `.ts` module paths to `.js` in the `.d.ts` files (tsc keeps them as written); returns how many. */
function rewriteDeclarations(esmDir: string): { files: number; rewritten: number } {
  let files = 0;
  let rewritten = 0;
  for (const path of walk(esmDir)) {
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
function checkImports(esmDir: string, dependencies: Record<string, string>): void {
  const problems: string[] = [];
  const specifier = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(["'])([^"'\n]+)\1/g;
  for (const path of walk(esmDir)) {
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

function build(outDir: string): void {
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

  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });

  compile(outDir);
  const esmDir = join(outDir, "esm");
  if (!existsSync(join(esmDir, "mod.js")) || !existsSync(join(esmDir, "mod.d.ts"))) {
    fail(`tsc reported no error but ${join(esmDir, "mod.js")} or mod.d.ts is missing`);
  }
  const declarations = rewriteDeclarations(esmDir);
  checkImports(esmDir, dependencies);

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
    license: typeof denoJson.license === "string" ? denoJson.license : "MIT",
    type: "module",
    main: "./esm/mod.js",
    types: "./esm/mod.d.ts",
    exports: {
      ".": { types: "./esm/mod.d.ts", import: "./esm/mod.js" },
      "./cli": { types: "./esm/src/cli.d.ts", import: "./" + CLI_JS },
      "./package.json": "./package.json",
    },
    bin: { [PACKAGE_NAME]: "./" + CLI_JS },
    files: ["esm/", "README.md", "LICENSE"],
    engines: { node: ">=20" },
    keywords: KEYWORDS,
    dependencies,
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

  const emitted = walk(esmDir);
  const bytes = emitted.reduce((sum, path) => sum + statSync(path).size, 0);
  const js = emitted.filter((p) => p.endsWith(".js")).length;
  const fromCwd = relative(process.cwd(), outDir);
  const shown = fromCwd === "" ? "." : fromCwd.startsWith("..") ? outDir : fromCwd;
  console.log(`built ${PACKAGE_NAME}@${version} in ${shown}/ (${Date.now() - started} ms)`);
  console.log(
    `  esm/: ${js} .js + ${declarations.files} .d.ts, ${(bytes / 1024).toFixed(1)} KiB; ` +
      `${declarations.rewritten} .ts import paths rewritten to .js in .d.ts`,
  );
  console.log(`  dependencies: ${Object.keys(dependencies).length ? JSON.stringify(dependencies) : "none"}`);
  console.log(`  copied: ${copied.join(", ") || "nothing"}`);
  if (missing.length) console.warn(`  warning: not found at the project root, not copied: ${missing.join(", ")}`);
  if (!hasCli) {
    console.warn(`  warning: ${CLI_SOURCE} does not exist yet: bin and exports["./cli"] point to a missing ${CLI_JS}`);
  } else {
    console.log(`  bin: ${PACKAGE_NAME} -> ./${CLI_JS} (shebang, mode 755)`);
  }
}

try {
  const { outDir } = parseArgs(process.argv.slice(2));
  mkdirSync(dirname(outDir), { recursive: true });
  build(outDir);
} catch (error) {
  if (error instanceof BuildError) {
    console.error(`build_npm: ${error.message}`);
    process.exit(1);
  }
  throw error;
}
