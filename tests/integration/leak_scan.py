#!/usr/bin/env python3
"""leak_scan.py - search outputs for secrets and personal data (stdlib only).

Used by tests/integration/secure.sh.

  leak_scan.py --secret FILE... --key FILE... --personal SCHEMA.avsc:DATA.csv...
               -- OUTPUT...

Needles:
  --secret FILE   the whole content of FILE (a password, a token);
  --key FILE      a PEM private key: each of its base64 lines of 32
                  characters or more (any one of them in an output is a
                  piece of the key);
  --personal S:D  the values, in the CSV file D, of the columns that the
                  Avro schema S marks "tb.personal": true (each value
                  whole, each line of a multi-line value, each in its raw
                  form and as JSON escapes it); a value must stand alone
                  (no letter or digit on either side) to count, so an
                  8-digit account number does not match inside a longer
                  number.
Each OUTPUT is read as bytes decoded as UTF-8 (with replacement). Before
anything else the scanner checks itself on a planted text holding one needle
of each kind (the check must be able to fail); then prints one line per
(needle kind, needle source, output) found, and exits 1 if any, 2 on a
broken self-check, 0 when every output is clean.
"""
import csv
import json
import re
import sys


def personal_columns(schema_path):
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    return [fl["name"] for fl in schema.get("fields", []) if fl.get("tb.personal") is True]


def forms(value):
    """The ways a value can be written: raw, and as JSON escapes it."""
    out = {value}
    out.add(json.dumps(value, ensure_ascii=False)[1:-1])
    out.add(json.dumps(value)[1:-1])
    return out


def personal_needles(spec):
    schema_path, data_path = spec.split(":", 1)
    cols = personal_columns(schema_path)
    needles = set()
    with open(data_path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            for c in cols:
                v = (row.get(c) or "").strip()
                if not v:
                    continue
                parts = {v} | {p.strip() for p in v.splitlines() if len(p.strip()) >= 4}
                for p in parts:
                    needles |= forms(p)
    return [(f"personal {data_path.rsplit('/', 1)[-1]}:{','.join(cols)}", n) for n in needles if n]


def key_needles(path):
    out = []
    with open(path, encoding="ascii", errors="replace") as f:
        for line in f:
            line = line.strip()
            if len(line) >= 32 and not line.startswith("-----"):
                out.append((f"private key {path.rsplit('/', 1)[-1]}", line))
    return out


def secret_needle(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        v = f.read().strip()
    return [(f"secret {path.rsplit('/', 1)[-1]}", v)] if v else []


def compile_needle(kind, n):
    if kind.startswith("personal"):
        return re.compile(r"(?<![\w])" + re.escape(n) + r"(?![\w])")
    return re.compile(re.escape(n))


def scan(needles, text):
    return {kind for kind, n, rx in needles if rx.search(text)}


def main(argv):
    secrets, keys, personal, outputs = [], [], [], []
    mode = None
    it = iter(argv)
    for a in it:
        if a == "--":
            outputs = list(it)
            break
        if a in ("--secret", "--key", "--personal"):
            mode = a
            continue
        {"--secret": secrets, "--key": keys, "--personal": personal}[mode].append(a)
    needles = []
    for p in secrets:
        needles += secret_needle(p)
    for p in keys:
        needles += key_needles(p)
    for s in personal:
        needles += personal_needles(s)
    needles = [(k, n, compile_needle(k, n)) for k, n in needles]

    # The self-check: one needle of each kind planted in a text, each found;
    # and a personal value inside a longer word is not.
    firsts = {}
    for k, n, _ in needles:
        firsts.setdefault(k.split(" ", 1)[0], (k, n))
    for kind, given in (("secret", secrets), ("private", keys), ("personal", personal)):
        if given and kind not in firsts:
            print(f"leak_scan: self-check: no needle of kind {kind}")
            return 2
    for k, n in firsts.values():
        if k not in scan(needles, '{"msg":"planted","v":"' + n + '"}'):
            print(f"leak_scan: self-check: {k} planted and not found")
            return 2
        if k.startswith("personal") and k in scan(needles, "x" + n + "9"):
            print(f"leak_scan: self-check: {k} found inside a longer word")
            return 2
    found = 0
    for o in outputs:
        try:
            with open(o, "rb") as f:
                text = f.read().decode("utf-8", errors="replace")
        except OSError as e:
            print(f"leak_scan: {o}: {e.strerror}")
            return 2
        for k in sorted(scan(needles, text)):
            print(f"leak_scan: {k} in {o.rsplit('/', 1)[-1]}")
            found += 1
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
