# Shared helpers for the runner's multi-process tests (sourced, bash).
#
# Environment (set by CTest through FG_TEST_ENV): FG_EXE (the fixgrid binary),
# FG_SOURCE_DIR; OMPI_ALLOW_RUN_AS_ROOT* when run as root. Each test works in
# a fresh temporary directory (removed on success, kept on failure for a
# post-mortem) with FIXGRID_HOME pointing at the source tree so the fixture
# experiment finds experiments/subjects/.
set -euo pipefail

: "${FG_SOURCE_DIR:?FG_SOURCE_DIR must be set (run through ctest)}"
: "${FG_EXE:?FG_EXE must be set (run through ctest)}"
export FIXGRID_HOME="$FG_SOURCE_DIR"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
PY=/usr/bin/python3
CHECK="$FG_SOURCE_DIR/tests/mpi/check.py"
FIXTURE="$FG_SOURCE_DIR/tests/fixtures/experiments/tiny-noop.yaml"
MPI_TIMEOUT="${FG_MPI_TIMEOUT:-100}"

T=$(mktemp -d "${TMPDIR:-/tmp}/fg-runner.XXXXXX")
cd "$T"
_ok=0
_finish() {
    if [ "$_ok" = 1 ]; then rm -rf "$T"; else echo "test files kept in $T" >&2; fi
}
trap _finish EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
pass() {
    _ok=1
    echo "PASS: $*"
}

# mkexp FILE [SED-EXPR...]: the fixture experiment, edited, written to FILE.
# Its output directory is relative to the current directory.
mkexp() {
    local out=$1
    shift
    cp "$FIXTURE" "$out"
    for e in "$@"; do sed -i -e "$e" "$out"; done
}

# rundir DIR: a working directory for one run that shares this test's model
# store (the experiment's `store` path is relative to the working directory),
# so the tiny original is trained once per test, not once per run.
rundir() {
    mkdir -p "$1" "$T/store"
    [ -e "$1/store" ] || ln -s "$T/store" "$1/store"
}

# outdir_of FILE: the output directory a run of FILE uses.
outdir_of() {
    sed -n 's/^output:[[:space:]]*//p' "$1" | tr -d '"'
}

# run_np N ARGS...: `fixgrid ARGS` under mpirun with N ranks and a timeout.
run_np() {
    local n=$1
    shift
    mpirun --timeout "$MPI_TIMEOUT" --oversubscribe -np "$n" "$FG_EXE" "$@"
}

# expect_rc WANT CMD...: run CMD, fail unless its exit status is WANT.
expect_rc() {
    local want=$1 rc=0
    shift
    "$@" || rc=$?
    [ "$rc" = "$want" ] || fail "'$*' exited $rc, expected $want"
}

# all_keys EXP: every job key of the experiment (dry run with --force lists all).
all_keys() {
    "$FG_EXE" run "$1" --dry-run --force 2>/dev/null | awk '!/^#/ && NR > 1 && $2 ~ /^[0-9a-f]+$/ {print $2}'
}
