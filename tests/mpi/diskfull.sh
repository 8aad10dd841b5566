#!/usr/bin/env bash
# The results directory's disk fills up during a run (a 64 KiB tmpfs with
# most of it taken by a filler file; needs root to mount, skipped otherwise):
# the run stops with exit 3 and one line naming the file it could not write
# and "No space left on device"; the ledger is never torn (whole lines, valid
# checksums); after the filler is removed the same command resumes and
# finishes every job, each exactly once. The free space is stepped so that
# the ledger append itself fails in one step and a later write in another.
source "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ] || ! mkdir -p full || ! mount -t tmpfs -o size=64k tmpfs full 2> /dev/null; then
    echo "SKIP: mounting a small tmpfs needs root (tests/integration/test_ledger_full covers the ledger without)"
    _ok=1
    exit 77
fi
trap 'umount "$T/full" 2> /dev/null || true; _finish' EXIT
mkexp exp.yaml 's|^output:.*|output: full/results|'
rundir .
all_keys exp.yaml > keys.txt
saw_append=0 saw_other=0
for pages in 15 14 13; do
    rm -rf full/results full/filler
    dd if=/dev/zero of=full/filler bs=4096 count=$pages 2> /dev/null || true
    rc=0
    "$FG_EXE" run exp.yaml > run.txt 2>&1 || rc=$?
    if [ "$rc" = 3 ]; then
        last=$(grep '^fixgrid run: ' run.txt | tail -1)
        echo "$last" | grep -q "No space left on device" || fail "$pages pages taken: unclear: $(tail -3 run.txt)"
        case "$last" in
            *"ledger.tsv: append failed"*) saw_append=1 ;;
            *) saw_other=1 ;;
        esac
    elif [ "$rc" != 0 ]; then
        fail "$pages pages taken: exit $rc: $(tail -3 run.txt)"
    fi
    [ ! -e full/results/ledger.tsv ] || $PY "$CHECK" intact full/results/ledger.tsv > /dev/null ||
        fail "$pages pages taken: torn ledger"
    # space freed: the same command resumes and finishes
    rm -f full/filler
    "$FG_EXE" run exp.yaml > resume.txt 2>&1 || fail "resume after $pages pages freed: $(tail -3 resume.txt)"
    $PY "$CHECK" once full/results/ledger.tsv keys.txt > /dev/null
    $PY "$CHECK" tables_ok full/results > /dev/null
done
[ "$saw_append" = 1 ] || fail "no step made the ledger append fail"
[ "$saw_other" = 1 ] || fail "no step made a later write fail"
pass "a full disk stops the run with a clear line, the ledger stays whole, the run resumes"
