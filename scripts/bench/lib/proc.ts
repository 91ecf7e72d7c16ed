/**
 * What a server process costs, read from Linux's /proc: CPU seconds
 * (utime + stime of all its threads) and resident memory (current and peak),
 * of one process or of a server's processes (a supervisor and its workers).
 *
 * @module
 */
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";

let clockTicks: number | undefined;

/** Clock ticks per second of /proc/PID/stat times (`getconf CLK_TCK`, 100 on Linux). */
export function clkTck(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** CPU seconds (user + system, all threads) process `pid` has used so far. */
export function cpuSeconds(pid: number): number {
  const fields = statFields(pid);
  // Fields 14 and 15 of the line (utime, stime) are 12 and 13 after the name.
  return (Number(fields[11]) + Number(fields[12])) / clkTck();
}

/** The fields of /proc/PID/stat after the command name (field 3, the state, is index 0). */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  // The command name (field 2) may hold spaces and parentheses: split after its last ")".
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/**
 * `pid` and all its descendants (children, their children...), `pid` first,
 * the others by pid; from the parent pids of every process in /proc. A
 * process that exits while /proc is read may be missing.
 */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let parent: number;
    try {
      parent = Number(statFields(Number(entry))[1]);
    } catch {
      continue; // gone meanwhile
    }
    const list = children.get(parent);
    if (list) list.push(Number(entry));
    else children.set(parent, [Number(entry)]);
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]) ?? []));
  return [pid, ...tree.slice(1).sort((a, b) => a - b)];
}

/** When process `pid` started (field 22 of /proc/PID/stat, clock ticks since boot), or `undefined` if it is gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const f = statFields(pid);
    // A zombie has exited already.
    return f[0] === "Z" ? undefined : f[19];
  } catch {
    return undefined;
  }
}

function exe(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

/**
 * The processes of a server started as `pid`: `pid` and those of its
 * descendants that run the same executable, i.e. the worker processes of a
 * supervisor (which run the same program again), not helpers such as the
 * esbuild service that tsx starts under Node, nor the shell of a wrapper.
 */
export function serverProcesses(pid: number): number[] {
  const own = exe(pid);
  return processTree(pid).filter((p, i) => i === 0 || (own !== undefined && exe(p) === own));
}

/**
 * CPU seconds (utime + stime, all threads) per process of the server started
 * as `pid` ({@link serverProcesses}); a process gone before it was read is
 * left out.
 */
export function serverCpuSeconds(pid: number): Map<number, number> {
  const cpu = new Map<number, number>();
  for (const p of serverProcesses(pid)) {
    try {
      cpu.set(p, cpuSeconds(p));
    } catch {
      // exited meanwhile
    }
  }
  return cpu;
}

/**
 * Peak resident memory (VmHWM) per process of the server started as `pid`
 * ({@link serverProcesses}), bytes. Their sum is an upper bound of the
 * server's peak: each process peaks at its own time, and pages they share
 * (the runtime's code) count in each.
 */
export function serverPeakRssBytes(pid: number): Map<number, number> {
  const peak = new Map<number, number>();
  for (const p of serverProcesses(pid)) {
    try {
      peak.set(p, statusBytes(p, "VmHWM"));
    } catch {
      // exited meanwhile, or a zombie (no memory left)
    }
  }
  return peak;
}

/** The sum of a map's values. */
export function total(values: ReadonlyMap<number, number>): number {
  let sum = 0;
  for (const v of values.values()) sum += v;
  return sum;
}

/** A `VmXXX:` value of /proc/PID/status, in bytes. */
function statusBytes(pid: number, key: "VmRSS" | "VmHWM"): number {
  const status = readFileSync(`/proc/${pid}/status`, "latin1");
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status);
  if (!m) throw new Error(`no ${key} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** Resident memory of `pid` now, bytes. */
export function rssBytes(pid: number): number {
  return statusBytes(pid, "VmRSS");
}

/** Peak resident memory of `pid` since it started (or since {@link resetPeakRss}), bytes. */
export function peakRssBytes(pid: number): number {
  return statusBytes(pid, "VmHWM");
}

/** Resets the peak (VmHWM) to the current RSS; false when the kernel refuses. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/**
 * Busy CPU seconds of the whole machine so far (user, nice, system, irq,
 * softirq, steal of all CPUs, from /proc/stat), or NaN where unreadable. The
 * difference over a run, minus what server and generator used, is what other
 * processes (or the hypervisor) took: the noise in that run.
 */
export function machineBusySeconds(): number {
  try {
    const line = readFileSync("/proc/stat", "latin1").split("\n", 1)[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / clkTck();
  } catch {
    return NaN;
  }
}
