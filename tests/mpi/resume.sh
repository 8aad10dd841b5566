#!/usr/bin/env bash
# Resume is always on: a rerun skips what the ledger holds, --dry-run lists
# the jobs with their cost and writes nothing, --force reruns every job and
# still leaves each result exactly once, `fixgrid tables` rebuilds the tables
# from the ledger alone.
source "$(dirname "$0")/lib.sh"

mkexp exp.yaml
out=$(outdir_of exp.yaml)
all_keys exp.yaml > keys.txt
n=$(wc -l < keys.txt)
[ "$n" -ge 3 ] || fail "expected a few jobs, dry run listed $n"

# The dry run lists every job (kind, key, cost, priority, label) and writes nothing.
"$FG_EXE" run exp.yaml --dry-run > dry.txt
grep -q "^# $n jobs: $n to run, 0 done" dry.txt || fail "dry run header: $(head -2 dry.txt)"
awk '!/^#/ && NR > 3 && $3 + 0 <= 0 {exit 1}' dry.txt || fail "a job without a positive cost"
[ ! -e "$out" ] || fail "the dry run created $out"
! grep -q "data missing" dry.txt || fail "the dry run saw missing data: $(grep 'data missing' dry.txt)"
# With the subject's data folder elsewhere it names the folder and the subject's get: line.
FIXGRID_FMNIST=/nonexistent/fmnist "$FG_EXE" run exp.yaml --dry-run > dry-missing.txt
grep -q "data missing: no folder /nonexistent/fmnist (from \$FIXGRID_FMNIST)" dry-missing.txt ||
    fail "missing data not reported: $(grep '^# subj' dry-missing.txt)"
grep -q "to get it: " dry-missing.txt || fail "no get line for the missing data"

run_np 2 run exp.yaml 2> run1.txt || fail "first run failed: $(cat run1.txt)"
$PY "$CHECK" once "$out/ledger.tsv" keys.txt
cp "$out/ledger.tsv" ledger1.tsv
"$FG_EXE" run exp.yaml --dry-run | grep "^# $n jobs: 0 to run, $n done" > /dev/null || fail "dry run after the run"

# A rerun runs nothing and leaves the ledger as it was.
run_np 2 run exp.yaml 2> run2.txt || fail "rerun failed"
grep -q "0 jobs to run" run2.txt || fail "rerun ran jobs: $(cat run2.txt)"
cmp -s ledger1.tsv "$out/ledger.tsv" || fail "the rerun changed the ledger"

# Lose the last job record (as if killed before it was written): a rerun
# runs exactly that one.
head -n -1 ledger1.tsv > "$out/ledger.tsv"
run_np 1 run exp.yaml 2> run3.txt || fail "partial rerun failed"
grep -q "1 jobs to run" run3.txt || fail "expected 1 job to rerun: $(grep 'jobs to run' run3.txt)"
$PY "$CHECK" once "$out/ledger.tsv" keys.txt

# --force reruns all and replaces the records (still exactly once each).
run_np 2 run exp.yaml --force 2> run4.txt || fail "--force failed"
grep -q "$n jobs to run" run4.txt || fail "--force did not rerun all: $(grep 'jobs to run' run4.txt)"
$PY "$CHECK" once "$out/ledger.tsv" keys.txt

# A fixed model gone from the store while its robustness job is still to run
# (a purged scratch store, a ledger carried to a new machine): the fix job
# runs again, its old record is dropped, and the attack takes all three models.
grep -v $'\tkind=robustness\t' "$out/ledger.tsv" > lost.tsv || true
[ "$(wc -l < lost.tsv)" -lt "$(wc -l < "$out/ledger.tsv")" ] || fail "no robustness record to drop"
cp lost.tsv "$out/ledger.tsv"
gone=$(ls store/*/fixed-*.safetensors | head -1)
[ -n "$gone" ] || fail "no fixed model in the store"
rm -f "$gone" "$gone.sum"
run_np 2 run exp.yaml 2> run4b.txt || fail "rerun after a lost model failed: $(cat run4b.txt)"
grep -q "is gone; the fix job runs again" run4b.txt || fail "the lost model was not noticed: $(cat run4b.txt)"
grep -q "2 jobs to run" run4b.txt || fail "expected the fix and robustness jobs: $(grep 'jobs to run' run4b.txt)"
[ -e "$gone" ] || fail "the fix job did not store $gone again"
$PY "$CHECK" once "$out/ledger.tsv" keys.txt

# The tables come from the ledger alone.
mkdir copy
cp "$out/ledger.tsv" copy/
"$FG_EXE" tables copy || fail "fixgrid tables failed"
$PY "$CHECK" tables "$out" copy
# --reuse: another experiment over the same store takes the records of its
# jobs from this ledger. One with a fourth seed and a second approach runs
# only the jobs the first lacks (robustness keys name the seed set, so those
# rerun); its ledger then holds every key once, and a
# rerun needs no --reuse.
mkexp exp2.yaml 's/^name: .*/name: tiny-noop-2/' 's#^output: .*#output: results/tiny-noop-2#' \
    's/^seeds: .*/seeds: [1, 2, 3, 4]/' 's/^  - approach: noop/  - approach: noop\n  - approach: finetune/'
out2=$(outdir_of exp2.yaml)
all_keys exp2.yaml > keys2.txt
n2=$(wc -l < keys2.txt)
shared=$(sort keys.txt keys2.txt | uniq -d | wc -l)
[ "$shared" -ge 4 ] && [ "$n2" -gt "$shared" ] || fail "expected shared and new keys: $shared of $n2"
"$FG_EXE" run exp2.yaml --reuse "$out" --dry-run > dry2.txt
grep -q "^# $n2 jobs: $((n2 - shared)) to run, $shared done" dry2.txt || fail "reuse dry run: $(sed -n 2p dry2.txt)"
[ ! -e "$out2" ] || fail "the dry run with --reuse created $out2"
run_np 2 run exp2.yaml --reuse "$out" 2> run5.txt || fail "--reuse run failed: $(cat run5.txt)"
grep -q "reused $shared records from $out" run5.txt || fail "reuse count: $(grep -i reuse run5.txt)"
grep -q "$((n2 - shared)) jobs to run" run5.txt || fail "--reuse ran: $(grep 'jobs to run' run5.txt)"
$PY "$CHECK" once "$out2/ledger.tsv" keys2.txt
run_np 1 run exp2.yaml 2> run6.txt || fail "rerun of exp2 failed"
grep -q "0 jobs to run" run6.txt || fail "exp2's ledger is not self-contained: $(grep 'jobs to run' run6.txt)"
expect_rc 2 "$FG_EXE" run exp2.yaml --reuse "$out" --force
expect_rc 2 "$FG_EXE" run exp2.yaml --reuse /nonexistent/results
pass "resume, --dry-run, --force, --reuse and fixgrid tables"
