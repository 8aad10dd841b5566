#!/usr/bin/env bash
# Bad input exits 2 with one clear message: malformed experiment files
# (file:line:col), bad options, and an MPI world that does not match
# SLURM_NTASKS. Also `fixgrid tables` on a directory without results.
source "$(dirname "$0")/lib.sh"

fx="$FG_SOURCE_DIR/tests/fixtures/experiments"
n=0
for f in "$fx"/bad-syntax.yaml "$fx"/bad-unknown-key.yaml "$fx"/bad-type.yaml; do
    [ -f "$f" ] || fail "fixture $f missing"
    rc=0
    "$FG_EXE" run "$f" 2> err.txt || rc=$?
    [ "$rc" = 2 ] || fail "$(basename "$f"): exit $rc, expected 2"
    grep -Eq "$(basename "$f"):[0-9]+:[0-9]+: " err.txt || fail "$(basename "$f"): no file:line:col in: $(cat err.txt)"
    rc=0
    run_np 2 run "$f" 2> err.txt || rc=$?
    [ "$rc" = 2 ] || fail "$(basename "$f") under -np 2: exit $rc, expected 2"
    [ "$(grep -Ec "$(basename "$f"):[0-9]+:[0-9]+: " err.txt)" = 1 ] || fail "expected one message under -np 2"
    n=$((n + 1))
done
expect_rc 2 "$FG_EXE" run does-not-exist.yaml
mkexp exp.yaml
expect_rc 2 "$FG_EXE" run exp.yaml --shard 3/2
expect_rc 2 "$FG_EXE" run exp.yaml --grace -1
expect_rc 2 "$FG_EXE" run exp.yaml --no-such-option
expect_rc 2 "$FG_EXE" run
expect_rc 2 "$FG_EXE" tables "$T/nothing-here"
rc=0
SLURM_NTASKS=3 run_np 2 run exp.yaml 2> err.txt || rc=$?
[ "$rc" = 2 ] || fail "SLURM_NTASKS mismatch: exit $rc, expected 2"
grep -q "SLURM_NTASKS=3 but the MPI world has 2 ranks" err.txt || fail "no clear message: $(cat err.txt)"
[ ! -e "$(outdir_of exp.yaml)/ledger.tsv" ] || fail "a rejected run wrote a ledger"
pass "$n malformed experiments, bad options and SLURM_NTASKS mismatch exit 2"
