/**
 * Unit tests of command argument parsing (src/session/arguments.ts) and reply formatting
 * (src/session/replies.ts), run under all three runtimes:
 *
 *   deno test -A tests/commands.test.ts
 *   bun test ./tests/commands.test.ts
 *   node --import tsx --test tests/commands.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  hasControl,
  hasNonAscii,
  isMailbox,
  nonAsciiRefused,
  parseParams,
  parsePathArgument,
  type PathArgument,
  splitCommand,
} from "../src/session/arguments.ts";
import { SmtpdException } from "../src/exceptions.ts";
import { formatMultiline, formatReply, oneLine } from "../src/session/replies.ts";

// ---------------------------------------------------------------------------
// helpers

/** Asserts that `fn` throws an SmtpdException with this code and enhanced code. */
function throwsReply(fn: () => unknown, code: number, enhancedCode: string, what = ""): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SmtpdException, `${what}: expected an SmtpdException, got ${String(err)}`);
    assert.equal(`${err.code} ${err.enhancedCode}`, `${code} ${enhancedCode}`, what);
    assert.ok(!/[\r\n]/.test(err.text), "reply text has no line break");
    return true;
  }, what);
}

const from = (args: string, utf8Allowed = false): PathArgument => parsePathArgument(args, "FROM", true, utf8Allowed);
const to = (args: string, utf8Allowed = false): PathArgument => parsePathArgument(args, "TO", false, utf8Allowed);

const SYNTAX = [501, "5.5.4"] as const;
const BAD_SENDER = [501, "5.1.7"] as const;
const BAD_RECIPIENT = [501, "5.1.3"] as const;
const CONTROL = [501, "5.5.2"] as const;
const NON_ASCII = [553, "5.6.7"] as const;

// ---------------------------------------------------------------------------

describe("parsePathArgument: valid paths", () => {
  it("parses FROM:<a@b.example>", () => {
    assert.deepEqual(from("FROM:<a@b.example>"), {
      path: "<a@b.example>",
      address: "a@b.example",
      utf8: false,
      params: {},
    });
  });

  it("parses TO:<c@d.example>", () => {
    assert.deepEqual(to("TO:<c@d.example>"), {
      path: "<c@d.example>",
      address: "c@d.example",
      utf8: false,
      params: {},
    });
  });

  it("accepts spaces after the colon (FROM: <a@b.example>)", () => {
    assert.equal(from("FROM: <a@b.example>").address, "a@b.example");
    assert.equal(from("FROM:   <a@b.example>").address, "a@b.example");
    assert.equal(to("TO: <c@d.example>").address, "c@d.example");
  });

  it("accepts the keyword in any case", () => {
    assert.equal(from("from:<a@b.example>").address, "a@b.example");
    assert.equal(to("To:<c@d.example>").address, "c@d.example");
  });

  it("accepts the null path <> for FROM when allowed", () => {
    assert.deepEqual(from("FROM:<>"), { path: "<>", address: "", utf8: false, params: {} });
    assert.deepEqual(from("FROM:<> SIZE=10").params, { SIZE: "10" });
  });

  it("refuses the null path for TO (501 5.1.3) and for FROM when not allowed (501 5.1.7)", () => {
    throwsReply(() => to("TO:<>"), ...BAD_RECIPIENT);
    throwsReply(() => parsePathArgument("FROM:<>", "FROM", false, false), ...BAD_SENDER);
  });

  it("accepts <postmaster> without a domain for TO, in any case (RFC 5321 4.5.1)", () => {
    for (const name of ["postmaster", "Postmaster", "POSTMASTER"]) {
      assert.deepEqual(to(`TO:<${name}>`), { path: `<${name}>`, address: name, utf8: false, params: {} });
    }
  });

  it("refuses <postmaster> without a domain for FROM", () => {
    throwsReply(() => from("FROM:<postmaster>"), ...BAD_SENDER);
  });

  it("accepts quoted local parts with spaces, '>' , '@' and quoted pairs", () => {
    assert.equal(to('TO:<"john smith"@example.com>').address, '"john smith"@example.com');
    assert.equal(to('TO:<"a>b"@example.com>').address, '"a>b"@example.com');
    assert.equal(to('TO:<"a>b"@example.com> NOTIFY=NEVER').path, '<"a>b"@example.com>');
    assert.deepEqual(to('TO:<"a>b"@example.com> NOTIFY=NEVER').params, { NOTIFY: "NEVER" });
    assert.equal(to('TO:<"a@b"@example.com>').address, '"a@b"@example.com');
    assert.equal(to('TO:<"a\\"b"@example.com>').address, '"a\\"b"@example.com');
    assert.equal(to('TO:<"a\\\\"@example.com>').address, '"a\\\\"@example.com');
    assert.equal(to('TO:<""@example.com>').address, '""@example.com');
  });

  it("accepts dot-strings with every atext character", () => {
    const local = "a.b!#$%&'*+-/=?^_`{|}~0";
    assert.equal(to(`TO:<${local}@example.com>`).address, `${local}@example.com`);
  });

  it("accepts address literals: IPv4, IPv6 and general", () => {
    assert.equal(to("TO:<u@[192.0.2.1]>").address, "u@[192.0.2.1]");
    assert.equal(to("TO:<u@[IPv6:2001:db8::1]>").address, "u@[IPv6:2001:db8::1]");
    assert.equal(to("TO:<u@[ipv6:::1]>").address, "u@[ipv6:::1]");
    assert.equal(to("TO:<u@[IPv6:::ffff:192.0.2.1]>").address, "u@[IPv6:::ffff:192.0.2.1]");
    assert.equal(to("TO:<u@[x-tag:some-content]>").address, "u@[x-tag:some-content]");
    assert.equal(from("FROM:<u@[255.255.255.255]>").address, "u@[255.255.255.255]");
  });

  it("drops a source route (<@a,@b:u@c.example>)", () => {
    assert.deepEqual(to("TO:<@a.example,@b.example:u@c.example>"), {
      path: "<u@c.example>",
      address: "u@c.example",
      utf8: false,
      params: {},
    });
    assert.equal(from("FROM:<@relay.example:s@d.example> SIZE=5").path, "<s@d.example>");
  });

  it("accepts domains with one label, digits and inner hyphens, labels of 63 and domains of 255 octets", () => {
    assert.equal(to("TO:<a@localhost>").address, "a@localhost");
    assert.equal(to("TO:<a@x-1.b2-c.example>").address, "a@x-1.b2-c.example");
    const label63 = "l".repeat(63);
    assert.equal(to(`TO:<a@${label63}.example>`).address, `a@${label63}.example`);
    const domain255 = ["d".repeat(50), "d".repeat(50), "d".repeat(50), "d".repeat(50), "d".repeat(51)].join(".");
    assert.equal(domain255.length, 255);
    assert.equal(to(`TO:<a@${domain255}>`).address, `a@${domain255}`);
  });

  it("accepts a local part of 64 octets", () => {
    const local = "x".repeat(64);
    assert.equal(from(`FROM:<${local}@example.com>`).address, `${local}@example.com`);
  });

  it("parses ESMTP parameters behind the path", () => {
    assert.deepEqual(from("FROM:<a@b.example> SIZE=1000 BODY=8BITMIME").params, { SIZE: "1000", BODY: "8BITMIME" });
    assert.deepEqual(from("FROM:<a@b.example> smtputf8").params, { SMTPUTF8: true });
    assert.deepEqual(to("TO:<a@b.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b.example").params, {
      NOTIFY: "SUCCESS,FAILURE",
      ORCPT: "rfc822;a@b.example",
    });
    assert.deepEqual(from("FROM:<a@b.example>  SIZE=1   BODY=7BIT").params, { SIZE: "1", BODY: "7BIT" });
  });
});

describe("parsePathArgument: syntax errors (501 5.5.4)", () => {
  const cases: Array<[string, "FROM" | "TO", string]> = [
    ["missing brackets", "FROM", "FROM:a@b.example"],
    ["missing opening bracket", "FROM", "FROM:a@b.example>"],
    ["missing closing bracket", "TO", "TO:<a@b.example"],
    ["missing colon", "FROM", "FROM<a@b.example>"],
    ["space instead of colon", "FROM", "FROM <a@b.example>"],
    ["space before the colon", "TO", "TO :<a@b.example>"],
    ["wrong keyword", "FROM", "TO:<a@b.example>"],
    ["wrong keyword", "TO", "FROM:<a@b.example>"],
    ["longer keyword", "FROM", "FROMM:<a@b.example>"],
    ["nothing", "FROM", ""],
    ["keyword only", "TO", "TO:"],
    ["keyword and spaces only", "TO", "TO:   "],
    ["junk right after '>'", "FROM", "FROM:<a@b.example>X"],
    ["parameter right after '>'", "FROM", "FROM:<a@b.example>SIZE=1"],
    ["second path right after '>'", "TO", "TO:<a@b.example><c@d.example>"],
    ["junk after a quoted local part's '>'", "TO", 'TO:<"a>b"@example.com>junk'],
  ];
  for (const [what, keyword, args] of cases) {
    it(`${what}: ${JSON.stringify(args)}`, () => {
      throwsReply(() => parsePathArgument(args, keyword, true, false), ...SYNTAX);
    });
  }

  it("names the verb in the reply text", () => {
    assert.throws(() => from("FROM:x"), (err: unknown) => err instanceof SmtpdException && /MAIL FROM/.test(err.text));
    assert.throws(() => to("TO:x"), (err: unknown) => err instanceof SmtpdException && /RCPT TO/.test(err.text));
  });
});

describe("parsePathArgument: bad addresses (501 5.1.7 sender, 501 5.1.3 recipient)", () => {
  const long = (n: number) => "x".repeat(n);
  const domain256 = ["d".repeat(50), "d".repeat(50), "d".repeat(50), "d".repeat(50), "d".repeat(52)].join(".");
  const mailboxes: Array<[string, string]> = [
    ["empty local part", "@example.com"],
    ["empty domain", "a@"],
    ["no @ at all", "abc"],
    ["domain label starting with '-'", "a@-b.example"],
    ["domain label ending with '-'", "a@b-.example"],
    ["empty domain label", "a@b..example"],
    ["leading dot in the domain", "a@.example"],
    ["trailing dot in the domain", "a@b.example."],
    ["underscore in the domain", "a@b_c.example"],
    ["domain label of 64 octets", `a@${long(64)}.example`],
    ["domain of 256 octets", `a@${domain256}`],
    ["local part of 65 octets", `${long(65)}@example.com`],
    ["leading dot in the local part", ".a@example.com"],
    ["trailing dot in the local part", "a.@example.com"],
    ["two dots in the local part", "a..b@example.com"],
    ["unquoted space in the local part", "a b@example.com"],
    ["unquoted special in the local part", "a(b)@example.com"],
    ["unterminated quoted local part", '"abc@example.com'],
    ["bare quote inside a quoted local part", '"a"b"@example.com'],
    ["IPv4 literal out of range", "u@[192.0.2.256]"],
    ["IPv4 literal with three parts", "u@[192.0.2]"],
    ["empty address literal", "u@[]"],
    ["empty IPv6 literal", "u@[IPv6:]"],
    ["IPv6 literal with non-hex", "u@[IPv6:gggg::1]"],
    ["IPv6 literal without a colon", "u@[IPv6:1.2.3.4]"],
    ["unclosed address literal", "u@[192.0.2.1"],
  ];
  for (const [what, mailbox] of mailboxes) {
    it(`${what}: <${mailbox.length > 40 ? mailbox.slice(0, 37) + "..." : mailbox}>`, () => {
      throwsReply(() => from(`FROM:<${mailbox}>`), ...BAD_SENDER, "FROM");
      throwsReply(() => to(`TO:<${mailbox}>`), ...BAD_RECIPIENT, "TO");
      throwsReply(() => from(`FROM:<${mailbox}>`, true), ...BAD_SENDER, "FROM, utf8 allowed");
    });
  }

  it("refuses a source route without a mailbox (<@a.example:>) instead of reading it as the null path", () => {
    throwsReply(() => from("FROM:<@a.example:>"), ...BAD_SENDER);
    throwsReply(() => to("TO:<@a.example:>"), ...BAD_RECIPIENT);
  });
});

describe("parsePathArgument: control characters (501 5.5.2)", () => {
  const cases: Array<[string, string]> = [
    ["NUL", "FROM:<a\x00b@example.com>"],
    ["TAB", "FROM:<a@example.com>\tSIZE=1"],
    ["CR", "FROM:<a@example.com>\r"],
    ["LF", "FROM:<a@example.com>\nRCPT TO:<b@example.com>"],
    ["DEL", "FROM:<a\x7f@example.com>"],
    ["ESC in a parameter", "FROM:<a@example.com> SIZE=\x1b1"],
    ["NUL in a quoted local part", 'FROM:<"a\x00"@example.com>'],
  ];
  for (const [what, args] of cases) {
    it(what, () => {
      throwsReply(() => from(args), ...CONTROL, "FROM");
      throwsReply(() => from(args, true), ...CONTROL, "FROM, utf8 allowed");
      throwsReply(() => to(args.replace("FROM", "TO")), ...CONTROL, "TO");
    });
  }
});

describe("parsePathArgument: UTF-8 mailboxes (RFC 6531)", () => {
  const utf8Mailboxes = [
    "pelé@example.com",
    "用户@例子.广告",
    "user@bücher.example",
    '"ü x"@example.com',
    "δοκιμή@παράδειγμα.δοκιμή",
  ];

  for (const mailbox of utf8Mailboxes) {
    it(`refuses <${mailbox}> with 553 5.6.7 when UTF-8 is not allowed`, () => {
      throwsReply(() => from(`FROM:<${mailbox}>`), ...NON_ASCII, "FROM");
      throwsReply(() => to(`TO:<${mailbox}>`), ...NON_ASCII, "TO");
    });

    it(`accepts <${mailbox}> with utf8=true when UTF-8 is allowed`, () => {
      assert.deepEqual(to(`TO:<${mailbox}> NOTIFY=NEVER`, true), {
        path: `<${mailbox}>`,
        address: mailbox,
        utf8: true,
        params: { NOTIFY: "NEVER" },
      });
      assert.equal(from(`FROM:<${mailbox}>`, true).utf8, true);
    });
  }

  it("reports utf8=false for ASCII mailboxes when UTF-8 is allowed", () => {
    assert.equal(from("FROM:<a@b.example>", true).utf8, false);
    assert.equal(from("FROM:<>", true).utf8, false);
  });

  it("counts the 64-octet local part limit in UTF-8 octets", () => {
    const local64 = "é".repeat(32); // 64 octets
    assert.equal(to(`TO:<${local64}@example.com>`, true).address, `${local64}@example.com`);
    throwsReply(() => to(`TO:<${local64}é@example.com>`, true), ...BAD_RECIPIENT);
  });

  it("still checks the syntax of UTF-8 mailboxes (501 when allowed but malformed)", () => {
    throwsReply(() => to("TO:<é..x@example.com>", true), ...BAD_RECIPIENT);
    throwsReply(() => from("FROM:<é@-bücher.example>", true), ...BAD_SENDER);
  });

  it("nonAsciiRefused() is 553 5.6.7", () => {
    const err = nonAsciiRefused();
    assert.ok(err instanceof SmtpdException);
    assert.equal(err.smtpdResult, "553 5.6.7 Non-ASCII addresses require the SMTPUTF8 parameter");
  });
});

describe("parseParams", () => {
  it("returns an empty record for no parameters", () => {
    assert.deepEqual(parseParams(""), {});
    assert.deepEqual(parseParams("   "), {});
  });

  it("upper-cases keywords and keeps values as given", () => {
    assert.deepEqual(parseParams(" size=100 body=8bitmime"), { SIZE: "100", BODY: "8bitmime" });
    assert.deepEqual(parseParams("X-Custom-1=Value"), { "X-CUSTOM-1": "Value" });
  });

  it("maps a bare keyword to true", () => {
    assert.deepEqual(parseParams("SMTPUTF8 REQUIRETLS"), { SMTPUTF8: true, REQUIRETLS: true });
  });

  it("accepts printable ASCII values except '=' and UTF-8 values", () => {
    assert.deepEqual(parseParams("ORCPT=rfc822;a+2B@b.example"), { ORCPT: "rfc822;a+2B@b.example" });
    assert.deepEqual(parseParams("ORCPT=utf-8;ü@b.example"), { ORCPT: "utf-8;ü@b.example" });
    assert.deepEqual(parseParams("ENVID=!\"#$%&'()*+,-./:;<>?@[\\]^_`{|}~"), {
      ENVID: "!\"#$%&'()*+,-./:;<>?@[\\]^_`{|}~",
    });
  });

  it("refuses duplicate keywords, also in another case (501 5.5.4)", () => {
    throwsReply(() => parseParams("SIZE=1 SIZE=2"), 501, "5.5.4");
    throwsReply(() => parseParams("SIZE=1 size=1"), 501, "5.5.4");
    throwsReply(() => parseParams("SMTPUTF8 smtputf8"), 501, "5.5.4");
    throwsReply(() => parseParams("BODY BODY=7BIT"), 501, "5.5.4");
  });

  const malformed: Array<[string, string]> = [
    ["no keyword", "=100"],
    ["empty value", "SIZE="],
    ["'=' in the value", "A=b=c"],
    ["keyword starting with '-'", "-X=1"],
    ["underscore in the keyword", "X_Y=1"],
    ["dot in the keyword", "X.Y"],
    ["non-ASCII keyword", "SÏZE=1"],
    ["DEL in the value", "SIZE=1\x7f"],
    ["NUL in the value", "SIZE=\x001"],
  ];
  for (const [what, text] of malformed) {
    it(`refuses a malformed parameter: ${what} (501 5.5.4)`, () => {
      throwsReply(() => parseParams(text), 501, "5.5.4");
    });
  }

  it("does not echo raw control or 8-bit characters in the error text", () => {
    assert.throws(() => parseParams("SIZE=\x00\x1b"), (err: unknown) => {
      assert.ok(err instanceof SmtpdException);
      assert.ok(/^[\x20-\x7e]*$/.test(err.text), JSON.stringify(err.text));
      return true;
    });
  });

  it("uses own properties only (no prototype keys)", () => {
    const params = parseParams("CONSTRUCTOR=x TOSTRING");
    assert.deepEqual(params, { CONSTRUCTOR: "x", TOSTRING: true });
    assert.deepEqual(parseParams(""), {});
    assert.equal(Object.hasOwn(parseParams(""), "constructor"), false);
  });
});

describe("splitCommand", () => {
  const cases: Array<[string, { verb: string; args: string }]> = [
    ["EHLO client.example", { verb: "EHLO", args: "client.example" }],
    ["ehlo client.example", { verb: "EHLO", args: "client.example" }],
    ["QUIT", { verb: "QUIT", args: "" }],
    ["quit", { verb: "QUIT", args: "" }],
    ["NOOP ", { verb: "NOOP", args: "" }],
    ["MAIL FROM:<a@b.example> SIZE=1  ", { verb: "MAIL", args: "FROM:<a@b.example> SIZE=1" }],
    ["RCPT  TO:<a@b.example>", { verb: "RCPT", args: "TO:<a@b.example>" }],
    ["AUTH PLAIN  dGVzdA==", { verb: "AUTH", args: "PLAIN  dGVzdA==" }],
    ["", { verb: "", args: "" }],
    ["x-Custom some args", { verb: "X-CUSTOM", args: "some args" }],
  ];
  for (const [line, expected] of cases) {
    it(`${JSON.stringify(line)} -> ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(splitCommand(line), expected);
    });
  }
});

describe("hasNonAscii, hasControl, isMailbox", () => {
  it("hasNonAscii", () => {
    assert.equal(hasNonAscii("plain ascii ~\x7f"), false);
    assert.equal(hasNonAscii("pelé"), true);
    assert.equal(hasNonAscii("\u0080"), true);
  });

  it("hasControl", () => {
    assert.equal(hasControl("printable ~"), false);
    for (const c of ["\x00", "\t", "\r", "\n", "\x1f", "\x7f"]) {
      assert.equal(hasControl(`a${c}b`), true, JSON.stringify(c));
    }
  });

  it("isMailbox", () => {
    assert.equal(isMailbox("a@b.example", false), true);
    assert.equal(isMailbox("a@b.example", true), true);
    assert.equal(isMailbox("pelé@example.com", false), false);
    assert.equal(isMailbox("pelé@example.com", true), true);
    assert.equal(isMailbox("postmaster", false), false);
    assert.equal(isMailbox("", false), false);
  });
});

describe("replies: formatReply", () => {
  it("formats code, enhanced code and text with CRLF", () => {
    assert.equal(formatReply(250, "2.1.0", "Ok", true), "250 2.1.0 Ok\r\n");
  });

  it("drops the enhanced code when enhanced status codes are off", () => {
    assert.equal(formatReply(250, "2.1.0", "Ok", false), "250 Ok\r\n");
  });

  it("leaves it out when there is none", () => {
    assert.equal(formatReply(354, "", "Enter message", true), "354 Enter message\r\n");
    assert.equal(formatReply(354, "", "Enter message", false), "354 Enter message\r\n");
  });

  it("strips CR and LF from the text: a hook cannot inject a second reply", () => {
    const reply = formatReply(550, "5.7.1", "Denied\r\n250 2.0.0 Ok, queued", true);
    assert.equal(reply, "550 5.7.1 Denied 250 2.0.0 Ok, queued\r\n");
    for (const text of ["a\rb", "a\nb", "a\r\n\r\nb", "a\n\rb", "\r\na\r\nb\r\n"]) {
      const out = formatReply(451, "4.3.0", text, true);
      assert.equal(out, "451 4.3.0 a b\r\n", JSON.stringify(text));
      assert.equal(out.indexOf("\r"), out.length - 2);
      assert.equal(out.indexOf("\n"), out.length - 1);
    }
  });
});

describe("replies: formatMultiline", () => {
  it("uses '-' on every line but the last", () => {
    assert.equal(
      formatMultiline(250, ["mx.example", "PIPELINING", "SIZE 100"]),
      "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n",
    );
  });

  it("formats a single line like a one-line reply", () => {
    assert.equal(formatMultiline(250, ["only"]), "250 only\r\n");
  });

  it("formats no lines as nothing", () => {
    assert.equal(formatMultiline(250, []), "");
  });

  it("strips CR and LF inside each line", () => {
    const out = formatMultiline(250, ["a\r\n250 b", "c\nd"]);
    assert.equal(out, "250-a 250 b\r\n250 c d\r\n");
    assert.equal(out.split("\r\n").length, 3);
  });
});

describe("replies: oneLine", () => {
  it("joins lines with one space and trims", () => {
    assert.equal(oneLine("a\r\nb"), "a b");
    assert.equal(oneLine("\n a \r"), "a");
    assert.equal(oneLine("no breaks"), "no breaks");
  });
});
