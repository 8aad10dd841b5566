"""The study's tables built from fixgrid's results (and, for comparison, from the study's own).

Every builder returns a table.Table. A cell whose run did not produce numbers prints the outcome
code (UNADAPTABLE, FAILURE, CORRUPTED) across the subject's columns, a pair never run prints
"not run", and a metric that does not apply (AAOD off the fairness subjects) prints "-": none of
them ever prints as zero.
"""

import math

import numpy as np
import pandas as pd

from . import data as D
from .skesd import sk_esd_letters
from .table import Row, Span, Table

NOT_RUN = "not run"
NA = "-"
UP = "\u21d1"  # the study's double up-arrow for relative improvement

FAIRNESS_SUBJECTS = {"fmnist-s-resnet", "income-mlp", "cifar10s-resnet18", "utkface-facenet"}


def fmt(v, spec="%.2f"):
    return spec % v if D.finite(v) else NA


def fmt_up(v):
    return fmt(v, "%+.2f")


def fmt_time(sec):
    """Seconds as the study prints them (XXhYYm, MMmSSs), and plain seconds under a minute."""
    if not D.finite(sec):
        return NA
    sec = float(sec)
    if sec < 60:
        return "%.1fs" % sec if sec >= 1 else "%.2fs" % sec
    s = int(round(sec))
    if s < 3600:
        return "%02dm%02ds" % (s // 60, s % 60)
    m = int(round(sec / 60.0))
    return "%02dh%02dm" % (m // 60, m % 60)


def _index(df, keys=("approach", "subject")):
    return {tuple(r[k] for k in keys): r for _, r in df.iterrows()}


def _subject_cells(rec, fields):
    """Cells of one (approach, subject): a Span for non-OK outcomes, else the formatted fields."""
    if rec is None:
        return Span(NOT_RUN)
    if rec["outcome"] != "OK":
        return Span(rec["outcome"])
    return [f(rec.get(col)) for col, f in fields]


def fairness_subjects(df, subjects):
    """Subjects with AAOD columns: the known fairness subjects and any with an AAOD value."""
    out = set(s for s in subjects if s in FAIRNESS_SUBJECTS)
    if df is not None and "aaod_mean" in df.columns:
        out |= set(df.loc[pd.to_numeric(df["aaod_mean"], errors="coerce").notna(), "subject"])
    return out


def _per_subject_table(df, key, title, fields_of, note=""):
    subjects = D.subject_order(df["subject"])
    idx = _index(df)
    groups = [(D.subject_title(s), [c for c, _ in fields_of(s)]) for s in subjects]
    rows = []
    for fam, appr in D.rows_in_order(df):
        cells = []
        for s in subjects:
            fields = [(col, f) for _, (col, f) in fields_of(s)]
            cells.append(_subject_cells(idx.get((appr, s)), fields))
        rows.append(Row(fam, [fam, appr], cells))
    return Table(key, title, ["Family", "Approach"], groups, rows, D.FAMILY_TITLES, note)


def variants_note(df):
    """The approaches that ran as a documented variant (a substitute component), for the notes."""
    if "variant" not in df.columns:
        return ""
    v = df[df["variant"].astype(str).str.strip() != ""]
    pairs = sorted(set(zip(v["approach"], v["variant"])), key=lambda p: (D.approach_key(p[0]), p[1]))
    return (" Variants: %s." % ", ".join("%s = %s" % p for p in pairs)) if pairs else ""


def rq12_table(rq12):
    def fields(_s):
        return [("ACC", ("acc_mean", fmt)), (UP + "ACC", ("acc_up_rel_mean", fmt_up)),
                ("RR", ("rr_mean", fmt))]
    return _per_subject_table(
        rq12, "rq12", "RQ1/RQ2: accuracy, relative accuracy change and repair rate (%, mean of runs)",
        fields, "ACC and RR in %%; %sACC = (ACC(f1) - ACC(f0)) / ACC(f0) x 100. A cell is OK only "
        "when every run is; otherwise it shows the worst outcome (FAILURE > CORRUPTED > "
        "UNADAPTABLE).%s" % (UP, variants_note(rq12)))


def rq3_table(rq3):
    fair = fairness_subjects(rq3, rq3["subject"])

    def fields(s):
        out = [("ASR", ("asr_mean", fmt)), (UP + "ASR", ("asr_up_rel_mean", fmt_up))]
        if s in fair:
            out += [("AAOD", ("aaod_mean", lambda v: fmt(v, "%.4f"))),
                    (UP + "AAOD", ("aaod_up_rel_mean", fmt_up))]
        return out + [("NFR", ("nfr_mean", fmt))]
    return _per_subject_table(
        rq3, "rq3", "RQ3: robustness (ASR), fairness (AAOD) and backward compatibility (NFR)",
        fields, "ASR and NFR in %%, AAOD a rate in [0, 1]; %s columns: relative improvement over "
        "the original model (positive = better)." % UP)


def rq4_table(rq4):
    return _per_subject_table(
        rq4, "rq4", "RQ4: wall time of one fixing run (mean of runs)",
        lambda _s: [("time", ("time_s_mean", fmt_time))])


# -- family averages -------------------------------------------------------------------------

def family_averages(acc_rr, nfr_table, rr="rr", acc_up="acc_up_rel", nfr="nfr"):
    """dict family -> (cells, mean RR, mean ⇑ACC, mean NFR) over OK (approach, subject) cells.

    Simple means over the available cells, as in the study's family averages; cells whose outcome
    is not OK or whose value is missing are left out (never counted as zero)."""
    out = {}
    ok = acc_rr[acc_rr["outcome"] == "OK"]
    okn = nfr_table[nfr_table["outcome"] == "OK"]
    for fam in D.family_order(list(acc_rr["family"]) + list(nfr_table["family"])):
        a = ok[ok["family"] == fam]
        n = okn[okn["family"] == fam]
        rr_v = pd.to_numeric(a[rr], errors="coerce").dropna()
        up_v = pd.to_numeric(a[acc_up], errors="coerce").dropna()
        nfr_v = pd.to_numeric(n[nfr], errors="coerce").dropna()
        out[fam] = (len(a), rr_v.mean() if len(rr_v) else math.nan,
                    up_v.mean() if len(up_v) else math.nan,
                    nfr_v.mean() if len(nfr_v) else math.nan)
    return out


def family_table(rq12, rq3, reference):
    ours = family_averages(rq12, rq3, "rr_mean", "acc_up_rel_mean", "nfr_mean")
    study = family_averages(reference["acc_rr"], reference["asr_aaod_nfr"])
    fams = D.family_order(list(ours) + list(study))
    rows = []
    for fam in fams:
        cells = []
        for src in (ours, study):
            if fam in src:
                n, rr, up, nfr = src[fam]
                cells.append([str(n), fmt(rr), fmt_up(up), fmt(nfr)])
            else:
                cells.append(Span(NA))
        paper = D.PAPER_FAMILY_AVERAGES.get(fam)
        cells.append([fmt(paper["rr"]), fmt_up(paper["acc_up_rel"]), fmt(paper["nfr"])]
                     if paper else Span(NA))
        rows.append(Row(None, [D.FAMILY_TITLES.get(fam, fam)], cells))
    cols = ["cells", "RR", UP + "ACC", "NFR"]
    return Table("family", "Family averages: RR, %sACC and NFR per family (%%)" % UP, ["Family"],
                 [("fixgrid", cols), ("study (artifact tables)", cols),
                  ("study (final paper)", cols[1:])], rows,
                 note="Means over the (approach, subject) cells whose outcome is OK; the study's "
                 "artifact averages come from analysis/reference/, the final paper's from its text "
                 "(they differ: the paper revised its tables).")


# -- the study's headline orderings -----------------------------------------------------------

STUDY_FAMILIES = ("model", "layer", "neuron")


def _family_claim(fams, metric, want, pick):
    """Whether family `want` has the extreme `metric` (0 RR, 1 up-ACC, 2 NFR of family_averages'
    tuple) among the study's three families; pick is max or min. Needs `want` and at least one
    other family with a value."""
    vals = {f: fams[f][1 + metric] for f in STUDY_FAMILIES if f in fams and D.finite(fams[f][1 + metric])}
    shown = ", ".join("%s %s" % (f, fmt_up(v) if metric == 1 else fmt(v)) for f, v in vals.items())
    if want not in vals or len(vals) < 2:
        return NOT_RUN, shown or NA
    holds = pick(vals, key=vals.get) == want and list(vals.values()).count(vals[want]) == 1
    return ("holds" if holds else "does not hold"), shown


def _fairness_claim(df, approach, col, subjects):
    """Whether `approach` improves fairness (relative AAOD change > 0) on every fairness subject
    where it ran OK."""
    rows = df[(df["approach"].map(D.approach_label) == approach) & (df["outcome"] == "OK")
              & (df["subject"].isin(subjects))]
    vals = [(r["subject"], pd.to_numeric(r[col], errors="coerce")) for _, r in rows.iterrows()]
    vals = [(s, v) for s, v in vals if D.finite(v)]
    shown = ", ".join("%s %s" % (s, fmt_up(v)) for s, v in vals)
    if not vals:
        return NOT_RUN, NA
    return ("holds" if all(v > 0 for _, v in vals) else "does not hold"), shown


def orderings(acc_rr, nfr_aaod, fairness, cols):
    """[(claim, verdict, values)] for the study's four headline orderings, from an RQ1/RQ2 table
    and an RQ3 table alone. cols: (rr, acc_up, nfr, aaod_up) column names of those tables."""
    fams = family_averages(acc_rr, nfr_aaod, cols[0], cols[1], cols[2])
    return [
        ("model-level RR highest",) + _family_claim(fams, 0, "model", max),
        ("neuron-level accuracy loss largest",) + _family_claim(fams, 1, "neuron", min),
        ("layer-level NFR lowest",) + _family_claim(fams, 2, "layer", min),
        ("INNER improves AAOD on the fairness subjects",)
        + _fairness_claim(nfr_aaod, "IN", cols[3], fairness),
    ]


def orderings_table(rq12, rq3, reference):
    ours = orderings(rq12, rq3, fairness_subjects(rq3, set(rq3["subject"])),
                     ("rr_mean", "acc_up_rel_mean", "nfr_mean", "aaod_up_rel_mean"))
    study = orderings(reference["acc_rr"], reference["asr_aaod_nfr"], set(D.STUDY_FAIRNESS),
                      ("rr", "acc_up_rel", "nfr", "aaod_up_rel"))
    rows = [Row(None, [claim], [[v, shown], [sv, sshown]])
            for (claim, v, shown), (_, sv, sshown) in zip(ours, study)]
    cols = ["verdict", "values"]
    return Table("orderings", "The study's headline orderings: do they hold?", ["Ordering"],
                 [("fixgrid", cols), ("study (artifact tables)", cols)], rows,
                 note="From the tables alone: family means over the OK (approach, subject) cells "
                 "(as in the family table) for RR, %sACC and NFR; INNER's %sAAOD on each fairness "
                 "subject where it ran OK. \"not run\": too few cells to judge." % (UP, UP))


# -- statistical groups ----------------------------------------------------------------------

# metric -> (raw.csv column, higher is better, transform, description). ACC, ASR and AAOD are
# grouped on their relative change against f0 so that subjects with different base levels pool
# into one distribution per approach; RR and NFR are already rates relative to the test set.
GROUP_METRICS = [
    ("ACC", "acc_up_rel", True, None, UP + "ACC (relative accuracy change)"),
    ("RR", "rr", True, None, "RR"),
    ("ASR", "asr_up_rel", True, None, UP + "ASR (relative ASR reduction)"),
    ("AAOD", "aaod_up_rel", True, None, UP + "AAOD (relative AAOD reduction), fairness subjects"),
    ("NFR", "nfr", False, None, "NFR (lower is better)"),
    ("TIME", "time_s", False, lambda v: np.log10(np.maximum(v, 1e-3)), "log10 seconds (lower is better)"),
]


def group_letters(raw, alpha=0.05):
    """dict metric -> dict approach -> letter, from the per-run values of raw.csv's OK runs."""
    ok = raw[raw["outcome"] == "OK"]
    out = {}
    for metric, col, higher, transform, _ in GROUP_METRICS:
        samples = {}
        for appr, g in ok.groupby("approach", sort=False):
            v = pd.to_numeric(g[col], errors="coerce").dropna().to_numpy(dtype=float)
            if transform is not None:
                v = transform(v)
            if len(v):
                samples[appr] = v
        out[metric] = sk_esd_letters(samples, higher_is_better=higher, alpha=alpha)
    return out


def groups_table(raw, reference, alpha=0.05):
    letters = group_letters(raw, alpha)
    ref = reference["groups"].set_index("approach")
    metrics = [m for m, *_ in GROUP_METRICS]
    rows = []
    for fam, appr in D.rows_in_order(raw):
        ours = [letters[m].get(appr, NA) for m in metrics]
        if appr in ref.index:
            theirs = [str(ref.loc[appr, m.lower()]) for m in metrics]
        else:
            theirs = Span(NA)
        rows.append(Row(fam, [fam, appr], [ours, theirs]))
    desc = "; ".join("%s: %s" % (m, d) for m, _, _, _, d in GROUP_METRICS)
    return Table("groups", "Statistical groups per metric (Scott-Knott ESD, 'a' = best group)",
                 ["Family", "Approach"], [("fixgrid", metrics), ("study", metrics)], rows,
                 D.FAMILY_TITLES,
                 note="fixgrid: Scott-Knott ESD (alpha = %.2f, negligible |d| < 0.2) over the "
                 "per-run values of raw.csv (OK runs, all subjects pooled). Values ranked: %s. The "
                 "study's letters come from an unnamed test and may overlap ('ab')." % (alpha, desc))


# -- discussion ------------------------------------------------------------------------------

DISCUSSION_METHODS = ["plain", "soft", "hard", "perturb", "mcdropout", "temperature"]
DISCUSSION_TITLES = {"plain": "plain fix (NO)", "soft": "soft voting (SV)",
                     "hard": "hard voting (HV)", "perturb": "uncertainty, perturbation (UP)",
                     "mcdropout": "uncertainty, MC dropout (UD)",
                     "temperature": "uncertainty, temperature (US)"}


def discussion_table(disc):
    methods = [m for m in DISCUSSION_METHODS if m in set(disc["method"])]
    methods += sorted(set(disc["method"]) - set(methods))
    metrics = [("ACC", "acc_mean", fmt), ("ASR", "asr_mean", fmt),
               ("AAOD", "aaod_mean", lambda v: fmt(v, "%.4f")), ("NFR", "nfr_mean", fmt)]
    rows = []
    for m in methods:
        g = disc[disc["method"] == m]
        cells = [[f(pd.to_numeric(g[col], errors="coerce").mean()) for _, col, f in metrics]]
        rows.append(Row(None, [DISCUSSION_TITLES.get(m, m), str(len(g))], cells))
    return Table("discussion", "Discussion: ensembles of f0 and f1 against the plain fixed model",
                 ["Method", "cells"], [("mean over (approach, subject)", [n for n, _, _ in metrics])],
                 rows, note="AAOD over the fairness subjects only; ACC, ASR, NFR in %.")


# -- fixgrid beside the study ----------------------------------------------------------------

COMPARE_METRICS = [
    ("ACC", "acc_mean", "acc_rr", "acc", fmt),
    (UP + "ACC", "acc_up_rel_mean", "acc_rr", "acc_up_rel", fmt_up),
    ("RR", "rr_mean", "acc_rr", "rr", fmt),
    ("ASR", "asr_mean", "asr_aaod_nfr", "asr", fmt),
    (UP + "ASR", "asr_up_rel_mean", "asr_aaod_nfr", "asr_up_rel", fmt_up),
    ("AAOD", "aaod_mean", "asr_aaod_nfr", "aaod", lambda v: fmt(v, "%.4f")),
    (UP + "AAOD", "aaod_up_rel_mean", "asr_aaod_nfr", "aaod_up_rel", fmt_up),
    ("NFR", "nfr_mean", "asr_aaod_nfr", "nfr", fmt),
    ("TIME", "time_s_mean", "time", "time_s", fmt_time),
]


def merged_results(res):
    """One frame per (approach, subject) with the rq12, rq3 and rq4 means and their outcomes."""
    parts = []
    for name, cols in (("rq12.csv", ["acc_mean", "acc_up_rel_mean", "rr_mean"]),
                       ("rq3.csv", ["asr_mean", "asr_up_rel_mean", "aaod_mean", "aaod_up_rel_mean",
                                    "nfr_mean"]),
                       ("rq4.csv", ["time_s_mean"])):
        t = res[name]
        if t is None:
            continue
        t = t[["approach", "family", "subject", "outcome"] + cols].copy()
        t = t.rename(columns={"outcome": "outcome_" + name.split(".")[0]})
        parts.append(t)
    if not parts:
        return None
    m = parts[0]
    for t in parts[1:]:
        m = m.merge(t, on=["approach", "family", "subject"], how="outer")
    return m


def comparison_pairs(merged, reference):
    """(approach, fixgrid subject, study subject) for every fixgrid cell with a study counterpart."""
    ref_keys = set(zip(reference["acc_rr"]["approach"], reference["acc_rr"]["subject"]))
    pairs = []
    for fam, appr in D.rows_in_order(merged):
        for s in D.subject_order(merged["subject"]):
            role = D.SUBJECT_ROLE.get(s)
            if role and (appr, role) in ref_keys and \
                    ((merged["approach"] == appr) & (merged["subject"] == s)).any():
                pairs.append((fam, appr, s, role))
    return pairs


def _ref_value(reference, table, appr, role, col):
    t = reference[table]
    r = t[(t["approach"] == appr) & (t["subject"] == role)]
    if r.empty:
        return None, math.nan
    r = r.iloc[0]
    return r["outcome"], r.get(col, math.nan)


def comparison_table(res, reference):
    merged = merged_results(res)
    rows = []
    for fam, appr, s, role in comparison_pairs(merged, reference):
        rec = merged[(merged["approach"] == appr) & (merged["subject"] == s)].iloc[0]
        cells = []
        for _, col, rtab, rcol, f in COMPARE_METRICS:
            out_col = {"acc_rr": "outcome_rq12", "asr_aaod_nfr": "outcome_rq3",
                       "time": "outcome_rq4"}[rtab]
            ours = rec.get(out_col)
            ours_s = (ours if isinstance(ours, str) and ours != "OK" else
                      f(rec.get(col)) if isinstance(ours, str) else NOT_RUN)
            r_out, r_val = _ref_value(reference, rtab, appr, role, rcol)
            theirs_s = r_out if r_out and r_out != "OK" else f(r_val)
            cells.append([ours_s, theirs_s])
        rows.append(Row(fam, [fam, appr, "%s \u2192 %s" % (s, role)], cells))
    return Table("compare", "fixgrid beside the study, per approach and metric",
                 ["Family", "Approach", "subject \u2192 study subject"],
                 [(m, ["fixgrid", "study"]) for m, *_ in COMPARE_METRICS], rows, D.FAMILY_TITLES,
                 note="Each fixgrid subject is set beside the study subject whose role it plays "
                 "(table 'subject mapping'); CPU-scale numbers are not expected to match the "
                 "study's, only to be read in the same frame.")


def mapping_table(subjects_present):
    rows = []
    for s in D.SUBJECTS + sorted(set(subjects_present) - set(D.SUBJECTS)):
        role = D.SUBJECT_ROLE.get(s)
        rows.append(Row(None, [s], [[role or "(none)", "yes" if s in FAIRNESS_SUBJECTS else "no",
                                     "yes" if s in subjects_present else "no"]]))
    return Table("mapping", "Subject mapping: each fixgrid subject and the study subject whose role it plays",
                 ["fixgrid subject"], [("", ["study subject", "fairness subject", "in these results"])],
                 rows)
