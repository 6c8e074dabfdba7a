#!/usr/bin/python3
# Verifies every DKIM-Signature of a message with Debian's python3-dkim (dkimpy),
# looking keys up on a test DNS server on 127.0.0.1:PORT (dnspython, no system resolver).
# Usage: verify_pydkim.py MESSAGE_FILE DNS_PORT
# Prints one line per signature ("pass|fail a=... d=... s=..."); exit 0 iff there is at
# least one signature and all pass, 1 if any fails, 2 on usage or setup errors.
import sys

import dkim
import dns.resolver
import dns.rdatatype


def main():
    if len(sys.argv) != 3:
        print("usage: verify_pydkim.py MESSAGE_FILE DNS_PORT", file=sys.stderr)
        return 2
    with open(sys.argv[1], "rb") as f:
        message = f.read()
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = int(sys.argv[2])
    resolver.lifetime = 5

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode("ascii")
        try:
            answer = resolver.resolve(name, dns.rdatatype.TXT, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return None
        for rrset in answer.response.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                return b"".join(list(rrset.items)[0].strings)
        return None

    d = dkim.DKIM(message)
    count = sum(1 for name, _ in d.headers if name.lower() == b"dkim-signature")
    if count == 0:
        print("no DKIM-Signature")
        return 1
    ok = True
    for idx in range(count):
        checker = dkim.DKIM(message)
        try:
            passed = checker.verify(idx=idx, dnsfunc=dnsfunc)
            why = ""
        except dkim.DKIMException as e:
            passed = False
            why = str(e)
        sig = checker.signature_fields if hasattr(checker, "signature_fields") else {}
        desc = " ".join(
            "%s=%s" % (k.decode(), sig[k].decode()) for k in (b"a", b"d", b"s") if k in sig)
        print("%s %s %s" % ("pass" if passed else "fail", desc, why))
        ok = ok and passed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
