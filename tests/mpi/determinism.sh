#!/usr/bin/env bash
# The same experiment gives identical tables (time columns aside) with
# mpirun -np 1, 2 and 3; each ledger holds every job exactly once.
source "$(dirname "$0")/lib.sh"

mkexp exp.yaml
all_keys exp.yaml > keys.txt
[ -s keys.txt ] || fail "dry run listed no jobs"
out=$(outdir_of exp.yaml)
for n in 1 2 3; do
    rundir "np$n"
    (cd "np$n" && run_np "$n" run ../exp.yaml --progress 5) || fail "-np $n run failed"
    $PY "$CHECK" once "np$n/$out/ledger.tsv" keys.txt || fail "-np $n ledger"
done
$PY "$CHECK" tables "np1/$out" "np2/$out" || fail "tables -np 1 vs 2"
$PY "$CHECK" tables "np1/$out" "np3/$out" || fail "tables -np 1 vs 3"
pass "identical tables with -np 1, 2, 3"
