/**
 * Socket addresses as a `Connection` reports them, built from what each
 * runtime gives: Deno, Bun and node:net all hand out a host string (IPv6
 * sometimes in brackets), a port and maybe a family.
 *
 * @module
 */
import type { SocketAddress } from "./types.ts";

/** Builds an address from a runtime's `address`/`port`/`family` triple (brackets dropped, family inferred if absent). */
export function socketAddress(
  address: string | undefined,
  port: number | undefined,
  family?: string | number,
): SocketAddress {
  const hostname = (address ?? "").replace(/^\[|\]$/g, "");
  const isV6 = family === "IPv6" || family === 6 || hostname.includes(":");
  return { hostname, port: port ?? 0, family: isV6 ? "IPv6" : "IPv4" };
}
