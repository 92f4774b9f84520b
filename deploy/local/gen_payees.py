#!/usr/bin/env python3
"""gen_payees.py - a realistic payee batch file and a change file (stdlib only).

Used by `make demo` (deploy/local/demo.sh) and the fault suite (tests/fault/).

  gen_payees.py --rows N --changes M --prefix P --seed S BATCH.csv CHANGE.csv

The batch file (CSV, header, one payee per record) carries names with commas,
quotes, line breaks and non-Latin scripts, and plants a small share of
  - format errors (ingest refuses the line): an amount that is no decimal
    ("ten"), a status that is no symbol ("SLEEPING"), a date that is no date
    ("yesterday"), an empty business key;
  - rule breaks (the validator sends them to the DLQ): a routing number whose
    ABA checksum fails, a negative amount.
Every batch row has version 1000000 (a `version` column), so the expected
final state of a key never depends on a file's modification time.

The change file (CSV with an `op` and an `old_key` column) holds updates of
existing keys, updates that move a record to a new key, deletes, new keys,
out-of-order versions (an update older than the batch row, an update older
than a delete of its key, two updates of one key with the newer one first)
and a few bad lines of the same kinds. Versions are 1000001 and up, unique
per key.

Nothing here is the truth the tests check against: tests/fault/fault_check.c
reads these files and computes the expected state on its own.
"""
import argparse
import random
import sys

FIRST = ["Anna", "José", "Zoë", "Иван", "Мария", "王", "李", "佐藤", "محمد", "فاطمة",
         "Γιώργος", "Ελένη", "Søren", "Łukasz", "Nguyễn", "김", "Ola", "O'Brien", "Renée"]
LAST = ["Smith", "Müller", "Петров", "伟", "娜", "花子", "العلي", "Παπαδόπουλος", "Ørsted",
        "Wiśniewska", "Văn An", "민준", "Nordmann", "D'Arcy"]
COMPANY = ["Ltd", "GmbH", "S.A.", "LLC", "株式会社", "ООО", "Inc."]
COUNTRIES = [("US", "USD"), ("GB", "GBP"), ("DE", "EUR"), ("FR", "EUR"), ("JP", "JPY"),
             ("CA", "CAD"), ("IN", "INR"), ("BR", "BRL")]
BULK_VERSION = 1000000


def aba(rng):
    d = [rng.randrange(10) for _ in range(8)]
    s = 3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5])
    d.append((10 - s % 10) % 10)
    return "".join(map(str, d))


def bad_aba(rng):
    r = aba(rng)
    return r[:8] + str((int(r[8]) + 1 + rng.randrange(9)) % 10)


def name(rng, i):
    k = i % 7
    n = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    if k == 1:
        n = f"{n}, {rng.choice(COMPANY)}"  # a comma
    elif k == 2:
        n = f'{n} "the {rng.choice(["best", "first", "één"])}"'  # quotes
    elif k == 3:
        n = f"{n}\nc/o {rng.choice(LAST)}"  # a line break inside the field
    return n


def csv_cell(s):
    if any(c in s for c in ',"\n\r'):
        return '"' + s.replace('"', '""') + '"'
    return s


POOL = {}


def pools(rng):
    """Names and routing numbers drawn once (a million draws of each is slow)."""
    if not POOL:
        POOL["names"] = [name(rng, i) for i in range(7 * 1000)]
        POOL["aba"] = [aba(rng) for _ in range(4096)]
    return POOL


def payee(rng, key, i, amount_scale=1):
    country, currency = COUNTRIES[i % len(COUNTRIES)]
    pool = pools(rng)
    r = rng.getrandbits(48)
    return {
        "payee_id": key,
        "name": pool["names"][(r & 0x3ff) * 7 % 7000 + i % 7],
        "account_number": str(10000000 + (r >> 12) % 90000000),
        "routing_number": pool["aba"][(r >> 10) & 4095],
        "country": country,
        "currency": currency,
        "email": "" if i % 5 == 0 else f"p{i}@example.com",
        "amount_limit": f"{1 + (r >> 20) % 999999}.{(r >> 40) % 100:02d}",
        "status": ["ACTIVE", "ACTIVE", "ACTIVE", "INACTIVE", "BLOCKED"][i % 5],
        "updated_at": f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i // 7) % 60:02d}Z",
    }


FIELDS = ["payee_id", "name", "account_number", "routing_number", "country", "currency",
          "email", "amount_limit", "status", "updated_at"]


def plant(rng, p, kind):
    """Spoil one field; kind: format error or rule break."""
    if kind == "format":
        f = rng.randrange(4)
        if f == 0:
            p["amount_limit"] = "ten"
        elif f == 1:
            p["status"] = "SLEEPING"
        elif f == 2:
            p["updated_at"] = "yesterday"
        else:
            p["payee_id"] = ""
    else:
        if rng.randrange(2):
            p["routing_number"] = bad_aba(rng)
        else:
            p["amount_limit"] = "-" + p["amount_limit"]


def spoil(rng, i, share):
    """Which rows are spoiled: about share of them, half each kind."""
    x = rng.random()
    if x < share / 2:
        return "format"
    if x < share:
        return "rule"
    return None


def write_row(out, cells):
    out.write(",".join(csv_cell(c) for c in cells) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--changes", type=int, default=20000)
    ap.add_argument("--prefix", default="P")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bad-share", type=float, default=0.004)
    ap.add_argument("batch")
    ap.add_argument("change")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    key = lambda i: f"{a.prefix}{i:08d}"

    with open(a.batch, "w", encoding="utf-8", newline="") as out:
        write_row(out, FIELDS + ["version"])
        for i in range(1, a.rows + 1):
            p = payee(rng, key(i), i)
            kind = spoil(rng, i, a.bad_share)
            if kind:
                plant(rng, p, kind)
            write_row(out, [p[f] for f in FIELDS] + [str(BULK_VERSION)])

    # The change file: each of its kinds in turn, on keys of the batch
    # picked without repeats (a key gets at most one kind of story).
    with open(a.change, "w", encoding="utf-8", newline="") as out:
        write_row(out, ["op", "old_key"] + FIELDS + ["version"])
        version = BULK_VERSION
        keys = rng.sample(range(1, a.rows + 1), min(a.rows, a.changes))
        new_key = a.rows
        for n, k in enumerate(keys):
            version += 3
            story = n % 8
            p = payee(rng, key(k), k + n)
            op, old = "UPDATE", ""
            rows = []
            if story in (0, 1):      # a plain update
                rows.append((op, old, p, version))
            elif story == 2:         # moved to a new key
                new_key += 1
                p["payee_id"] = key(new_key)
                rows.append(("UPDATE", key(k), p, version))
            elif story == 3:         # deleted
                rows.append(("DELETE", "", p, version))
            elif story == 4:         # a new key
                new_key += 1
                p["payee_id"] = key(new_key)
                rows.append(("ADD", "", p, version))
            elif story == 5:         # stale: older than the batch row
                rows.append(("UPDATE", "", p, BULK_VERSION - 1 - n))
            elif story == 6:         # deleted, then an older update arrives late
                rows.append(("DELETE", "", p, version))
                q = payee(rng, key(k), k + n + 1)
                rows.append(("UPDATE", "", q, version - 1))
            else:                    # two updates, the newer one first
                rows.append(("UPDATE", "", p, version))
                q = payee(rng, key(k), k + n + 1)
                rows.append(("UPDATE", "", q, version - 1))
            for op, old, r, v in rows:
                kind = spoil(rng, n, a.bad_share * 2)
                if kind and op != "DELETE":
                    plant(rng, r, kind)
                write_row(out, [op, old] + [r[f] for f in FIELDS] + [str(v)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
