#!/usr/bin/env bash
# --shard I/N (Slurm arrays): the shards partition the fix jobs (every fix
# job in exactly one shard), each shard runs the prepare jobs it needs and
# writes its own ledger (OUTDIR/shards/I-of-N/); shards run concurrently;
# `fixgrid tables` merges them; an unsharded rerun (the gather step) runs the
# robustness jobs no shard could, and the tables equal an unsharded run's.
source "$(dirname "$0")/lib.sh"

mkexp exp.yaml 's/^seeds:.*/seeds: [1, 2, 3, 4]/'
out=$(outdir_of exp.yaml)
all_keys exp.yaml > keys.txt
"$FG_EXE" run exp.yaml --dry-run --force | awk '$1 == "fix" {print $2}' | sort > fix.txt
N=2
for i in $(seq 0 $((N - 1))); do
    "$FG_EXE" run exp.yaml --dry-run --shard "$i/$N" | awk '$1 == "fix" {print $2}' > "fix$i.txt"
    "$FG_EXE" run exp.yaml --dry-run --shard "$i/$N" | awk '$1 == "prepare"' | grep -q . ||
        fail "shard $i does not run the prepare job its fix jobs need"
done
sort fix[0-9].txt > union.txt
cmp -s union.txt fix.txt || fail "the shards' fix jobs are not a partition: $(diff union.txt fix.txt)"
[ "$(sort -u union.txt | wc -l)" = "$(wc -l < fix.txt)" ] || fail "a fix job is in two shards"

rundir ref
(cd ref && run_np 2 run ../exp.yaml 2> run.txt) || fail "unsharded run failed"

# All shards at once, as an array would run them (one without mpirun: a
# singleton MPI run).
pids=()
for i in $(seq 0 $((N - 1))); do
    if [ "$i" = 0 ]; then
        "$FG_EXE" run exp.yaml --shard "$i/$N" > "shard$i.txt" 2>&1 &
    else
        run_np 1 run exp.yaml --shard "$i/$N" > "shard$i.txt" 2>&1 &
    fi
    pids+=($!)
done
for i in $(seq 0 $((N - 1))); do
    wait "${pids[$i]}" || fail "shard $i failed: $(cat "shard$i.txt")"
    [ -f "$out/shards/$i-of-$N/ledger.tsv" ] || fail "shard $i wrote no ledger of its own"
    $PY "$CHECK" intact "$out/shards/$i-of-$N/ledger.tsv" > /dev/null
done
[ ! -e "$out/ledger.tsv" ] || fail "a shard wrote the main ledger"
# A shard rerun has no fix or prepare job left; only robustness jobs whose
# inputs other shards have now finished.
"$FG_EXE" run exp.yaml --dry-run --shard "1/$N" > again.txt
if awk '$1 == "fix" || $1 == "prepare"' again.txt | grep -q .; then
    fail "a shard rerun would redo work: $(cat again.txt)"
fi

"$FG_EXE" tables "$out" || fail "fixgrid tables (merge) failed"
# The gather step: whatever no shard could run (robustness across shards).
run_np 1 run exp.yaml 2> gather.txt || fail "gather run failed: $(cat gather.txt)"
grep "jobs to run" gather.txt
$PY "$CHECK" once "$out/ledger.tsv" keys.txt || fail "after the merge"
$PY "$CHECK" tables "ref/$out" "$out" || fail "sharded tables differ from unsharded"
# Merging again adds nothing.
"$FG_EXE" tables "$out"
$PY "$CHECK" once "$out/ledger.tsv" keys.txt > /dev/null || fail "a second merge duplicated records"
pass "$N shards partition the grid; merged tables equal the unsharded run's"
