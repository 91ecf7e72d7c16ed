/**
 * The benchmark's workloads: shapes and message counts (full and `--quick`),
 * and the matching workload of the smtp-source wrapper.
 *
 * @module
 */

/** How a BDAT workload sends its messages, and the DATA workload it is compared with. */
export interface BdatPlan {
  /** Bytes per chunk; 0 sends each message as one `BDAT <size> LAST`. */
  readonly chunkSize: number;
  /** The DATA workload of the same shape: the report sets the two side by side per target. */
  readonly twin: string;
}

/** One workload. */
export interface Workload {
  /** Short name used in the table. */
  readonly name: string;
  /** What it stands for. */
  readonly description: string;
  /** Concurrent connections. */
  readonly sessions: number;
  /** Messages per connection; 0 keeps connections for all their messages. */
  readonly perConnection: number;
  /** Message size in bytes (headers included). */
  readonly size: number;
  /** Recipients per message. */
  readonly recipients: number;
  /** Messages per measured run (a few seconds each on a 2-core machine). */
  readonly messages: number;
  /** Messages per measured run with `--quick`. */
  readonly quickMessages: number;
  /** Messages sent before the measured runs (JIT warm-up, buffers grown); not with `--quick`. */
  readonly warmup: number;
  /** The workload of shared/tools/smtp-source-bench.sh with the same shape; absent: none (smtp-source has no BDAT). */
  readonly smtpSource?: string;
  /** Send with BDAT (RFC 3030) instead of DATA: only targets that offer CHUNKING run it. */
  readonly bdat?: BdatPlan;
}

/**
 * The workloads, in table order. Counts: about 3 s per run for our targets.
 * smtp-server greets each new connection only after a fixed 100 ms (its
 * "early talker" check), so w1-conn is capped at 20 / 0.1 s = 200 msgs/s
 * there and its count is kept low.
 */
export const WORKLOADS: readonly Workload[] = [
  {
    name: "w1",
    description: "1 KiB messages, 20 sessions, kept connections",
    sessions: 20,
    perConnection: 0,
    size: 1024,
    recipients: 1,
    messages: 30000,
    quickMessages: 3000,
    warmup: 2000,
    smtpSource: "w1-s20-keep",
  },
  {
    name: "w1-conn",
    description: "1 KiB messages, 20 sessions, one message per connection",
    sessions: 20,
    perConnection: 1,
    size: 1024,
    recipients: 1,
    messages: 3000,
    quickMessages: 400,
    warmup: 200,
    smtpSource: "w1-s20-conn",
  },
  {
    name: "w2",
    description: "1 MiB messages, 10 sessions, kept connections",
    sessions: 10,
    perConnection: 0,
    size: 1048576,
    recipients: 1,
    messages: 600,
    quickMessages: 40,
    warmup: 20,
    smtpSource: "w2-large",
  },
  // w2 with BDAT instead of DATA (smtp-server and smtp-sink have no CHUNKING: ours only, compared with w2 per
  // runtime). As one chunk per message (no dot-stuffing, no 354 round trip), and in 64 KiB chunks (a 250 per chunk).
  {
    name: "w2-bdat",
    description: "w2 sent with BDAT: one `BDAT <size> LAST` per message",
    sessions: 10,
    perConnection: 0,
    size: 1048576,
    recipients: 1,
    messages: 600,
    quickMessages: 40,
    warmup: 20,
    bdat: { chunkSize: 0, twin: "w2" },
  },
  {
    name: "w2-bdat64k",
    description: "w2 sent with BDAT in 64 KiB chunks (16 per message, all pipelined)",
    sessions: 10,
    perConnection: 0,
    size: 1048576,
    recipients: 1,
    messages: 600,
    quickMessages: 40,
    warmup: 20,
    bdat: { chunkSize: 65536, twin: "w2" },
  },
  {
    name: "w3",
    description: "1 KiB messages, 500 sessions, kept connections",
    sessions: 500,
    perConnection: 0,
    size: 1024,
    recipients: 1,
    messages: 30000,
    quickMessages: 3000,
    warmup: 2000,
    smtpSource: "w3-s500",
  },
];
