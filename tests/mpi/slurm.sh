#!/usr/bin/env bash
# A real single-node Slurm (slurmctld + slurmd, no munge, no cgroups; recipe
# in docs/INFRA.md) runs the fixture grid through slurm/run.sbatch; the test
# forces a requeue mid-run (scontrol requeue while job processes hang, then
# scontrol update StartTime=now) and checks that the restarted job resumes and
# completes with every job's result exactly once, in one appended log; a
# SIGUSR1 warning (scancel --batch --signal=USR1) makes the script stop the
# run gracefully and requeue itself, and the restart completes. Then
# slurm/submit-array.sh runs the grid as an array of shards plus the
# dependent gather job. The daemons are stopped by the PIDs this test started.
# Exits 77 (skipped) when Slurm is not installed.
source "$(dirname "$0")/lib.sh"

for b in slurmctld slurmd sbatch scontrol squeue sinfo; do
    command -v "$b" > /dev/null || { echo "SKIP: $b not installed"; _ok=1; exit 77; }
done

D="$T/slurm"
H=$(hostname -s)
mkdir -p "$D/state" "$D/spool"
# Ports of our own so a second cluster on the machine does not collide.
base=$((20000 + (RANDOM % 2000) * 2))
cat > "$D/slurm.conf" << CONF
ClusterName=fgtest
SlurmctldHost=$H
SlurmctldPort=$base
SlurmdPort=$((base + 1))
AuthType=auth/none
CredType=cred/none
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd.log
ReturnToService=2
KillWait=10
MinJobAge=600
NodeName=$H CPUs=2 State=UNKNOWN
PartitionName=fgdebug Nodes=$H Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$D/slurm.conf"
# Nothing of an outer allocation may leak into ours.
unset SLURM_JOB_ID SLURM_JOBID SLURM_NTASKS SLURM_NPROCS

slurmctld -D -f "$SLURM_CONF" > "$D/ctld.out" 2>&1 &
ctld=$!
slurmd -D -f "$SLURM_CONF" > "$D/slurmd.out" 2>&1 &
sd=$!
stop_daemons() {
    kill "$sd" "$ctld" 2> /dev/null || true
    wait "$sd" "$ctld" 2> /dev/null || true
    _finish
}
trap stop_daemons EXIT

for _ in $(seq 1 60); do
    [ "$(sinfo -h -o %t 2> /dev/null)" = idle ] && break
    sleep 0.5
done
[ "$(sinfo -h -o %t 2> /dev/null)" = idle ] || fail "the node never became idle: $(tail -5 "$D/slurmctld.log")"

# wait_state JOB STATE SECONDS
wait_state() {
    local s=""
    for _ in $(seq 1 $(($3 * 2))); do
        s=$(scontrol show job "$1" 2> /dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
        [ "$s" = "$2" ] && return 0
        sleep 0.5
    done
    echo "job $1 is $s, expected $2" >&2
    return 1
}

# release_requeued JOB: once the requeued JOB is PENDING and its previous run
# is fully torn down (no job or node left COMPLETING), let it start now. Starting
# it while the old step's credential is still being revoked makes slurmctld
# kill it as "non-startable" (seen under load).
release_requeued() {
    local s=""
    for _ in $(seq 1 120); do
        s=$(scontrol show job "$1" | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
        if [ "$s" = PENDING ] && [ -z "$(squeue -h -t CG -o %i)" ] &&
            ! sinfo -h -o %T | grep -qi completing; then
            break
        fi
        sleep 0.5
    done
    sleep 1
    scontrol update jobid="$1" StartTime=now
}

mkexp exp.yaml 's/time_s:.*/time_s: 120/'
out=$(outdir_of exp.yaml)
all_keys exp.yaml > keys.txt
# The first attempt's fix jobs hang (FG_TEST_FAULT=hang, the grid's test
# hook) so the requeue surely finds jobs in flight; the restart runs clean.
{
    echo '#!/usr/bin/env bash'
    echo 'if [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then export FG_TEST_FAULT=hang; fi'
    echo "exec \"$FG_EXE\" \"\$@\""
} > fixgrid-wrapper.sh
chmod +x fixgrid-wrapper.sh

# ---- one allocation, requeued mid-run ----
job=$(FIXGRID="$T/fixgrid-wrapper.sh" FG_GRACE=2 sbatch --parsable --export=ALL --ntasks=2 \
    --overcommit --output="$T/run-%j.out" "$FG_SOURCE_DIR/slurm/run.sbatch" exp.yaml)
job=${job%%;*}
wait_state "$job" RUNNING 60 || fail "the job did not start: $(tail -5 "$D/slurmctld.log")"
for _ in $(seq 1 120); do
    [ "$(pgrep -fc "$FG_EXE job $T/" || true)" -ge 2 ] && break
    sleep 0.5
done
[ "$(pgrep -fc "$FG_EXE job $T/" || true)" -ge 2 ] || fail "no hanging jobs: $(cat "$T/run-$job.out")"
scontrol requeue "$job"
release_requeued "$job"
wait_state "$job" COMPLETED 120 || fail "the requeued job did not complete: $(cat "$T/run-$job.out")"
log="$T/run-$job.out"
cat "$log"
[ "$(grep -c "fixgrid: job $job start" "$log")" = 2 ] || fail "expected two starts in one appended log"
grep -q "restart 1" "$log" || fail "the restart did not see SLURM_RESTART_COUNT=1"
$PY "$CHECK" once "$out/ledger.tsv" keys.txt || fail "after the requeue"
ls "$out"/*.csv > /dev/null || fail "no tables"

# ---- the time-limit warning: SIGUSR1 to the batch shell (as --signal=B:USR1@N
# sends it); the script forwards it, the run stops within its grace, and the
# script requeues the job itself; the restart resumes ----
rm -rf "${out:?}"
job=$(FIXGRID="$T/fixgrid-wrapper.sh" FG_GRACE=2 sbatch --parsable --export=ALL --ntasks=1 \
    --output="$T/warn-%j.out" "$FG_SOURCE_DIR/slurm/run.sbatch" exp.yaml)
job=${job%%;*}
wait_state "$job" RUNNING 60 || fail "the warned job did not start"
for _ in $(seq 1 120); do
    [ "$(pgrep -fc "$FG_EXE job $T/" || true)" -ge 1 ] && break
    sleep 0.5
done
scancel --batch --signal=USR1 "$job"
for _ in $(seq 1 60); do
    grep -q "requeueing job $job" "$T/warn-$job.out" 2> /dev/null && break
    sleep 0.5
done
grep -q "requeueing job $job" "$T/warn-$job.out" || fail "no self-requeue: $(cat "$T/warn-$job.out")"
release_requeued "$job"
wait_state "$job" COMPLETED 120 || fail "the warned job did not complete: $(cat "$T/warn-$job.out")"
cat "$T/warn-$job.out"
grep -q "no new jobs" "$T/warn-$job.out" || fail "the run did not hear the warning"
grep -q "restart 1" "$T/warn-$job.out" || fail "no restart after the warning"
$PY "$CHECK" once "$out/ledger.tsv" keys.txt || fail "after the warning and self-requeue"

# ---- array of shards + dependent gather ----
rm -rf "${out:?}"
ids=$(FIXGRID="$FG_EXE" FG_GRACE=2 "$FG_SOURCE_DIR/slurm/submit-array.sh" 2 exp.yaml \
    --export=ALL --output="$T/%x-%A_%a.out")
echo "$ids"
gather=${ids##* }
wait_state "$gather" COMPLETED 180 || fail "gather did not complete: $(cat "$T"/*gather*.out 2> /dev/null)"
[ -d "$out/shards/0-of-2" ] && [ -d "$out/shards/1-of-2" ] || fail "shard ledgers missing"
$PY "$CHECK" once "$out/ledger.tsv" keys.txt || fail "array + gather"
ls "$out"/*.csv > /dev/null || fail "no tables after gather"
pass "Slurm: requeue mid-run resumes to exactly-once results; array of shards + gather"
