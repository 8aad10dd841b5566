#!/usr/bin/env bash
# SIGKILL of the whole run (mpirun and every rank at once; the job children
# must die with their rank) at random points, ten times in a row on the same
# results directory. After each kill: no job process survives, the ledger has
# no torn line and every crc is valid, every table is whole. The next run
# resumes from there. A last run completes the grid with every job's result
# exactly once.
# Kill points: rounds 1, 4, 7, 10 at a random time after launch (start-up,
# training the original, first jobs); the others a random moment (up to 1.5 s)
# after one more record reached the ledger, so the kills land among the jobs
# however long they take, and the chain makes progress.
source "$(dirname "$0")/lib.sh"

# More seeds than the fixture: enough jobs for ten kills to land among them.
mkexp exp.yaml 's/^seeds:.*/seeds: [1, 2, 3, 4, 5, 6]/'
out=$(outdir_of exp.yaml)
all_keys exp.yaml > keys.txt
count() { if [ -f "$out/ledger.tsv" ]; then wc -l < "$out/ledger.tsv"; else echo 0; fi; }

RANDOM=${FG_KILL_SEED:-4242}
kills=${FG_KILLS:-10}
for i in $(seq 1 "$kills"); do
    before=$(count)
    mpirun --timeout "$MPI_TIMEOUT" --oversubscribe -np 2 "$FG_EXE" run exp.yaml \
        > "kill$i.txt" 2>&1 &
    pid=$!
    if [ $((i % 3)) = 1 ]; then
        how=$(awk -v r=$RANDOM 'BEGIN {printf "%.2f", 3 * r / 32768}')
        sleep "$how"
        how="$how s after launch"
    else
        for _ in $(seq 1 6000); do
            [ "$(count)" -gt "$before" ] && break
            kill -0 "$pid" 2> /dev/null || break
            sleep 0.02
        done
        extra=$(awk -v r=$RANDOM 'BEGIN {printf "%.2f", 1.5 * r / 32768}')
        sleep "$extra"
        how="$extra s after a new record"
    fi
    # mpirun and the ranks (each in its own process group) die at once.
    kill -KILL "$pid" $(pgrep -P "$pid") 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
    for _ in $(seq 1 25); do
        pgrep -f "$FG_EXE job $T/" > /dev/null || break
        sleep 0.2
    done
    if pgrep -f "$FG_EXE job $T/" > /dev/null; then fail "kill $i: job children survived"; fi
    if [ -f "$out/ledger.tsv" ]; then
        $PY "$CHECK" intact "$out/ledger.tsv" > /dev/null || fail "kill $i ($how): ledger damaged"
        $PY "$CHECK" tables_ok "$out" || fail "kill $i ($how): a table is torn"
    fi
    echo "kill $i, $how: ledger $before -> $(count) lines"
done
run_np 2 run exp.yaml 2> final.txt || fail "final run failed: $(cat final.txt)"
grep "jobs to run" final.txt
$PY "$CHECK" once "$out/ledger.tsv" keys.txt || fail "after $kills kills"
$PY "$CHECK" tables_ok "$out"
ls "$out"/*.csv > /dev/null || fail "no tables"
pass "$kills SIGKILLs at random points: ledger intact after each, every job exactly once"
