/**
 * Turns the configured host entries into the numeric addresses to bind:
 * IPs as they are, host names through the resolver (every address found),
 * and `"*"` as every local address that is neither link-local nor multicast.
 * Also the reverse lookup for `doDnsReverseLookup`. `node:dns` and `node:os`
 * exist in Deno, Bun and Node alike.
 *
 * @module
 */
import { isIP } from "node:net";

/** Formats `ip:port`, with brackets around IPv6: `"127.0.0.1:2525"`, `"[::1]:2525"`. */
export function formatAddress(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** The numeric addresses for one host entry. */
export async function resolveHost(host: string): Promise<string[]> {
  if (isIP(host)) return [host];
  if (host === "*") {
    const { networkInterfaces } = await import("node:os");
    const found: string[] = [];
    for (const list of Object.values(networkInterfaces())) {
      for (const nic of list ?? []) {
        const ip = nic.address.replace(/%.*$/, "");
        if (/^fe[89ab]/i.test(ip) || /^169\.254\./.test(ip) || /^(22[4-9]|23\d)\./.test(ip) || /^ff/i.test(ip)) {
          continue;
        }
        if (!found.includes(ip)) found.push(ip);
      }
    }
    return found;
  }
  const { lookup } = await import("node:dns/promises");
  const results = await lookup(host, { all: true });
  const ips = [...new Set(results.map((r) => r.address))];
  if (ips.length === 0) throw new Error(`Host "${host}" resolves to no address`);
  return ips;
}

/** Reverse DNS for `ip`, giving up after `timeoutMs` (then the IP is the answer). */
export async function reverseLookup(ip: string, timeoutMs = 2000): Promise<string> {
  const { reverse } = await import("node:dns/promises");
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const names = await Promise.race([
      reverse(ip),
      new Promise<string[]>((resolve) => timer = setTimeout(() => resolve([]), timeoutMs)),
    ]);
    return names[0] ?? ip;
  } catch {
    return ip;
  } finally {
    clearTimeout(timer);
  }
}
