#!/usr/bin/env bash
# The scheduler's overhead per job, on a grid of many noop jobs. With -np 1
# rank 0 runs one job process at a time, so the time no job process lived is
# the scheduler's whole cost (dispatch, polling latency, record checks, the
# fsync'd ledger append); the runner logs it per job. Also printed: the job
# processes' own lifetime (spawn, exec, experiment load, the job) and the
# wall time per job with -np 1 and -np 2 (the latter shows the overlap).
# Fails only if the overhead is absurd (> 200 ms per job).
source "$(dirname "$0")/lib.sh"

seeds=$(seq -s, 1 "${FG_OVERHEAD_SEEDS:-20}")
mkexp exp.yaml "s/^seeds:.*/seeds: [$seeds]/"
jobs=$(all_keys exp.yaml | wc -l)
now() { date +%s.%N; }
for n in 1 2; do
    rundir "np$n"
    t0=$(now)
    (cd "np$n" && run_np "$n" run ../exp.yaml 2> run.txt) || fail "-np $n run failed"
    t1=$(now)
    t2=$(now)
    (cd "np$n" && run_np "$n" run ../exp.yaml 2> rerun.txt) || fail "-np $n rerun failed"
    t3=$(now)
    line=$(grep "rank 0 ran" "np$n/run.txt") || fail "no overhead line"
    echo "-np $n: $jobs jobs in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}') s" \
        "(rerun with nothing to do: $(awk -v a="$t2" -v b="$t3" 'BEGIN {printf "%.2f", b - a}') s);" \
        "${line#*info: }"
done
between=$(sed -n 's/.* \([0-9.]*\) ms per job between them/\1/p' np1/run.txt)
echo "scheduler overhead per job (-np 1): $between ms"
awk -v o="$between" 'BEGIN {exit !(o < 200)}' || fail "overhead $between ms per job"
pass "overhead measured"
