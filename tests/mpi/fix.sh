#!/usr/bin/env bash
# `fixgrid fix`: one repair with no experiment file is the grid job itself.
# finetune (cpu preset, seed 1) on the tiny subject through `fixgrid run`, then
# `fixgrid fix` on the same stored original: the fixed model is byte-identical
# and the record's metrics equal the ledger's. An unknown approach, an unknown
# parameter and a model of another architecture each get one line and exit 2.
# F1 loads back in PyTorch with the logits `fixgrid predict` prints.
source "$(dirname "$0")/lib.sh"
mkexp exp.yaml 's/approach: noop/approach: finetune/' 's/^seeds: .*/seeds: [1]/' \
    's/^robustness:/robustness:\n  enabled: false/'
sed -i '/^name:/a preset: cpu' exp.yaml
mkdir -p store
run_np 1 run exp.yaml >run.log 2>&1 || { cat run.log >&2; fail "fixgrid run failed"; }
f0=$(find store -name model.safetensors | head -1)
grid_f1=$(find store -name 'fixed-*.safetensors' | head -1)
[ -n "$f0" ] && [ -n "$grid_f1" ] || fail "no original or fixed model in the store: $(find store)"
out=$(outdir_of exp.yaml)

"$FG_EXE" fix finetune --subject tiny --model "$f0" --out f1.safetensors --seed 1 --preset cpu \
    --record rec.txt >fix.log 2>&1 || { cat fix.log >&2; fail "fixgrid fix failed"; }
cmp f1.safetensors "$grid_f1" || fail "fixgrid fix wrote another model than the grid job"
$PY - "$out/raw.csv" rec.txt <<'PY' || fail "record vs ledger"
import csv, sys
row = [r for r in csv.DictReader(l for l in open(sys.argv[1]) if not l.startswith("#"))][0]
rec = dict(f.split("=", 1) for f in open(sys.argv[2]).read().strip().split("\t"))
assert rec["key"] == row["job_key"], (rec["key"], row["job_key"])
assert rec["variant"] == row["variant"] and rec["outcome"] == row["outcome"] == "OK", (rec, row)
for k in ("acc0", "acc", "rr", "nfr", "bc"):
    assert abs(float(rec[k]) - float(row[k])) < 1e-3, f"{k}: fix {rec[k]}, grid {row[k]}"
print("fix = grid:", {k: row[k] for k in ("job_key", "acc", "rr", "nfr", "bc", "variant")})
PY

# The fixed model loads back in PyTorch (tests/fixtures/fgdesc.py) with the
# logits `fixgrid predict` gives on the same inputs.
$PY - "$FG_SOURCE_DIR/tests/fixtures" f1.safetensors <<'PY' || fail "could not write the inputs"
import sys, torch
sys.path.insert(0, sys.argv[1]); import fgdesc
torch.manual_seed(5)
fgdesc.save_safetensors("xin.safetensors", {"x": torch.rand(32, 1, 28, 28)})
PY
"$FG_EXE" predict --model f1.safetensors --inputs xin.safetensors --logits --csv p.csv \
    >pred.log 2>&1 || { cat pred.log >&2; fail "fixgrid predict on f1 failed"; }
$PY - "$FG_SOURCE_DIR/tests/fixtures" f1.safetensors <<'PY' || fail "f1 in PyTorch"
import csv, sys, torch
sys.path.insert(0, sys.argv[1]); import fgdesc
model = fgdesc.load_fixgrid_file(sys.argv[2]).eval()
x = fgdesc.load_safetensors("xin.safetensors")[0]["x"]
rows = list(csv.DictReader(open("p.csv")))
k = sum(1 for c in rows[0] if c.startswith("logit_"))
got = torch.tensor([[float(r[f"logit_{j}"]) for j in range(k)] for r in rows])
with torch.no_grad():
    want = model(x)
err = (got - want).abs().max().item()
assert got.shape == want.shape and err < 1e-4, (got.shape, want.shape, err)
print(f"f1 in PyTorch: {len(rows)} inputs, max |logit difference| {err:.2e}")
PY

one_line_exit2() {
    local rc=0
    "$FG_EXE" "$@" >o.txt 2>e.txt || rc=$?
    [ "$rc" = 2 ] || { cat e.txt >&2; fail "'$*' exited $rc, expected 2"; }
    [ "$(grep -c . e.txt)" = 1 ] || { cat e.txt >&2; fail "'$*': not one line"; }
}
one_line_exit2 fix no-such-approach --subject tiny --model "$f0" --out x.safetensors
one_line_exit2 fix finetune --subject tiny --model "$f0" --out x.safetensors --param nope=1
one_line_exit2 fix finetune --subject tiny --model "$FG_SOURCE_DIR/tests/fixtures/lenet5.model.safetensors" \
    --out x.safetensors
[ ! -e x.safetensors ] || fail "a refused run left a model behind"
pass "fixgrid fix equals the grid job; bad inputs exit 2 with one line"
