#!/usr/bin/env bash
# An approach whose supports() refuses the model (DTR on the tiny net, which
# has no batch normalisation) gives UNADAPTABLE fix rows with the reason, and
# its robustness job is UNADAPTABLE with that reason too (not a FAILURE):
# the run exits 0 and the tables carry the reason.
source "$(dirname "$0")/lib.sh"

mkexp exp.yaml 's/^  - approach: noop/  - approach: dtr\n  - approach: noop/' 's/^seeds: .*/seeds: [1, 2]/'
out=$(outdir_of exp.yaml)
run_np 2 run exp.yaml 2> run.txt || fail "the run failed: $(tail -5 run.txt)"
$PY - "$out/ledger.tsv" "$out/raw.csv" <<'PY' || fail "outcomes"
import csv, sys
recs = [dict(f.split("=", 1) for f in l.rstrip("\n").split("\t") if "=" in f)
        for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
rob = {r["approach"]: r for r in recs if r.get("kind") == "robustness"}
assert rob["dtr"]["outcome"] == "UNADAPTABLE", rob["dtr"]
assert "batch normalisation" in rob["dtr"]["reason"], rob["dtr"]["reason"]
assert rob["noop"]["outcome"] == "OK", rob["noop"]
rows = [r for r in csv.DictReader(l for l in open(sys.argv[2]) if not l.startswith("#"))]
dtr = [r for r in rows if r["approach"] == "dtr"]
assert len(dtr) == 2 and all(r["outcome"] == "UNADAPTABLE" and "batch normalisation" in r["reason"] for r in dtr), dtr
print("dtr:", dtr[0]["reason"][:80], "| robustness:", rob["dtr"]["reason"][:80])
PY
pass "UNADAPTABLE fix runs make an UNADAPTABLE robustness job, with the reason"
