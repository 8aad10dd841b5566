#!/usr/bin/env bash
# SIGTERM during the parse of a huge experiment file (a seeds list of ten
# million entries, ~85 MB: seconds of YAML loading) ends the run there (killed
# by the signal, exit 143) instead of being held until the parse is done and
# then ignored.
source "$(dirname "$0")/lib.sh"

$PY -c "
import sys
w = sys.stdout.write
w('name: big\nsubjects: [tiny]\napproaches: [noop]\nseeds: [')
w(', '.join(map(str, range(10_000_000))))
w(']\n')" > big.yaml
SECONDS=0
"$FG_EXE" run big.yaml 2> err.txt &
pid=$!
sleep 1
kill -TERM "$pid" 2> /dev/null || fail "the run ended within 1 s; the file is too small to test this"
rc=0
wait "$pid" || rc=$?
took=$SECONDS
[ "$rc" = 143 ] || fail "exit $rc after SIGTERM during the parse (expected 143, killed by it): $(head -2 err.txt)"
pass "SIGTERM during the parse ends the run (after ${took} s)"
