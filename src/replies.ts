/**
 * Reply formatting (RFC 5321 4.2): single and multi-line replies, enhanced
 * status codes (RFC 2034) when enabled, and CR/LF removed from any text a
 * hook supplied so that it cannot inject extra replies.
 *
 * @module
 */

/** Removes CR and LF so a text stays on one reply line. */
export function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, " ").trim();
}

/** Formats one reply, e.g. `250 2.1.0 OK\r\n`; `enhanced` is dropped when `useEnhanced` is off. */
export function formatReply(code: number, enhanced: string, text: string, useEnhanced: boolean): string {
  const prefix = useEnhanced && enhanced ? `${code} ${enhanced} ` : `${code} `;
  return prefix + oneLine(text) + "\r\n";
}

/** Formats a multi-line reply: `250-first\r\n250-second\r\n250 last\r\n`. */
export function formatMultiline(code: number, lines: readonly string[]): string {
  let out = "";
  for (let i = 0; i < lines.length; i++) {
    out += `${code}${i === lines.length - 1 ? " " : "-"}${oneLine(lines[i])}\r\n`;
  }
  return out;
}
