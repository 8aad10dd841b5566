#!/usr/bin/env bash
# SIGKILL of the whole run (mpirun and every rank) at random points,
# ten times, each followed by a check that the ledger is intact (no torn line,
# every crc valid) and the tables are whole; then a rerun completes with every
# job's result exactly once and tables equal to an uninterrupted run's.
source "$(dirname "$0")/lib.sh"

# More seeds than the fixture: a longer run gives the kills more to hit.
mkexp exp.yaml 's/^seeds:.*/seeds: [1, 2, 3, 4, 5, 6]/'
out=$(outdir_of exp.yaml)
all_keys exp.yaml > keys.txt

mkdir ref
t0=$(date +%s.%N)
(cd ref && run_np 2 run ../exp.yaml 2> run.txt) || fail "reference run failed"
t1=$(date +%s.%N)
full=$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')
echo "uninterrupted run: $full s"

RANDOM=${FG_KILL_SEED:-4242}
kills=${FG_KILLS:-10}
mid=0
for i in $(seq 1 "$kills"); do
    rm -rf "$out"
    # Odd rounds: a random time of a fresh run (start-up included). Even
    # rounds: right after a random number of records reached the ledger, so
    # the kill lands among the jobs however fast they are.
    delay=$(awk -v f="$full" -v r=$RANDOM 'BEGIN {printf "%.3f", f * r / 32768}')
    want=$((1 + RANDOM % $(wc -l < keys.txt)))
    mpirun --timeout "$MPI_TIMEOUT" --oversubscribe -np 2 "$FG_EXE" run exp.yaml \
        > "kill$i.txt" 2>&1 &
    pid=$!
    if [ $((i % 2)) = 1 ]; then
        sleep "$delay"
    else
        delay="$want records"
        for _ in $(seq 1 3000); do
            [ "$(cat "$out/ledger.tsv" 2> /dev/null | wc -l)" -ge "$want" ] && break
            kill -0 "$pid" 2> /dev/null || break
            sleep 0.01
        done
    fi
    # mpirun and the ranks (each in its own process group) die at once; the
    # job children must follow by themselves (PR_SET_PDEATHSIG).
    kill -KILL "$pid" $(pgrep -P "$pid") 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
    # Job children die with their rank (PR_SET_PDEATHSIG); give them a moment.
    for _ in $(seq 1 20); do
        pgrep -f "$FG_EXE job $T/" > /dev/null || break
        sleep 0.1
    done
    if pgrep -f "$FG_EXE job $T/" > /dev/null; then fail "kill $i: job children survived"; fi
    lines=0
    if [ -f "$out/ledger.tsv" ]; then
        $PY "$CHECK" intact "$out/ledger.tsv" > /dev/null || fail "kill $i (after $delay s): ledger damaged"
        $PY "$CHECK" tables_ok "$out" || fail "kill $i: a table is torn"
        lines=$(wc -l < "$out/ledger.tsv")
    fi
    [ "$lines" -gt 0 ] && [ "$lines" -le "$(wc -l < keys.txt)" ] && mid=$((mid + 1))
    run_np 2 run exp.yaml 2> "rerun$i.txt" || fail "rerun $i failed: $(cat "rerun$i.txt")"
    $PY "$CHECK" once "$out/ledger.tsv" keys.txt > /dev/null || fail "kill $i: not exactly once"
    $PY "$CHECK" tables "ref/$out" "$out" > /dev/null || fail "kill $i: tables differ"
    echo "kill $i after $delay: $lines ledger lines at the kill; rerun complete, each job once"
done
pass "$kills SIGKILLs at random points ($mid mid-run): ledger intact, every job exactly once"
