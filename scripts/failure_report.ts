/**
 * What failed in one test run, cut out of the runner's output for the
 * summary at the end of `npm test`. CI keeps only the tail of a long output,
 * and runs are printed whole as they end: without this, the failure of a run
 * that ended early is out of sight, and only its count is left.
 *
 * Each runner has its own closing section: Node's spec reporter
 * `✖ failing tests:` (to the end), Deno's ` ERRORS ` and ` FAILURES `
 * (before `FAILED |`), Bun's `(fail) name` lines with the error printed
 * above each. Names first, then the details, cut at `maxDetailLines`.
 */

/** The test runners test_all knows. */
export type RunnerFamily = "deno" | "bun" | "node";

/** The failing tests' names and their errors, as the runner printed them. */
export interface FailureReport {
  names: string[];
  details: string[];
}

/** The closing sections of `output`; empty when the runner named no failing test. */
export function failureReport(family: RunnerFamily, output: string): FailureReport {
  const lines = output.split(/\r?\n/);
  if (family === "node") return nodeFailures(lines);
  if (family === "deno") return denoFailures(lines);
  return bunFailures(lines);
}

/**
 * The report as lines to print: the names cut at `maxNames`, the details at `maxDetailLines` (each saying how many
 * were left out: a file that cannot load fails every test in it).
 */
export function formatFailureReport(report: FailureReport, maxDetailLines = 60, maxNames = 40): string[] {
  if (report.names.length === 0) return [];
  const out = ["failed:", ...report.names.slice(0, maxNames).map((n) => `  ${n.trim()}`)];
  if (report.names.length > maxNames) out.push(`  ... and ${report.names.length - maxNames} more`);
  if (report.details.length > 0) {
    out.push("first errors:", ...report.details.slice(0, maxDetailLines).map((l) => `  ${l}`));
    const left = report.details.length - maxDetailLines;
    if (left > 0) out.push(`  ... ${left} more lines in the run's output above`);
  }
  return out;
}

function lastIndexOf(lines: string[], test: (line: string) => boolean, before = lines.length): number {
  for (let i = before - 1; i >= 0; i--) if (test(lines[i])) return i;
  return -1;
}

function trimBlank(lines: string[]): string[] {
  let start = 0;
  let end = lines.length;
  while (start < end && lines[start].trim() === "") start++;
  while (end > start && lines[end - 1].trim() === "") end--;
  return lines.slice(start, end);
}

function nodeFailures(lines: string[]): FailureReport {
  const start = lastIndexOf(lines, (l) => /^✖ failing tests:/.test(l));
  if (start < 0) return { names: [], details: [] };
  const details = trimBlank(lines.slice(start + 1));
  return { names: details.filter((l) => /^\s*✖ /.test(l)), details };
}

function denoFailures(lines: string[]): FailureReport {
  const end = lastIndexOf(lines, (l) => /^(?:FAILED|ok) \| \d+ passed/.test(l));
  if (end < 0) return { names: [], details: [] };
  const failures = lastIndexOf(lines, (l) => l.trim() === "FAILURES", end);
  if (failures < 0) return { names: [], details: [] };
  const errors = lastIndexOf(lines, (l) => l.trim() === "ERRORS", failures);
  return {
    names: trimBlank(lines.slice(failures + 1, end)),
    details: errors < 0 ? [] : trimBlank(lines.slice(errors + 1, failures)),
  };
}

/** Bun prints a test's error above its `(fail)` line, after the previous test's line or the file's name. */
function bunFailures(lines: string[]): FailureReport {
  const names: string[] = [];
  const details: string[] = [];
  const boundary = (l: string) => /^\((?:pass|fail|skip|todo)\) /.test(l) || /^\S.*\.test\.[mc]?[jt]s:$/.test(l);
  lines.forEach((line, i) => {
    if (!line.startsWith("(fail) ")) return;
    names.push(line);
    const from = lastIndexOf(lines, boundary, i) + 1;
    details.push(line, ...trimBlank(lines.slice(from, i)), "");
  });
  return { names, details: trimBlank(details) };
}
