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

const HOOK_REPLY_LINE = /^([2-5]\d\d)(?:[ -](.*))?$/;

/**
 * Formats a reply a hook returned as text: one line, or several separated
 * by LF or CRLF, each starting with the same reply code. The separators are
 * set right (`250-a`, `250 b`), so a multi-line answer reaches the client as
 * one valid reply. Returns `undefined` when a line has no code, or the codes
 * differ: such text would desynchronise the client.
 *
 * @example
 * ```ts
 * formatHookReply("250-first\n250 second"); // => "250-first\r\n250 second\r\n"
 * formatHookReply("hello"); // => undefined
 * ```
 */
export function formatHookReply(text: string): string | undefined {
  const lines = text.split(/\r?\n|\r/);
  if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
  let code = "";
  const texts: string[] = [];
  for (const line of lines) {
    const m = HOOK_REPLY_LINE.exec(line);
    if (!m || (code !== "" && m[1] !== code)) return undefined;
    code = m[1];
    texts.push(m[2] ?? "");
  }
  const last = texts.length - 1;
  return texts.map((t, i) => (i < last ? `${code}-${t}` : t === "" ? code : `${code} ${t}`) + "\r\n").join("");
}
