/**
 * What a server process costs, read from Linux's /proc: CPU seconds
 * (utime + stime of all its threads) and resident memory (current and peak).
 *
 * @module
 */
import { readFileSync, writeFileSync } from "node:fs";
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
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  // The command name (field 2) may hold spaces and parentheses: split after its last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of the line (utime, stime) are 12 and 13 after the name.
  return (Number(fields[11]) + Number(fields[12])) / clkTck();
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
