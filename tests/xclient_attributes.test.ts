/**
 * Unit tests of the XCLIENT and XFORWARD attribute parsers
 * (src/session/xclient_attributes.ts), run under all three runtimes:
 *
 *   deno test -A tests/xclient_attributes.test.ts
 *   bun test ./tests/xclient_attributes.test.ts
 *   node --import tsx --test tests/xclient_attributes.test.ts
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  parseXclient,
  parseXforward,
  XCLIENT_ATTRIBUTES,
  XFORWARD_ATTRIBUTES,
} from "../src/session/xclient_attributes.ts";
import { SmtpdException } from "../src/exceptions.ts";
import { encodeXtext } from "../src/session/xtext.ts";

/** Asserts that `fn` throws exactly the reply `501 5.5.4 <text>`, with `detail` (if given) in the log message. */
function refuses(fn: () => unknown, text: string, detail?: RegExp, what = text): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SmtpdException, `${what}: expected an SmtpdException, got ${String(err)}`);
    assert.equal(err.smtpdResult, `501 5.5.4 ${text}`, what);
    if (detail) assert.match(err.message, detail, what);
    assert.ok(!/[^\x20-\x7e]/.test(err.message), `${what}: the reply and log message are printable ASCII`);
    return true;
  }, what);
}

const XCLIENT_SYNTAX = "Syntax: XCLIENT attribute=value [attribute=value ...]";
const XFORWARD_SYNTAX = "Syntax: XFORWARD attribute=value [attribute=value ...]";
const EXPECTED = "Error: attribute=value expected";
const TOO_LONG = "Error: attribute value too long";

describe("the advertised attribute lists", () => {
  it("XCLIENT: NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT", () => {
    assert.deepEqual(XCLIENT_ATTRIBUTES, ["NAME", "ADDR", "PORT", "PROTO", "HELO", "LOGIN", "DESTADDR", "DESTPORT"]);
  });

  it("XFORWARD: NAME ADDR PORT PROTO HELO IDENT SOURCE", () => {
    assert.deepEqual(XFORWARD_ATTRIBUTES, ["NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"]);
  });

  it("are frozen", () => {
    assert.ok(Object.isFrozen(XCLIENT_ATTRIBUTES));
    assert.ok(Object.isFrozen(XFORWARD_ATTRIBUTES));
  });
});

describe("parseXclient: attributes", () => {
  it("parses every attribute, names in any case", () => {
    assert.deepEqual(
      parseXclient(
        "name=mail.example.com Addr=192.0.2.10 PORT=54321 PROTO=ESMTP HELO=client.example LOGIN=alice DESTADDR=198.51.100.5 destport=25",
      ),
      {
        name: "mail.example.com",
        addr: "192.0.2.10",
        port: 54321,
        proto: "ESMTP",
        helo: "client.example",
        login: "alice",
        destaddr: "198.51.100.5",
        destport: 25,
      },
    );
  });

  it("leaves out the attributes not sent", () => {
    const info = parseXclient("ADDR=192.0.2.1");
    assert.deepEqual(info, { addr: "192.0.2.1" });
    assert.ok(!("name" in info));
  });

  it("returns null for [UNAVAILABLE] and [TEMPUNAVAIL], in any case, for every attribute", () => {
    for (const word of ["[UNAVAILABLE]", "[unavailable]", "[TEMPUNAVAIL]", "[TempUnavail]"]) {
      const all = XCLIENT_ATTRIBUTES.map((name) => `${name}=${word}`).join(" ");
      assert.deepEqual(
        parseXclient(all),
        { name: null, addr: null, port: null, proto: null, helo: null, login: null, destaddr: null, destport: null },
        word,
      );
    }
    // Also when xtext-encoded.
    assert.deepEqual(parseXclient("NAME=+5BUNAVAILABLE+5D"), { name: null });
  });

  it("decodes xtext values", () => {
    assert.deepEqual(parseXclient("LOGIN=alice+40example.com"), { login: "alice@example.com" });
    assert.deepEqual(parseXclient("LOGIN=j+C3+B6rg"), { login: "jörg" });
    assert.deepEqual(parseXclient("HELO=+5B192.0.2.1+5D"), { helo: "[192.0.2.1]" });
    assert.deepEqual(parseXclient("HELO=[IPv6:2001:db8::1]"), { helo: "[IPv6:2001:db8::1]" });
  });

  it("upper-cases PROTO and takes only SMTP and ESMTP", () => {
    assert.deepEqual(parseXclient("PROTO=smtp"), { proto: "SMTP" });
    assert.deepEqual(parseXclient("PROTO=Esmtp"), { proto: "ESMTP" });
    for (const bad of ["LMTP", "ESMTPS", "SMTP2", "QMQP"]) {
      refuses(() => parseXclient(`PROTO=${bad}`), `Bad PROTO syntax: ${bad}`);
    }
  });
});

describe("parseXclient: ADDR and DESTADDR", () => {
  it("takes IPv4", () => {
    assert.deepEqual(parseXclient("ADDR=192.0.2.1 DESTADDR=10.0.0.25"), { addr: "192.0.2.1", destaddr: "10.0.0.25" });
  });

  it("takes IPv6 after IPV6: in any case, returned canonical", () => {
    assert.deepEqual(parseXclient("ADDR=IPV6:2001:db8::1"), { addr: "2001:db8::1" });
    assert.deepEqual(parseXclient("ADDR=ipv6:2001:DB8:0:0:0:0:0:1"), { addr: "2001:db8::1" });
    assert.deepEqual(parseXclient("ADDR=IPv6:::1"), { addr: "::1" });
    assert.deepEqual(parseXclient("DESTADDR=IPV6:fe80::1:2"), { destaddr: "fe80::1:2" });
  });

  it("turns v4-mapped IPv6 into IPv4, with or without the prefix", () => {
    assert.deepEqual(parseXclient("ADDR=IPV6:::ffff:192.0.2.1"), { addr: "192.0.2.1" });
    assert.deepEqual(parseXclient("ADDR=IPV6:::FFFF:c000:0201"), { addr: "192.0.2.1" });
    assert.deepEqual(parseXclient("ADDR=::ffff:192.0.2.1"), { addr: "192.0.2.1" });
  });

  it("takes a bare IPv6 address too, as Postfix does", () => {
    assert.deepEqual(parseXclient("ADDR=2001:db8::1"), { addr: "2001:db8::1" });
  });

  it("takes the address xtext-encoded", () => {
    assert.deepEqual(parseXclient("ADDR=IPV6+3A+32001:db8::1"), { addr: "2001:db8::1" });
    assert.deepEqual(parseXclient(`ADDR=${encodeXtext("IPV6:2001:db8::1")}`), { addr: "2001:db8::1" });
  });

  it("refuses what is not an IP address, naming the value", () => {
    for (
      const bad of [
        "example.com",
        "192.0.2",
        "192.0.2.256",
        "010.0.0.1",
        "[192.0.2.1]",
        "IPV6:[2001:db8::1]",
        "IPV6:2001:db8::1%eth0",
        "IPV6:2001:db8:::1",
        "IPV6:",
        "IPV4:192.0.2.1",
        "2001:db8::g",
      ]
    ) {
      refuses(() => parseXclient(`ADDR=${bad}`), `Bad ADDR syntax: ${bad}`, /not an IP address/);
    }
    refuses(() => parseXclient("DESTADDR=nowhere"), "Bad DESTADDR syntax: nowhere");
  });

  it("refuses IPV6: before an IPv4 address", () => {
    refuses(() => parseXclient("ADDR=IPV6:192.0.2.1"), "Bad ADDR syntax: IPV6:192.0.2.1", /IPV6: prefix/);
  });
});

describe("parseXclient: PORT and DESTPORT", () => {
  it("takes decimal 0..65535", () => {
    assert.deepEqual(parseXclient("PORT=0 DESTPORT=65535"), { port: 0, destport: 65535 });
    assert.deepEqual(parseXclient("PORT=00025"), { port: 25 });
  });

  it("refuses anything else", () => {
    for (const bad of ["65536", "99999", "-1", "+2B1", "1e3", "0x19", "123456", "25a", "+20+32+35"]) {
      assert.throws(() => parseXclient(`PORT=${bad}`), SmtpdException, bad);
    }
    refuses(() => parseXclient("PORT=65536"), "Bad PORT syntax: 65536", /0\.\.65535/);
    refuses(() => parseXclient("DESTPORT=x"), "Bad DESTPORT syntax: x");
    refuses(() => parseXclient("PORT=+2B1"), "Bad PORT syntax: +1");
  });
});

describe("parseXclient: NAME and HELO", () => {
  it("takes host names: letters, digits, inner hyphens, underscores, one label", () => {
    for (const name of ["mail.example.com", "MX-1.Example.COM", "localhost", "host_1.example", "1.example", "a"]) {
      assert.deepEqual(parseXclient(`NAME=${name}`), { name }, name);
    }
    const longest = [..."abcd"].map((c) => c.repeat(63)).join(".");
    assert.deepEqual(parseXclient(`NAME=${longest}`), { name: longest });
  });

  it("refuses what is not a host name, and addresses", () => {
    for (
      const bad of [
        "-mail.example.com",
        "mail-.example.com",
        "mail..example.com",
        ".example.com",
        "mail.example.com.",
        "mail!.example.com",
        "192.0.2.1",
        "12345",
        "[192.0.2.1]",
        "IPV6:2001:db8::1",
        "a".repeat(64) + ".example",
      ]
    ) {
      refuses(() => parseXclient(`NAME=${bad}`), `Bad NAME syntax: ${bad}`, /not a valid host name/, bad);
    }
    refuses(() => parseXclient("NAME=m+C3+A9l.example"), "Bad NAME syntax: m?l.example");
  });

  it("takes a HELO of up to 255 characters (the value limit), any printable text", () => {
    assert.deepEqual(parseXclient("HELO=" + "h".repeat(255)), { helo: "h".repeat(255) });
    assert.deepEqual(parseXclient("HELO=not+20a+20name"), { helo: "not a name" });
    refuses(() => parseXclient("HELO=" + "h".repeat(256)), TOO_LONG);
  });
});

describe("parseXclient: injection and decoding errors", () => {
  it("refuses an injected CRLF (+0D+0A) in any value, the reply showing it as ??", () => {
    refuses(
      () => parseXclient("HELO=evil+0D+0AReceived:+20forged"),
      "Bad HELO syntax: evil??Received: forged",
      /control character/,
    );
    refuses(() => parseXclient("LOGIN=alice+0Aroot"), "Bad LOGIN syntax: alice?root", /control character/);
    refuses(() => parseXclient("NAME=a+0D"), "Bad NAME syntax: a?", /control character/);
  });

  it("refuses NUL, TAB, DEL, C1 controls and Unicode line separators", () => {
    for (const esc of ["+00", "+09", "+7F", "+C2+85", "+E2+80+A8", "+E2+80+A9"]) {
      assert.throws(() => parseXclient(`LOGIN=a${esc}b`), SmtpdException, esc);
    }
  });

  it("refuses bad xtext: +, +A, +GG, raw non-ASCII, echoing the value as sent", () => {
    refuses(() => parseXclient("HELO=a+"), "Bad HELO syntax: a+", /two hex digits/);
    refuses(() => parseXclient("HELO=a+A"), "Bad HELO syntax: a+A", /two hex digits/);
    refuses(() => parseXclient("LOGIN=+GG"), "Bad LOGIN syntax: +GG", /two hex digits/);
    refuses(() => parseXclient("LOGIN=jörg"), "Bad LOGIN syntax: j?rg", /non-ASCII/);
    refuses(() => parseXclient("LOGIN=a=b"), "Bad LOGIN syntax: a=b", /raw "="/);
    refuses(() => parseXclient("LOGIN=a\tb"), "Bad LOGIN syntax: a?b", /control character 0x09/);
  });
});

describe("parseXclient: command syntax", () => {
  it("refuses no attributes", () => {
    refuses(() => parseXclient(""), XCLIENT_SYNTAX);
    refuses(() => parseXclient("   "), XCLIENT_SYNTAX);
  });

  it("refuses an item without =, with an empty name or an empty value", () => {
    for (const bad of ["NAME", "NAME=", "=x", "=", "ADDR=192.0.2.1 NAME", "ADDR=192.0.2.1 PORT="]) {
      refuses(() => parseXclient(bad), EXPECTED, undefined, bad);
    }
  });

  it("wants single spaces between the pairs", () => {
    refuses(() => parseXclient("NAME=a.example  ADDR=192.0.2.1"), EXPECTED);
    refuses(() => parseXclient(" NAME=a.example"), EXPECTED);
  });

  it("refuses values over 255 characters as sent, before decoding", () => {
    refuses(() => parseXclient("LOGIN=" + "a".repeat(256)), TOO_LONG);
    // 86 escapes = 258 characters as sent, 86 once decoded.
    refuses(() => parseXclient("LOGIN=" + "+41".repeat(86)), TOO_LONG);
    assert.deepEqual(parseXclient("LOGIN=" + "+41".repeat(85)), { login: "A".repeat(85) });
  });

  it("refuses unknown names (REVERSE_NAME, XFORWARD's, made up), echoing the name as sent", () => {
    for (const bad of ["REVERSE_NAME", "IDENT", "SOURCE", "FOO", "name2", "Reverse_Name"]) {
      refuses(() => parseXclient(`${bad}=x`), `Bad XCLIENT attribute name: ${bad}`, undefined, bad);
    }
    refuses(() => parseXclient("NÄME=x"), "Bad XCLIENT attribute name: N?ME");
  });

  it("refuses an attribute named twice in one command", () => {
    refuses(
      () => parseXclient("ADDR=192.0.2.1 addr=192.0.2.2"),
      "Bad XCLIENT attribute name: addr",
      /ADDR sent twice/,
    );
  });

  it("checks the pairs in order: the first bad one is reported", () => {
    refuses(() => parseXclient("PORT=x ADDR=y"), "Bad PORT syntax: x");
    refuses(() => parseXclient("FOO=1 PORT=x"), "Bad XCLIENT attribute name: FOO");
  });
});

describe("parseXforward", () => {
  it("parses every attribute, names in any case", () => {
    assert.deepEqual(
      parseXforward(
        "NAME=client.example addr=192.0.2.7 PORT=40000 PROTO=ESMTP HELO=client.example IDENT=4Bv2Lq0x1Zz1 SOURCE=REMOTE",
      ),
      {
        name: "client.example",
        addr: "192.0.2.7",
        port: 40000,
        proto: "ESMTP",
        helo: "client.example",
        ident: "4Bv2Lq0x1Zz1",
        source: "REMOTE",
      },
    );
  });

  it("returns only the attributes sent, null for [UNAVAILABLE] and [TEMPUNAVAIL]", () => {
    assert.deepEqual(parseXforward("IDENT=abc"), { ident: "abc" });
    assert.deepEqual(
      parseXforward(XFORWARD_ATTRIBUTES.map((name) => `${name}=[unavailable]`).join(" ")),
      { name: null, addr: null, port: null, proto: null, helo: null, ident: null, source: null },
    );
    assert.deepEqual(parseXforward("NAME=[TEMPUNAVAIL]"), { name: null });
  });

  it("takes any PROTO of up to 64 printable characters, as sent", () => {
    assert.deepEqual(parseXforward("PROTO=QMQP"), { proto: "QMQP" });
    assert.deepEqual(parseXforward("PROTO=esmtpsa"), { proto: "esmtpsa" });
    assert.deepEqual(parseXforward("PROTO=" + "P".repeat(64)), { proto: "P".repeat(64) });
    refuses(() => parseXforward("PROTO=" + "P".repeat(65)), `Bad PROTO syntax: ${"P".repeat(65)}`, /at most 64/);
    refuses(() => parseXforward("PROTO=a+20b"), "Bad PROTO syntax: a b");
  });

  it("upper-cases SOURCE and takes only LOCAL and REMOTE", () => {
    assert.deepEqual(parseXforward("SOURCE=local"), { source: "LOCAL" });
    assert.deepEqual(parseXforward("SOURCE=Remote"), { source: "REMOTE" });
    refuses(() => parseXforward("SOURCE=elsewhere"), "Bad SOURCE syntax: elsewhere", /LOCAL or REMOTE/);
  });

  it("checks ADDR like XCLIENT: IPV6: prefix, v4-mapped to IPv4, a real parser", () => {
    assert.deepEqual(parseXforward("ADDR=IPV6:2001:DB8::7"), { addr: "2001:db8::7" });
    assert.deepEqual(parseXforward("ADDR=ipv6:::ffff:192.0.2.7"), { addr: "192.0.2.7" });
    refuses(() => parseXforward("ADDR=999.0.0.1"), "Bad ADDR syntax: 999.0.0.1");
  });

  it("checks NAME as a host name and PORT as 0..65535", () => {
    refuses(() => parseXforward("NAME=bad_name-"), "Bad NAME syntax: bad_name-");
    refuses(() => parseXforward("PORT=70000"), "Bad PORT syntax: 70000");
  });

  it("refuses IDENT with a space or a control", () => {
    refuses(() => parseXforward("IDENT=a+20b"), "Bad IDENT syntax: a b");
    refuses(() => parseXforward("IDENT=a+0D+0Ab"), "Bad IDENT syntax: a??b", /control character/);
  });

  it("refuses an injected CRLF in HELO", () => {
    refuses(() => parseXforward("HELO=x+0D+0AReceived:"), "Bad HELO syntax: x??Received:");
  });

  it("uses XFORWARD in its texts, and refuses XCLIENT-only names", () => {
    refuses(() => parseXforward(""), XFORWARD_SYNTAX);
    refuses(() => parseXforward("NAME"), EXPECTED);
    refuses(() => parseXforward("IDENT=" + "i".repeat(256)), TOO_LONG);
    for (const bad of ["LOGIN", "DESTADDR", "DESTPORT", "REVERSE_NAME"]) {
      refuses(() => parseXforward(`${bad}=x`), `Bad XFORWARD attribute name: ${bad}`);
    }
    refuses(() => parseXforward("IDENT=a IDENT=b"), "Bad XFORWARD attribute name: IDENT", /sent twice/);
  });
});
