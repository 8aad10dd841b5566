#!/usr/bin/env bash
# An original with a NaN weight (its manifest checksum updated to match, as
# if training had written it so) is never the yardstick of a fixed model:
# the prepare job fails with a reason naming the store file and the value,
# and every fix job of the subject is a FAILURE without metrics.
source "$(dirname "$0")/lib.sh"

mkexp exp.yaml
rundir .
out=$(outdir_of exp.yaml)
"$FG_EXE" run exp.yaml 2> run1.txt || fail "first run failed: $(tail -3 run1.txt)"
model=$(find -L store -name model.safetensors | head -1)
[ -n "$model" ] || fail "no original in the store"
$PY - "$model" "$(dirname "$model")/manifest" "$FG_SOURCE_DIR/tests/mpi" << 'PY'
import json, struct, sys
sys.path.insert(0, sys.argv[3])
from check import fg_hash64
path, manifest = sys.argv[1], sys.argv[2]
b = bytearray(open(path, "rb").read())
n = struct.unpack("<Q", b[:8])[0]
hdr = json.loads(b[8:8 + n])
t = next(v for k, v in hdr.items() if k != "__metadata__" and v["dtype"] == "F32")
b[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][0] + 4] = struct.pack("<f", float("nan"))
open(path, "wb").write(b)
lines = [l for l in open(manifest).read().splitlines() if not l.startswith(("bytes=", "hash64="))]
lines += ["bytes=%d" % len(b), "hash64=%016x" % fg_hash64(bytes(b))]
open(manifest, "w").write("\n".join(lines) + "\n")
PY
rc=0
"$FG_EXE" run exp.yaml --force 2> run2.txt || rc=$?
[ "$rc" = 1 ] || fail "the run on a NaN original exited $rc, expected 1 (failed jobs): $(tail -3 run2.txt)"
$PY "$CHECK" field "$out/ledger.tsv" outcome FAILURE || fail "a fix job was scored against the NaN original"
# the prepare job names the file and why; its fix jobs do not run
prep=$(grep 'kind=prepare' "$out/ledger.tsv" | tail -1)
echo "$prep" | grep -q "outcome=FAILURE" || fail "the prepare job did not fail: $prep"
echo "$prep" | grep -q "$(basename "$(dirname "$model")")/model.safetensors is CORRUPTED (parameter 0 is nan)" ||
    fail "the prepare reason does not name the file and why: $prep"
pass "a NaN original fails its jobs, naming the file"
