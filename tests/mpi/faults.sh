#!/usr/bin/env bash
# A job that segfaults, one that hangs past the time limit, one that runs out
# of memory under the experiment's memory limit (the child's RLIMIT_AS), and
# one that returns NaN weights: the first three become FAILURE rows with the
# reason, the last a CORRUPTED row; the grid goes on (the other jobs run), the tables are
# written, and the exit status says whether a job failed. FG_TEST_FAULT (the
# grid's test hook, honoured by the noop approach's fix jobs) reaches the job
# children through the environment.
# A clean run first trains the tiny original into the shared store; each
# fault run starts from a ledger holding that run's prepare record (resume
# skips it), so a 3 s time limit for the hang case applies to fix jobs only.
source "$(dirname "$0")/lib.sh"
# Under AddressSanitizer a SIGSEGV would become ASan's report and exit 1;
# let the crash be a crash.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_segv=0"

mkexp exp.yaml
mkexp exp-hang.yaml 's/time_s:.*/time_s: 3/'
mkexp exp-oom.yaml 's/^\(  *\)time_s:.*/\1time_s: 60\n\1memory_mb: 600/'
grep -q "memory_mb: 600" exp-oom.yaml || fail "could not set the memory limit"
all_keys exp.yaml > keys.txt
out=$(outdir_of exp.yaml)

rundir clean
(cd clean && run_np 2 run ../exp.yaml 2> run.txt) || fail "clean run failed: $(cat clean/run.txt)"
grep "kind=prepare" "clean/$out/ledger.tsv" > prepare.tsv || fail "no prepare record"

faults="segv hang oom nan"
# A sanitizer build cannot cap its address space (ASan's shadow mapping): no oom case there.
if ldd "$FG_EXE" | grep -q libasan; then faults="segv hang nan"; fi
for fault in $faults; do
    rundir "$fault"
    mkdir -p "$fault/$out"
    cp prepare.tsv "$fault/$out/ledger.tsv"
    exp=../exp.yaml
    [ "$fault" = hang ] && exp=../exp-hang.yaml
    [ "$fault" = oom ] && exp=../exp-oom.yaml
    cd "$fault"
    rc=0
    FG_TEST_FAULT=$fault run_np 2 run "$exp" --progress 5 2> err.txt || rc=$?
    cat err.txt >&2
    grep -q "1 already in the ledger" err.txt || fail "$fault: the prepare record was not reused"
    $PY "$CHECK" once "$out/ledger.tsv" ../keys.txt || fail "$fault: ledger"
    $PY "$CHECK" outcomes "$out/ledger.tsv" | tee outcomes.txt
    ls "$out"/*.csv > /dev/null || fail "$fault: no tables written"
    case $fault in
    segv)
        [ "$rc" = 1 ] || fail "segv: exit $rc, expected 1"
        $PY "$CHECK" field "$out/ledger.tsv" reason "signal 11" || fail "segv: reason"
        ;;
    oom)
        [ "$rc" = 1 ] || fail "oom: exit $rc, expected 1"
        $PY "$CHECK" field "$out/ledger.tsv" reason "out of memory" || fail "oom: reason"
        ;;
    hang)
        [ "$rc" = 1 ] || fail "hang: exit $rc, expected 1"
        $PY "$CHECK" field "$out/ledger.tsv" reason "time limit" || fail "hang: reason"
        ;;
    nan)
        # CORRUPTED is a result, not a failure; only the robustness job may
        # fail (the grid's rule: no OK fixed model to attack).
        $PY "$CHECK" field "$out/ledger.tsv" outcome CORRUPTED || fail "nan: outcome"
        if grep -v "robustness" outcomes.txt | grep -q "^FAILURE"; then fail "nan: a FAILURE row"; fi
        want=0
        grep -q "^FAILURE robustness" outcomes.txt && want=1
        [ "$rc" = "$want" ] || fail "nan: exit $rc, expected $want"
        ;;
    esac
    # The grid went on: every job has its row and its log.
    for k in $(cat ../keys.txt); do
        grep -q "kind=prepare" "$out/logs/$k.log" 2> /dev/null && continue
        [ -f "$out/logs/$k.log" ] || grep -q "key=$k.*kind=prepare" "$out/ledger.tsv" ||
            fail "$fault: no log for job $k"
    done
    cd ..
done
# The hung children were killed, not left behind.
if pgrep -f "$FG_EXE job $T/" > /dev/null; then fail "a job child survived"; fi
pass "segv, hang, oom and nan faults become FAILURE/CORRUPTED rows; the grid goes on"
