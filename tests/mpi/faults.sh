#!/usr/bin/env bash
# A job that segfaults, one that hangs past the time limit, and one that
# returns NaN weights: the first two become FAILURE rows with the reason, the
# third a CORRUPTED row; the grid goes on (every other job runs), the tables
# are written, and the exit status says whether a job failed.
# FG_TEST_FAULT (grid's test hook, honoured by the noop approach's fix jobs)
# reaches the job children through the environment.
source "$(dirname "$0")/lib.sh"
# Under AddressSanitizer a SIGSEGV would become ASan's report and exit 1;
# let the crash be a crash.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_segv=0"

mkexp exp.yaml 's/time_s:.*/time_s: 3/'
all_keys exp.yaml > keys.txt
out=$(outdir_of exp.yaml)

for fault in segv hang nan; do
    mkdir "$fault"
    cd "$fault"
    rc=0
    FG_TEST_FAULT=$fault run_np 2 run ../exp.yaml --progress 5 2> err.txt || rc=$?
    cat err.txt >&2
    $PY "$CHECK" once "$out/ledger.tsv" ../keys.txt || fail "$fault: ledger"
    $PY "$CHECK" outcomes "$out/ledger.tsv" | tee outcomes.txt
    ls "$out"/*.csv > /dev/null || fail "$fault: no tables written"
    case $fault in
    segv)
        [ "$rc" = 1 ] || fail "segv: exit $rc, expected 1"
        $PY "$CHECK" field "$out/ledger.tsv" reason "signal 11" || fail "segv: reason"
        ;;
    hang)
        [ "$rc" = 1 ] || fail "hang: exit $rc, expected 1"
        $PY "$CHECK" field "$out/ledger.tsv" reason "time limit" || fail "hang: reason"
        ;;
    nan)
        [ "$rc" = 0 ] || fail "nan: exit $rc, expected 0 (CORRUPTED is a result, not a failure)"
        $PY "$CHECK" field "$out/ledger.tsv" outcome CORRUPTED || fail "nan: outcome"
        ;;
    esac
    # Every fix job failed alone: the prepare and robustness jobs still ran.
    grep -q '^OK ' outcomes.txt || fail "$fault: no job succeeded besides the faulty ones"
    # Per-job logs exist for every job.
    [ "$(ls "$out/logs" | wc -l)" -ge "$(wc -l < ../keys.txt)" ] || fail "$fault: missing logs"
    cd ..
done
# The hang child was killed, not left behind: no job process of ours remains.
if pgrep -f "$FG_EXE job $T" > /dev/null; then fail "a job child survived"; fi
pass "segv, hang and nan faults become FAILURE/CORRUPTED rows"
