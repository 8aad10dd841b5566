#!/usr/bin/env bash
# SIGTERM and SIGUSR1 (Slurm's warning) stop dispatching; running jobs get the
# grace period, then are cancelled (not recorded); the run exits 1 and a rerun
# resumes and completes with every job exactly once. Three ways in:
#   USR1   to mpirun, which forwards it to every rank;
#   TERM   to every rank, as Slurm does at the time limit (mpirun itself
#          turns a SIGTERM into SIGKILL of the ranks after
#          odls_base_sigkill_timeout, 1 s by default: use USR1 with mpirun);
#   worker SIGTERM to rank 1 alone (as a node-local kill would): the worker asks
#          rank 0 to stop everyone.
# Jobs that hang (FG_TEST_FAULT=hang, time limit 60 s) guarantee jobs are in
# flight when the signal arrives and outlast the 1 s grace. The three stops
# chain on one results directory (each rerun skips the prepare job the first
# recorded); a last clean run resumes and completes the grid.
source "$(dirname "$0")/lib.sh"

mkexp exp.yaml 's/time_s:.*/time_s: 60/'
out=$(outdir_of exp.yaml)
all_keys exp.yaml > keys.txt

for how in USR1 TERM worker; do
    sig=$how
    FG_TEST_FAULT=hang mpirun --timeout "$MPI_TIMEOUT" --oversubscribe -np 2 "$FG_EXE" run \
        exp.yaml --grace 1 > "$sig.txt" 2>&1 &
    pid=$!
    # Wait until two fix jobs hang (both ranks busy), then signal mpirun,
    # which forwards the signal to the ranks.
    for _ in $(seq 1 150); do
        [ "$(pgrep -fc "$FG_EXE job $T/" || true)" -ge 2 ] && break
        sleep 0.1
    done
    t0=$(date +%s)
    if [ "$how" = TERM ]; then
        kill -TERM $(pgrep -P "$pid")
    elif [ "$how" = worker ]; then
        # mpirun's children are the ranks; rank 1 is the one that is not rank 0
        # (rank 0 alone holds the run lock file open).
        lock=$(readlink -f "$out/.run.lock")
        r1=""
        for p in $(pgrep -P "$pid"); do
            ls -l /proc/"$p"/fd 2> /dev/null | grep -q "$lock" || r1=$p
        done
        [ -n "$r1" ] || fail "worker: cannot find rank 1"
        kill -TERM "$r1"
    else
        kill -"$sig" "$pid"
    fi
    rc=0
    wait "$pid" || rc=$?
    took=$(($(date +%s) - t0))
    cat "$sig.txt" >&2
    [ "$rc" != 0 ] || fail "$sig: exit 0 after a stop with jobs left"
    [ "$took" -lt 30 ] || fail "$sig: took $took s to stop (grace 1 s)"
    grep -q "no new jobs" "$sig.txt" || fail "$sig: no stop message"
    if [ "$how" = worker ]; then
        grep -q "signal 15 (Terminated) on rank 1" "$sig.txt" || fail "worker: rank 0 did not hear"
    fi
    grep -q "rerun the same command to resume" "$sig.txt" || fail "$sig: no resume hint"
    if pgrep -f "$FG_EXE job $T/" > /dev/null; then fail "$sig: job children survived"; fi
    $PY "$CHECK" intact "$out/ledger.tsv"
    # Cancelled jobs are not in the ledger: every fix job hung, none has a row.
    if grep -q "kind=fix" "$out/ledger.tsv"; then fail "$sig: a cancelled job was recorded"; fi
    grep -q "kind=prepare" "$out/ledger.tsv" || fail "$sig: the prepare record is missing"
done
run_np 2 run exp.yaml 2> resume.txt || fail "resume failed: $(cat resume.txt)"
$PY "$CHECK" once "$out/ledger.tsv" keys.txt || fail "after the resume"
pass "SIGTERM and SIGUSR1: stop, cancel after grace, resume"
