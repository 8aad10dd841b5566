#!/usr/bin/python3
"""Writes the small hand-made results directory the analysis tests read (analysis/tests/data/sample/).

The runner is built in parallel, so this directory follows its CSV contract by hand. Values are
built from round numbers so that each table cell the tests check can be computed by hand:

  acc  = acc0 + d(approach) + 0.1 (seed - 1)          seeds 0, 1, 2: the mean is acc0 + d
  rr   = rr(approach) + (seed - 1)                     mean rr(approach)
  nfr  = acc0 + rr (100 - acc0) / 100 - acc            the study's identity, so NFR is consistent
  asr  = asr0 - a(approach) + 2 (seed - 1)
  aaod = aaod0 - f(approach) + 0.001 (seed - 1)        fairness subjects only
  time = t(approach) x subject factor x (1 + 0.1 (seed - 1))

Outcomes cover every code: RA and DTR UNADAPTABLE where the study's counterparts were, one FAILURE
seed (ET on income-mlp) and one CORRUPTED seed (3M on fmnist-s-resnet) that make the whole cell
non-OK, and an approach of an unknown family ("mystery", family "experimental") run on one
subject only. AP and AR are written under the runner's registry names (apricot, arachne), the
others under the study's labels, as the report must accept both. Run it again after changing it:
`analysis/tests/data/make_sample.py`.
"""

import os

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "sample")

SUBJECTS = {  # acc0, asr0, aaod0 (None: no groups), time factor
    "fmnist-lenet5": (85.0, 80.0, None, 1.0),
    "fmnist-s-resnet": (70.0, 70.0, 0.2, 3.0),
    "income-mlp": (80.0, 60.0, 0.1, 0.5),
}
APPROACHES = {  # family, d (acc points), rr, a (asr points), f (aaod), t (seconds)
    "AP": ("model", 1.0, 40.0, 20.0, 0.02, 600.0),
    "ET": ("model", 0.5, 30.0, 10.0, -0.01, 300.0),
    "3M": ("layer", 0.0, 5.0, 0.0, 0.0, 2.0),
    "RA": ("layer", -0.5, 10.0, -5.0, 0.0, 1.5),
    "AR": ("neuron", -0.2, 8.0, 2.0, 0.005, 30.0),
    "DTR": ("neuron", -1.0, 12.0, 4.0, 0.01, 45.0),
    "noop": ("baseline", 0.0, 0.0, 0.0, 0.0, 0.01),
    "mystery": ("experimental", 0.3, 20.0, 6.0, 0.0, 10.0),
}
RUNNER_NAMES = {"AP": "apricot", "AR": "arachne"}
# (approach, subject) -> {seed: (outcome, reason)} for non-OK seeds; pairs missing from RUN are not run.
NOT_OK = {
    ("RA", "fmnist-s-resnet"): {s: ("UNADAPTABLE", "residual connections") for s in range(3)},
    ("RA", "income-mlp"): {s: ("UNADAPTABLE", "no ReLU hidden layer to patch") for s in range(3)},
    ("DTR", "fmnist-lenet5"): {s: ("UNADAPTABLE", "no batch normalisation") for s in range(3)},
    ("DTR", "income-mlp"): {s: ("UNADAPTABLE", "no batch normalisation") for s in range(3)},
    ("ET", "income-mlp"): {2: ("FAILURE", "time limit")},
    ("3M", "fmnist-s-resnet"): {1: ("CORRUPTED", "NaN in weights")},
}
SEVERITY = ["OK", "UNADAPTABLE", "CORRUPTED", "FAILURE"]
PROVENANCE = ["fixgrid_version: 0.1.0-sample", "commit: 0000000 (hand-made test data)",
              "blas: none", "config_hash: sample", "experiment: analysis/tests/data/make_sample.py"]


def runs():
    for appr, (fam, d, rr_b, a, f, t) in APPROACHES.items():
        for subj, (acc0, asr0, aaod0, tf) in SUBJECTS.items():
            if appr == "mystery" and subj != "fmnist-lenet5":
                continue
            for seed in range(3):
                o = seed - 1
                row = dict(approach=RUNNER_NAMES.get(appr, appr), family=fam, variant="lp-verifier" if appr == "3M" else "",
                           subject=subj, seed=seed, outcome="OK", reason="",
                           job_key="fix/%s/%s/%d" % (appr, subj, seed))
                bad = NOT_OK.get((appr, subj), {}).get(seed)
                if bad:
                    row["outcome"], row["reason"] = bad
                    yield row
                    continue
                if appr == "noop":
                    acc, rr, asr, aaod = acc0, 0.0, asr0, aaod0
                else:
                    acc = acc0 + d + 0.1 * o
                    rr = rr_b + o
                    asr = asr0 - a + 2.0 * o
                    aaod = None if aaod0 is None else aaod0 - f + 0.001 * o
                nfr = acc0 + rr * (100.0 - acc0) / 100.0 - acc
                row.update(acc0=acc0, acc=acc, acc_up_rel=(acc - acc0) / acc0 * 100.0, rr=rr,
                           nfr=nfr, bc=(acc0 - nfr) / acc0 * 100.0, asr0=asr0, asr=asr,
                           asr_up_rel=(asr0 - asr) / asr0 * 100.0,
                           asr_n=500 if subj != "income-mlp" else 420,
                           time_s=t * tf * (1.0 + 0.1 * o), evals=100 * (seed + 1),
                           weights_changed=10 * (seed + 1))
                if aaod0 is not None:
                    row.update(aaod0=aaod0, aaod=aaod, aaod_up_rel=(aaod0 - aaod) / aaod0 * 100.0)
                if subj == "income-mlp":
                    row.update(spd=-0.05 - 0.01 * o, eod=-0.03, di=0.9)
                yield row


RAW_COLS = ["approach", "family", "variant", "subject", "seed", "outcome", "reason", "acc0", "acc",
            "acc_up_rel", "rr", "nfr", "bc", "asr0", "asr", "asr_up_rel", "asr_n", "aaod0", "aaod",
            "aaod_up_rel", "spd", "eod", "di", "time_s", "evals", "weights_changed", "job_key"]


def aggregate(raw, metrics, extra=()):
    rows = []
    for (appr, subj), g in raw.groupby(["approach", "subject"], sort=False):
        ok = g[g["outcome"] == "OK"]
        out = dict(approach=appr, family=g["family"].iloc[0], subject=subj,
                   outcome=max(g["outcome"], key=SEVERITY.index), n_ok=len(ok), n_runs=len(g))
        for m in metrics:
            v = ok[m].dropna()
            out[m + "_mean"] = v.mean() if len(v) else np.nan
            out[m + "_std"] = v.std(ddof=1) if len(v) > 1 else np.nan
        for e in extra:
            out[e] = ok[e].max() if len(ok) else np.nan
        out["variant"] = g["variant"].iloc[0]
        rows.append(out)
    return pd.DataFrame(rows)


def write(name, df, cols):
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="utf-8") as f:
        for p in PROVENANCE:
            f.write("# %s\n" % p)
        df[cols].to_csv(f, index=False, float_format="%.6g", lineterminator="\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    raw = pd.DataFrame(list(runs()), columns=RAW_COLS)
    write("raw.csv", raw, RAW_COLS)
    rq12 = aggregate(raw, ["acc", "acc_up_rel", "rr"])
    write("rq12.csv", rq12, ["approach", "family", "subject", "outcome", "n_ok", "n_runs", "acc_mean",
                             "acc_std", "acc_up_rel_mean", "acc_up_rel_std", "rr_mean", "rr_std",
                             "variant"])
    rq3 = aggregate(raw, ["asr", "asr_up_rel", "aaod", "aaod_up_rel", "nfr"], extra=["asr_n"])
    write("rq3.csv", rq3, ["approach", "family", "subject", "outcome", "n_ok", "asr_mean", "asr_std",
                           "asr_up_rel_mean", "asr_up_rel_std", "asr_n", "aaod_mean", "aaod_std",
                           "aaod_up_rel_mean", "aaod_up_rel_std", "nfr_mean", "nfr_std", "variant"])
    rq4 = aggregate(raw, ["time_s"])
    write("rq4.csv", rq4, ["approach", "family", "subject", "outcome", "n_ok", "time_s_mean",
                           "time_s_std", "variant"])
    # Discussion: each ensemble moves the plain fix by a fixed step, for AP and AR on every subject.
    steps = {"plain": (0, 0, 0, 0), "soft": (0.1, -2.0, -0.005, -0.4),
             "hard": (0.1, -1.5, -0.004, -0.3), "perturb": (0.15, -1.0, -0.003, -0.2),
             "mcdropout": (0.2, -1.0, -0.002, -0.2), "temperature": (0.1, -2.0, -0.005, -0.35)}
    rows = []
    for appr in ("apricot", "arachne"):
        for subj in SUBJECTS:
            a = rq12[(rq12.approach == appr) & (rq12.subject == subj)].iloc[0]
            b = rq3[(rq3.approach == appr) & (rq3.subject == subj)].iloc[0]
            for m, (da, ds, df_, dn) in steps.items():
                rows.append(dict(approach=appr, family=a["family"], subject=subj, method=m, n=3,
                                 acc_mean=a["acc_mean"] + da, asr_mean=b["asr_mean"] + ds,
                                 aaod_mean=b["aaod_mean"] + df_, nfr_mean=b["nfr_mean"] + dn))
    write("discussion.csv", pd.DataFrame(rows),
          ["approach", "family", "subject", "method", "n", "acc_mean", "asr_mean", "aaod_mean",
           "nfr_mean"])


if __name__ == "__main__":
    main()
