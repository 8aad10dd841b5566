#!/usr/bin/env bash
# Under the ASan+UBSan build (FG_SANITIZE=ON; skipped for other builds):
# `fixgrid run` on malformed experiments exits 2 with one line and no
# sanitizer report (Open MPI's own leaks suppressed by tests/lsan.supp, so a
# leak of fixgrid's would show), also under mpirun -np 2; and a whole run of
# the fixture experiment, a run with a NaN fault, a run without its data and a
# second run on a locked results directory report nothing either.
source "$(dirname "$0")/lib.sh"

if ! grep -q __asan_init "$FG_EXE" 2> /dev/null; then
    echo "SKIP: $FG_EXE is not a sanitizer build (scripts/setup --test --sanitize runs this)"
    _ok=1
    exit 77
fi
export ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:abort_on_error=0
export LSAN_OPTIONS=suppressions=$FG_SOURCE_DIR/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1
export OMPI_MCA_mca_base_component_disable_dlclose=1

# report FILE...: fail if any holds a sanitizer report
report() {
    ! grep -l 'Sanitizer\|runtime error:' "$@" > /dev/null 2>&1 || fail "sanitizer report in $(grep -l 'Sanitizer\|runtime error:' "$@" | head -1): $(grep -m3 -A8 'Sanitizer\|runtime error:' "$@" | head -30)"
}

fx="$FG_SOURCE_DIR/tests/fixtures/experiments"
n=0
# a sample of the malformed fixtures (each run starts MPI: seconds under ASan)
for f in "$fx"/bad-syntax.yaml "$fx"/bad-unknown-key.yaml "$fx"/bad-type.yaml \
    "$fx"/bad-subject.yaml "$fx"/bad-param-value.yaml "$fx"/bad-duplicate-seed.yaml; do
    rc=0
    "$FG_EXE" run "$f" > err.txt 2>&1 || rc=$?
    report err.txt
    [ "$rc" = 2 ] || fail "$(basename "$f"): exit $rc, expected 2: $(head -5 err.txt)"
    [ "$(wc -l < err.txt)" = 1 ] || fail "$(basename "$f"): expected one line: $(head -5 err.txt)"
    n=$((n + 1))
done
rc=0
run_np 2 run "$fx/bad-syntax.yaml" > err.txt 2>&1 || rc=$?
report err.txt
[ "$rc" = 2 ] || fail "bad-syntax under -np 2: exit $rc"

mkexp exp.yaml
rundir .
out=$(outdir_of exp.yaml)
"$FG_EXE" run exp.yaml > run1.txt 2>&1 || fail "the fixture run failed: $(tail -5 run1.txt)"
report run1.txt "$out"/logs/*.log
rc=0
FG_TEST_FAULT=nan "$FG_EXE" run exp.yaml --force > run2.txt 2>&1 || rc=$?
report run2.txt "$out"/logs/*.log
[ "$rc" = 1 ] || fail "the NaN fault run exited $rc, expected 1 (CORRUPTED jobs)"
mkexp nodata.yaml 's|^output:.*|output: results/nodata|'
rc=0
FIXGRID_FMNIST=/nonexistent "$FG_EXE" run nodata.yaml > run3.txt 2>&1 || rc=$?
report run3.txt results/nodata/logs/*.log
[ "$rc" = 1 ] || fail "the run without data exited $rc, expected 1 (FAILURE jobs)"
FG_TEST_SLEEP_MS=2000 "$FG_EXE" run exp.yaml --force > run4.txt 2>&1 &
first=$!
for _ in $(seq 1 200); do
    grep -q "^pid=$first " "$out/.run.lock" 2> /dev/null && break
    sleep 0.05
done
rc=0
"$FG_EXE" run exp.yaml > run5.txt 2>&1 || rc=$?
wait "$first" || fail "the first of two runs failed: $(tail -3 run4.txt)"
report run4.txt run5.txt
[ "$rc" = 2 ] || fail "the second run exited $rc, expected 2"
pass "$n malformed experiments exit 2 with one line and no sanitizer report; runs, faults, refusals clean"
