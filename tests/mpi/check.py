#!/usr/bin/python3
"""Checks for the runner's tests (stdlib only).

  check.py once LEDGER KEYS_FILE      every key exactly once, nothing else but
                                      experiment records, every line complete
                                      and its crc valid
  check.py intact LEDGER              lines complete (no torn tail) and crc valid
  check.py tables_ok DIR              every CSV table in DIR is rectangular
  check.py tables DIR_A DIR_B         the CSV tables of two runs are equal, with
                                      every column whose name mentions time dropped
  check.py outcomes LEDGER            print "outcome kind count" per outcome and job kind
  check.py field LEDGER FIELD VALUE   exit 1 unless every fix record has FIELD
                                      containing VALUE
"""
import csv
import glob
import io
import os
import sys

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


def fg_hash64(data: bytes) -> int:
    """util's fg_hash64: FNV-1a 64 and a murmur-style final avalanche."""
    m = 0xFFFFFFFFFFFFFFFF
    h = FNV_OFFSET
    for b in data:
        h ^= b
        h = (h * FNV_PRIME) & m
    h = ((h ^ (h >> 33)) * 0xFF51AFD7ED558CCD) & m
    h = ((h ^ (h >> 33)) * 0xC4CEB9FE1A85EC53) & m
    return h ^ (h >> 33)


def records(path):
    """Parsed lines of a ledger; raises on a torn tail or a bad crc."""
    with open(path, "rb") as f:
        data = f.read()
    if data and not data.endswith(b"\n"):
        raise SystemExit(f"{path}: torn last line: {data.splitlines()[-1][:80]!r}")
    out = []
    for n, line in enumerate(data.splitlines(), 1):
        text, sep, crc = line.rpartition(b"\tcrc=")
        if not sep:
            raise SystemExit(f"{path}:{n}: no crc field")
        if f"{fg_hash64(text):016x}" != crc.decode():
            raise SystemExit(f"{path}:{n}: crc mismatch")
        fields = dict(kv.split("=", 1) for kv in text.decode().split("\t") if "=" in kv)
        out.append(fields)
    return out


def cmd_once(ledger, keys_file):
    want = [k for k in open(keys_file).read().split() if k]
    if not want:
        raise SystemExit("no job keys to check")
    seen = {}
    for r in records(ledger):
        if r.get("kind") == "experiment":
            continue
        seen[r["key"]] = seen.get(r["key"], 0) + 1
    missing = [k for k in want if k not in seen]
    dup = [k for k, c in seen.items() if c != 1]
    extra = [k for k in seen if k not in set(want)]
    if missing or dup or extra:
        raise SystemExit(f"{ledger}: missing {missing}, duplicated {dup}, unexpected {extra}")
    print(f"{ledger}: {len(want)} jobs, each exactly once")


def table(path):
    """Rows of a CSV table; '#' lines (provenance comments) are skipped."""
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if not (r and r[0].startswith("#"))]
    if not rows:
        raise SystemExit(f"{path}: empty table")
    head = rows[0]
    for i, r in enumerate(rows[1:], 2):
        if len(r) != len(head):
            raise SystemExit(f"{path}:{i}: {len(r)} fields, header has {len(head)}")
    keep = [i for i, h in enumerate(head) if "time" not in h.lower()]
    return [[r[i] for i in keep] for r in rows]


def cmd_tables(a, b):
    ta = sorted(os.path.basename(p) for p in glob.glob(os.path.join(a, "*.csv")))
    tb = sorted(os.path.basename(p) for p in glob.glob(os.path.join(b, "*.csv")))
    if not ta or ta != tb:
        raise SystemExit(f"table sets differ: {ta} vs {tb}")
    for name in ta:
        x, y = table(os.path.join(a, name)), table(os.path.join(b, name))
        if x != y:
            for i, (rx, ry) in enumerate(zip(x, y)):
                if rx != ry:
                    raise SystemExit(f"{name}: row {i + 1} differs:\n  {rx}\n  {ry}")
            raise SystemExit(f"{name}: {len(x)} vs {len(y)} rows")
    print(f"{len(ta)} tables equal (time columns aside): {', '.join(ta)}")


def cmd_outcomes(ledger):
    count = {}
    for r in records(ledger):
        if r.get("kind") != "experiment":
            k = (r.get("outcome", "?"), r.get("kind", "?"))
            count[k] = count.get(k, 0) + 1
    for k in sorted(count):
        print(k[0], k[1], count[k])


def cmd_field(ledger, field, value):
    fix = [r for r in records(ledger) if r.get("kind") == "fix"]
    if not fix:
        raise SystemExit("no fix records")
    bad = [r["key"] for r in fix if value not in r.get(field, "")]
    if bad:
        raise SystemExit(f"{len(bad)} fix records lack {field}~{value!r}: {bad}")
    print(f"{len(fix)} fix records have {field} containing {value!r}")


def cmd_intact(ledger):
    if os.path.exists(ledger):
        n = len(records(ledger))
        print(f"{ledger}: {n} complete lines")


def cmd_tables_ok(d):
    for p in sorted(glob.glob(os.path.join(d, "*.csv"))):
        table(p)


if __name__ == "__main__":
    cmds = {"once": cmd_once, "tables": cmd_tables, "outcomes": cmd_outcomes,
            "field": cmd_field, "intact": cmd_intact, "tables_ok": cmd_tables_ok}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        raise SystemExit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])
