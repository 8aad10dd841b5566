#!/usr/bin/env bash
# Two runs started on one results directory: the second refuses (exit 2)
# with a line naming the first (its pid and host, from the run lock), and
# writes nothing; once the first is done, a rerun finds nothing to do.
source "$(dirname "$0")/lib.sh"

mkexp exp.yaml
rundir .
out=$(outdir_of exp.yaml)
# each noop job sleeps 2 s: the first run holds the lock for a few seconds
FG_TEST_SLEEP_MS=2000 "$FG_EXE" run exp.yaml 2> run1.txt &
first=$!
for _ in $(seq 1 200); do
    grep -q "^pid=$first " "$out/.run.lock" 2> /dev/null && break
    sleep 0.05
done
grep -q "^pid=$first " "$out/.run.lock" || fail "the first run (pid $first) never recorded itself in $out/.run.lock"
holder=$(sed -n 's/^pid=\([0-9]*\) .*/\1/p' "$out/.run.lock")
kill -0 "$holder" 2> /dev/null || fail "the lock names pid $holder, which is not running"
cp "$out/ledger.tsv" before.tsv 2> /dev/null || : > before.tsv
rc=0
"$FG_EXE" run exp.yaml 2> run2.txt || rc=$?
[ "$rc" = 2 ] || fail "the second run exited $rc, expected 2: $(cat run2.txt)"
grep -q "held by another fixgrid run on this output directory (pid=$holder host=$(hostname) " run2.txt ||
    fail "the refusal does not name the first run: $(cat run2.txt)"
[ "$(wc -l < run2.txt)" -le 2 ] || fail "more than one clear line: $(cat run2.txt)"
wait "$first" || fail "the first run failed: $(cat run1.txt)"
$PY "$CHECK" intact "$out/ledger.tsv"
# the second run added nothing of its own: every record is the first run's
[ "$(grep -c 'kind=fix' "$out/ledger.tsv")" = 3 ] || fail "expected 3 fix records"
"$FG_EXE" run exp.yaml 2> run3.txt || fail "rerun after the first finished: $(cat run3.txt)"
grep -q "0 jobs to run" run3.txt || fail "the rerun ran jobs: $(cat run3.txt)"
pass "a second run on one results directory refuses, naming pid $holder"
