/**
 * The library under test, frozen for the whole run: a copy of the working
 * tree (or of a git ref) in a temporary directory, and its npm build next to
 * it. Deno and Bun targets load the copy's `mod.ts`, Node loads the build's
 * `esm/mod.js`; edits made to the repository while the benchmark runs
 * change nothing it measures.
 *
 * @module
 */
import { cpSync, existsSync, mkdirSync, symlinkSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { run } from "./spawn.ts";

/** What the library's code is made of: copied or archived into the snapshot. */
const LIBRARY_FILES = ["mod.ts", "src", "scripts/build_npm.ts", "deno.json", "package.json", "README.md", "LICENSE"];

/** A frozen copy of the library and its npm build. */
export interface Library {
  /** Root of the copy (holds mod.ts, src/, deno.json and a node_modules link). */
  readonly root: string;
  /** The source entry Deno and Bun import. */
  readonly sourceEntry: string;
  /** The npm build's entry Node imports. */
  readonly npmEntry: string;
  /** Which code this is, e.g. `b5869f5` or `b5869f5 + uncommitted changes`. */
  readonly label: string;
}

function git(repo: string, args: string[]): string {
  return execFileSync("git", ["-C", repo, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

/** Describes `ref` (or the working tree when undefined). */
function describe(repo: string, ref: string | undefined): string {
  try {
    const commit = git(repo, ["rev-parse", "--short", ref ?? "HEAD"]);
    if (ref !== undefined) return `${commit} (${ref})`;
    // Documentation edits do not change what is measured.
    const code = LIBRARY_FILES.filter((p) => p !== "README.md" && p !== "LICENSE");
    const dirty = git(repo, ["status", "--porcelain", "--", ...code]) !== "";
    return dirty ? `${commit} + uncommitted changes` : commit;
  } catch {
    return ref ?? "working tree (not a git checkout)";
  }
}

/**
 * Copies the library (the working tree, or `ref` via `git archive`) into
 * `tmp/lib`, links the repository's node_modules into it, and builds the npm
 * package into `tmp/npm` with `node --import tsx scripts/build_npm.ts`.
 */
export async function prepareLibrary(
  repo: string,
  tmp: string,
  ref: string | undefined,
  node: string,
): Promise<Library> {
  const root = join(tmp, "lib");
  mkdirSync(join(root, "scripts"), { recursive: true });
  const label = describe(repo, ref);
  if (ref === undefined) {
    for (const entry of LIBRARY_FILES) {
      if (existsSync(join(repo, entry))) cpSync(join(repo, entry), join(root, entry), { recursive: true });
    }
  } else {
    try {
      git(repo, ["rev-parse", "--verify", "--quiet", `${ref}^{commit}`]);
    } catch {
      throw new Error(`--ref ${ref}: not a commit in ${repo}`);
    }
    // Only the library's paths that exist at `ref`: git archive fails on a missing one.
    const present = LIBRARY_FILES.filter((p) => {
      try {
        git(repo, ["cat-file", "-e", `${ref}:${p}`]);
        return true;
      } catch {
        return false;
      }
    });
    execFileSync("bash", [
      "-c",
      'git -C "$1" archive --format=tar "$2" -- "${@:4}" | tar -x -C "$3"',
      "archive",
      repo,
      ref,
      root,
      ...present,
    ], {
      stdio: ["ignore", "ignore", "pipe"],
    });
  }
  // Bare imports (npm dependencies, tsx, the compiler) resolve through the repository's node_modules.
  symlinkSync(join(repo, "node_modules"), join(root, "node_modules"));
  const npm = join(tmp, "npm");
  const build = await run(node, ["--import", "tsx", join(root, "scripts", "build_npm.ts"), "--out", npm], root);
  if (build.code !== 0) {
    throw new Error(
      `npm build of ${label} failed (try --ref HEAD to benchmark the last commit):\n${build.stderr || build.stdout}`,
    );
  }
  symlinkSync(join(repo, "node_modules"), join(npm, "node_modules"));
  return { root, sourceEntry: join(root, "mod.ts"), npmEntry: join(npm, "esm", "mod.js"), label };
}
