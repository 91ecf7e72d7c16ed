/**
 * Median with its range, for summarising repeated runs.
 *
 * @module
 */

/** Median, lowest and highest of some numbers (NaN when there are none). */
export interface Spread {
  /** The middle value (mean of the two middle ones for an even count). */
  readonly median: number;
  /** The lowest value. */
  readonly min: number;
  /** The highest value. */
  readonly max: number;
}

/** Summarises `values`. */
export function spread(values: readonly number[]): Spread {
  if (values.length === 0) return { median: NaN, min: NaN, max: NaN };
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1] };
}
