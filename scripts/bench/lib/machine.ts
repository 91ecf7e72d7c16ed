/**
 * The machine and software a result belongs to: cores, CPU model, memory,
 * kernel, runtime and peer versions.
 *
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import os from "node:os";
import { join } from "node:path";

/** Facts printed above the table. */
export interface Machine {
  /** Logical CPUs. */
  readonly cpus: number;
  /** `model name` of /proc/cpuinfo. */
  readonly cpuModel: string;
  /** Total memory, GiB. */
  readonly memoryGiB: number;
  /** `uname -r`. */
  readonly kernel: string;
  /** Name -> version of deno, bun, node, smtp-server, postfix. */
  readonly versions: Readonly<Record<string, string>>;
}

function firstLine(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim().split("\n")[0];
  } catch {
    return "n/a";
  }
}

function packageVersion(repo: string, name: string): string {
  try {
    return JSON.parse(readFileSync(join(repo, "node_modules", name, "package.json"), "utf8")).version;
  } catch {
    return "n/a";
  }
}

/** Collects the facts; `bins` are the runtime binaries used. */
export function describeMachine(repo: string, bins: { deno: string; bun: string; node: string }): Machine {
  let cpuModel = os.cpus()[0]?.model ?? "unknown";
  try {
    cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? cpuModel;
  } catch {
    // not Linux: keep what os.cpus() says
  }
  const postconf = ["/usr/sbin/postconf", "/usr/bin/postconf"].find((p) => existsSync(p));
  return {
    cpus: os.cpus().length,
    cpuModel,
    memoryGiB: os.totalmem() / 2 ** 30,
    kernel: os.release(),
    versions: {
      deno: firstLine(bins.deno, ["--version"]).replace(/^deno\s+/, "").replace(/\s*\(.*\)$/, ""),
      bun: firstLine(bins.bun, ["--version"]),
      node: firstLine(bins.node, ["--version"]),
      "smtp-server": packageVersion(repo, "smtp-server"),
      postfix: postconf ? firstLine(postconf, ["-d", "-h", "mail_version"]) : "not installed",
    },
  };
}
