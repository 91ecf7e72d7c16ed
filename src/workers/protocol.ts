/**
 * What the supervisor and its workers tell each other: the environment
 * variable that makes a process a worker ({@link WORKER_ENV}), and the one
 * IPC message a worker sends, once it listens ({@link ListeningMessage}).
 * Stopping needs no message: it is SIGTERM, which also works when the IPC
 * channel is gone.
 *
 * @module
 */
import process from "node:process";

/** Set to the worker's number (1 to N) in every worker's environment. */
export const WORKER_ENV = "MIDI_SMTP_SERVER_WORKER";

/** Sent by a worker over the IPC channel once its server listens. */
export interface ListeningMessage {
  /** Tells it from anything else on the channel. */
  readonly type: "midi-smtp-server:listening";
  /** `server.addresses`. */
  readonly addresses: string[];
  /** `server.tlsAddresses`. */
  readonly tlsAddresses: string[];
  /** `server.tlsFingerprint`. */
  readonly tlsFingerprint: string | undefined;
}

/** The message for a server that listens. */
export function listeningMessage(
  server: { addresses: string[]; tlsAddresses: string[]; tlsFingerprint: string | undefined },
): ListeningMessage {
  return {
    type: "midi-smtp-server:listening",
    addresses: server.addresses,
    tlsAddresses: server.tlsAddresses,
    tlsFingerprint: server.tlsFingerprint,
  };
}

/** Whether `value` (anything that came over the channel) is a {@link ListeningMessage}. */
export function isListeningMessage(value: unknown): value is ListeningMessage {
  const m = value as Partial<ListeningMessage> | null;
  return typeof m === "object" && m !== null && m.type === "midi-smtp-server:listening" &&
    Array.isArray(m.addresses) && Array.isArray(m.tlsAddresses);
}

/**
 * This process's worker number, or `undefined` if it is not a worker. A
 * worker needs both the variable and an IPC channel to its supervisor: the
 * variable alone may have been inherited by a program the worker started.
 * It is removed from the environment once read, so that such programs do
 * not inherit it.
 */
export function workerIdFromEnvironment(): number | undefined {
  const value = process.env[WORKER_ENV];
  if (value === undefined) return undefined;
  try {
    delete process.env[WORKER_ENV];
  } catch {
    // Deno without --allow-env: it stays, and the IPC check below still tells.
  }
  const id = Number(value);
  if (!Number.isInteger(id) || id < 1 || typeof process.send !== "function") return undefined;
  return id;
}
