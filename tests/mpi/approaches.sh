#!/usr/bin/env bash
# AR, CARE, NR and AP end to end through the runner on the tiny subject: each
# fixed model repairs some of f0's test-split errors (RR > 0), and the fixed
# models (bytes) and tables (time columns aside) are identical with -np 1 and 2.
source "$(dirname "$0")/lib.sh"
FIXTURE="$FG_SOURCE_DIR/tests/fixtures/experiments/tiny-approaches.yaml"
MPI_TIMEOUT=400

mkexp exp.yaml
out=$(outdir_of exp.yaml)
for n in 1 2; do
    mkdir -p "np$n/store"  # a store of its own: the fixed models are compared
    (cd "np$n" && run_np "$n" run ../exp.yaml --progress 30) || fail "-np $n run failed"
    (cd "np$n" && find store -name 'fixed-*.safetensors' -exec sha256sum {} + | sort -k2) > "np$n.sums"
done
[ "$(wc -l < np1.sums)" = 8 ] || fail "expected 8 fixed models, got $(wc -l < np1.sums): $(cat np1.sums)"
diff np1.sums np2.sums || fail "fixed models differ between -np 1 and -np 2"
$PY "$CHECK" tables "np1/$out" "np2/$out" || fail "tables -np 1 vs 2"
$PY - "np1/$out/raw.csv" <<'PY' || fail "RR"
import csv, sys
rows = [r for r in csv.DictReader(l for l in open(sys.argv[1]) if not l.startswith("#"))]
seen = set()
for r in rows:
    assert r["outcome"] == "OK", f"{r['approach']} seed {r['seed']}: {r['outcome']} {r['reason']}"
    assert float(r["rr"]) > 0, f"{r['approach']} seed {r['seed']}: RR {r['rr']}"
    assert r["asr"] != "", f"{r['approach']}: no ASR"
    seen.add(r["approach"])
    print(f"{r['approach']:10s} seed {r['seed']}: acc {r['acc']} RR {r['rr']} NFR {r['nfr']} ASR {r['asr']} variant {r['variant']}")
assert seen == {"arachne", "care", "neurecover", "apricot"}, seen
PY
pass "AR, CARE, NR, AP repair tiny (RR > 0) identically with -np 1 and 2"
