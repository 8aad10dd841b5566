"""Reading fixgrid's result tables and the study's reference tables, and the fixed vocabulary.

The runner writes CSVs that open with "# key: value" provenance lines and then a header row; the
study's reference tables (analysis/reference/, copied from the shared study notes) are plain CSVs.
Everything the report prints about ordering (families, approaches, subjects) and about the roles of
the CPU-scale subjects lives here, so tables and figures agree.
"""

import os

import numpy as np
import pandas as pd

FAMILIES = ["model", "layer", "neuron", "baseline"]
FAMILY_TITLES = {
    "model": "Model-level",
    "layer": "Layer-level",
    "neuron": "Neuron-level",
    "baseline": "Baselines (fixgrid)",
}
# The study's table order; fixgrid's two baselines follow.
APPROACHES = ["AP", "ET", "FM", "DR", "HUDD", "HR", "3M", "RA", "AR", "CARE", "NR", "IR", "DTR",
              "GM", "VERE", "IN", "noop", "finetune"]
# The runner writes the registry's approach names (src/fix/*.c `.name`); the report prints the
# study's labels. Names of approaches not implemented yet are the obvious ones from the study's
# table (STUDY.md section 2); any label is also accepted in any case.
APPROACH_ALIASES = {
    "apricot": "AP", "editable": "ET", "editable-training": "ET", "editable_training": "ET",
    "fsgmix": "FM", "deeprepair": "DR", "hudd": "HUDD", "hybridrepair": "HR", "threem": "3M", "3m-dnn": "3M",
    "3mdnn": "3M", "3m_dnn": "3M", "reassure": "RA", "arachne": "AR", "care": "CARE",
    "neurecover": "NR", "irepair": "IR", "dtr": "DTR", "genmunn": "GM", "vere": "VERE",
    "inner": "IN", "noop": "noop", "finetune": "finetune", "ft": "finetune",
}


def approach_label(name):
    """The study's label for a runner approach name or label; unknown names are kept as they are."""
    key = str(name).strip()
    low = key.lower()
    if low in APPROACH_ALIASES:
        return APPROACH_ALIASES[low]
    for label in APPROACHES:
        if low == label.lower():
            return label
    return key


OUTCOMES = ["OK", "UNADAPTABLE", "CORRUPTED", "FAILURE"]  # increasing severity

# fixgrid subject -> the study subject whose role it plays (None: no counterpart).
SUBJECT_ROLE = {
    "fmnist-lenet5": "MNIST",
    "fmnist-vgg": "CIFAR-10",
    "fmnist-s-resnet": "CIFAR-10S",
    "income-mlp": "UTKFace",
    "tiny": None,
    "mnist-lenet5": "MNIST",
    "cifar10-vgg16": "CIFAR-10",
    "cifar10s-resnet18": "CIFAR-10S",
    "utkface-facenet": "UTKFace",
}
SUBJECTS = list(SUBJECT_ROLE)
STUDY_SUBJECTS = ["MNIST", "UTKFace", "CIFAR-10", "CIFAR-10S", "ImageNet"]
STUDY_FAIRNESS = ["UTKFace", "CIFAR-10S"]
# Paper's final family averages (STUDY.md section 5), printed beside the artifact's.
PAPER_FAMILY_AVERAGES = {
    "model": {"rr": 14.82, "acc_up_rel": 0.17, "nfr": 1.94},
    "layer": {"rr": 7.32, "acc_up_rel": -0.50, "nfr": 0.94},
    "neuron": {"rr": 5.99, "acc_up_rel": -1.01, "nfr": 1.72},
}

RESULT_FILES = ["raw.csv", "rq12.csv", "rq3.csv", "rq4.csv", "discussion.csv"]


class ResultsError(Exception):
    """A results directory that does not follow the runner's contract."""


def read_provenance(path):
    """The "# key: value" lines at the head of a results CSV, as a dict (in file order)."""
    prov = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("#"):
                break
            body = line[1:].strip()
            if ":" in body:
                key, value = body.split(":", 1)
                prov[key.strip()] = value.strip()
    return prov


def read_results_csv(path, required):
    """One runner CSV as a DataFrame; raises ResultsError naming the file on missing columns."""
    try:
        df = pd.read_csv(path, comment="#", keep_default_na=True, na_values=[""])
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ResultsError("%s: cannot read: %s" % (path, e)) from e
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ResultsError("%s: missing column(s): %s" % (path, ", ".join(missing)))
    for col in ("approach", "family", "subject", "outcome", "variant", "method"):
        if col in df.columns:
            df[col] = df[col].astype("string").fillna("").astype(object)
    if "approach" in df.columns:
        df["approach"] = df["approach"].map(approach_label)
    if "family" in df.columns:
        df["family"] = df["family"].where(df["family"] != "", "unknown")
    if "outcome" in df.columns:
        bad = sorted(set(df["outcome"]) - set(OUTCOMES))
        if bad:
            raise ResultsError("%s: unknown outcome(s): %s" % (path, ", ".join(bad)))
    return df


REQUIRED = {
    "raw.csv": ["approach", "family", "subject", "seed", "outcome", "acc0", "acc", "acc_up_rel",
                "rr", "nfr", "asr", "asr_up_rel", "aaod", "aaod_up_rel", "time_s"],
    "rq12.csv": ["approach", "family", "subject", "outcome", "acc_mean", "acc_up_rel_mean",
                 "rr_mean"],
    "rq3.csv": ["approach", "family", "subject", "outcome", "asr_mean", "asr_up_rel_mean",
                "aaod_mean", "aaod_up_rel_mean", "nfr_mean"],
    "rq4.csv": ["approach", "family", "subject", "outcome", "time_s_mean"],
    "discussion.csv": ["approach", "family", "subject", "method", "acc_mean", "asr_mean",
                       "aaod_mean", "nfr_mean"],
}


class Results:
    """The runner's tables of one results directory. Missing optional files become None."""

    def __init__(self, results_dir):
        self.dir = results_dir
        self.provenance = {}
        self.tables = {}
        if not os.path.isdir(results_dir):
            raise ResultsError("%s: not a directory" % results_dir)
        for name in RESULT_FILES:
            path = os.path.join(results_dir, name)
            if not os.path.exists(path):
                self.tables[name] = None
                continue
            self.provenance[name] = read_provenance(path)
            self.tables[name] = read_results_csv(path, REQUIRED[name])
        if all(t is None for t in self.tables.values()):
            raise ResultsError("%s: none of %s found" % (results_dir, ", ".join(RESULT_FILES)))

    def __getitem__(self, name):
        return self.tables[name]


def load_reference(ref_dir):
    """The study's tables: dict with acc_rr, asr_aaod_nfr, time, groups DataFrames."""
    out = {}
    for name in ("acc_rr", "asr_aaod_nfr", "time", "groups"):
        path = os.path.join(ref_dir, name + ".csv")
        df = pd.read_csv(path, keep_default_na=False, na_values=[""])
        for col in ("family", "approach", "subject", "outcome"):
            if col in df.columns:
                df[col] = df[col].astype(str)
        out[name] = df
    return out


def family_order(families):
    """Known families in the study's order, then any others alphabetically."""
    fams = list(dict.fromkeys(families))
    known = [f for f in FAMILIES if f in fams]
    return known + sorted(f for f in fams if f not in FAMILIES)


def approach_key(approach):
    return (APPROACHES.index(approach), "") if approach in APPROACHES else (len(APPROACHES), approach)


def subject_order(subjects):
    subs = list(dict.fromkeys(subjects))
    return [s for s in SUBJECTS if s in subs] + sorted(s for s in subs if s not in SUBJECTS)


def subject_title(subject):
    role = SUBJECT_ROLE.get(subject)
    return "%s (%s)" % (subject, role) if role else subject


def rows_in_order(df):
    """(family, approach) pairs of df in display order: families, then approaches by the study's order.

    An approach is shown under the first family the data gives it (a runner bug that gives two
    families to one label must not duplicate the row)."""
    fam_of = {}
    for fam, appr in zip(df["family"], df["approach"]):
        fam_of.setdefault(appr, fam)
    rows = []
    for fam in family_order(fam_of.values()):
        apps = sorted((a for a, f in fam_of.items() if f == fam), key=approach_key)
        rows.extend((fam, a) for a in apps)
    return rows


def worst_outcome(outcomes):
    outs = [o for o in outcomes if o in OUTCOMES]
    return max(outs, key=OUTCOMES.index) if outs else "OK"


def finite(x):
    try:
        return x is not None and np.isfinite(float(x))
    except (TypeError, ValueError):
        return False
