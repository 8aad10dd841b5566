"""The report's figures (PNG), drawn the same way from fixgrid's results and from the study's tables.

Each plotting function takes a plain "cells" frame (one row per approach and subject, the study's
column names: approach, family, subject, outcome, acc_up_rel, rr, asr_up_rel, aaod_up_rel, nfr,
time_s) so the study's figures come out of the same code as fixgrid's and can be set side by side.
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.patches import Patch  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import data as D  # noqa: E402
from .tables import DISCUSSION_METHODS, UP  # noqa: E402

FAMILY_COLOURS = {"model": "#1f77b4", "layer": "#ff7f0e", "neuron": "#2ca02c", "baseline": "#7f7f7f"}
OTHER_COLOURS = ["#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#d62728"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
DPI = 110


def family_colour(fam, families):
    if fam in FAMILY_COLOURS:
        return FAMILY_COLOURS[fam]
    others = [f for f in D.family_order(families) if f not in FAMILY_COLOURS]
    return OTHER_COLOURS[others.index(fam) % len(OTHER_COLOURS)] if fam in others else "#000000"


def cells_from_results(res):
    """fixgrid's rq12/rq3/rq4 means renamed to the study's column names (one row per cell)."""
    from .tables import merged_results
    m = merged_results(res)
    if m is None:
        return pd.DataFrame(columns=["approach", "family", "subject", "outcome"])
    out = m.rename(columns={"acc_mean": "acc", "acc_up_rel_mean": "acc_up_rel", "rr_mean": "rr",
                            "asr_mean": "asr", "asr_up_rel_mean": "asr_up_rel",
                            "aaod_mean": "aaod", "aaod_up_rel_mean": "aaod_up_rel",
                            "nfr_mean": "nfr", "time_s_mean": "time_s"})
    for col in ("acc", "acc_up_rel", "rr", "asr", "asr_up_rel", "aaod", "aaod_up_rel", "nfr",
                "time_s"):
        if col not in out.columns:  # a results directory without that table
            out[col] = np.nan
    # The figures use a cell only when every table that has it calls it OK.
    outs = [c for c in out.columns if c.startswith("outcome_")]
    out["outcome"] = out[outs].apply(lambda r: D.worst_outcome([o for o in r if isinstance(o, str)]),
                                     axis=1)
    return out


def cells_from_reference(ref):
    keys = ["family", "approach", "subject", "outcome"]
    m = ref["acc_rr"].merge(ref["asr_aaod_nfr"], on=keys, how="outer")
    m = m.merge(ref["time"], on=keys, how="outer")
    return m


def _no_data(ax, what):
    ax.text(0.5, 0.5, "no %s" % what, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig, path):
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def rr_vs_accup(cells, path, title):
    """RR against ⇑ACC, one point per OK cell, colour = family, marker = subject."""
    ok = cells[cells["outcome"] == "OK"].dropna(subset=["rr", "acc_up_rel"])
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    if ok.empty:
        _no_data(ax, "OK cells")
    else:
        fams = list(ok["family"])
        present = set(ok["subject"])
        known = D.SUBJECTS + D.STUDY_SUBJECTS
        subjects = [s for s in known if s in present] + sorted(present - set(known))
        for fam in D.family_order(fams):
            f = ok[ok["family"] == fam]
            ax.scatter([], [], color=family_colour(fam, fams), label=D.FAMILY_TITLES.get(fam, fam))
            for si, s in enumerate(subjects):
                g = f[f["subject"] == s]
                ax.scatter(g["acc_up_rel"], g["rr"], color=family_colour(fam, fams),
                           marker=MARKERS[si % len(MARKERS)], s=36, alpha=0.85, edgecolor="black",
                           linewidth=0.4)
        for si, s in enumerate(subjects):
            ax.scatter([], [], color="white", edgecolor="black", marker=MARKERS[si % len(MARKERS)],
                       label=s)
        for _, r in ok.iterrows():
            ax.annotate(r["approach"], (r["acc_up_rel"], r["rr"]), fontsize=6,
                        xytext=(3, 2), textcoords="offset points")
        ax.axvline(0.0, color="grey", linewidth=0.6)
        ax.set_xlabel(UP + "ACC (%, relative accuracy change)")
        ax.set_ylabel("RR (%, repair rate)")
        ax.legend(fontsize=7, loc="best", framealpha=0.8)
    ax.set_title(title, fontsize=10)
    _save(fig, path)


SIDE_EFFECTS = [(UP + "ACC", "acc_up_rel", 1.0), (UP + "ASR", "asr_up_rel", 1.0),
                (UP + "AAOD", "aaod_up_rel", 1.0), ("NFR", "nfr", -1.0)]


def side_effect_matrix(cells):
    """approach x metric means over OK cells (rows in display order), with each row's family."""
    ok = cells[cells["outcome"] == "OK"]
    rows = D.rows_in_order(cells) if not cells.empty else []
    mat = np.full((len(rows), len(SIDE_EFFECTS)), np.nan)
    for i, (_, appr) in enumerate(rows):
        g = ok[ok["approach"] == appr]
        for j, (_, col, _) in enumerate(SIDE_EFFECTS):
            if col in g.columns:
                v = pd.to_numeric(g[col], errors="coerce").dropna()
                if len(v):
                    mat[i, j] = v.mean()
    return rows, mat


def side_effects_heatmap(cells, path, title):
    """Heatmap approach x metric. Colour: better (green) or worse (red) than f0, scaled per column
    so metrics of different ranges share one colour scale; the numbers are the means themselves."""
    rows, mat = side_effect_matrix(cells)
    fig, ax = plt.subplots(figsize=(5.2, 0.32 * max(len(rows), 4) + 1.2))
    if not rows or np.all(np.isnan(mat)):
        _no_data(ax, "OK cells")
    else:
        score = mat * np.array([s for _, _, s in SIDE_EFFECTS])
        # a metric no OK cell has (AAOD off the fairness subjects) is an all-NaN
        # column: its scale is a placeholder, masked out below anyway
        finite = np.isfinite(score)
        scale = np.where(finite, np.abs(np.where(finite, score, 0.0)), 0.0).max(axis=0)
        scale[scale == 0] = 1.0
        ax.imshow(np.ma.masked_invalid(score / scale), cmap="RdYlGn", vmin=-1, vmax=1,
                  aspect="auto")
        for i in range(len(rows)):
            for j in range(len(SIDE_EFFECTS)):
                v = mat[i, j]
                ax.text(j, i, "-" if np.isnan(v) else ("%.2f" % v), ha="center", va="center",
                        fontsize=7)
        ax.set_xticks(range(len(SIDE_EFFECTS)), [n for n, _, _ in SIDE_EFFECTS])
        ax.set_yticks(range(len(rows)), ["%s (%s)" % (a, f) for f, a in rows], fontsize=7)
        ax.xaxis.tick_top()
    ax.set_title(title, fontsize=10, pad=22)
    _save(fig, path)


def time_per_approach(times, path, title, per_run=True):
    """Time per approach on a log scale: one point per run (fixgrid) or per subject (study), and
    the mean as a bar outline."""
    ok = times[(times["outcome"] == "OK")].copy()
    ok["time_s"] = pd.to_numeric(ok["time_s"], errors="coerce")
    ok = ok[ok["time_s"] > 0]
    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    if ok.empty:
        _no_data(ax, "timed runs")
    else:
        rows = D.rows_in_order(ok)
        fams = [f for f, _ in rows]
        for i, (fam, appr) in enumerate(rows):
            v = ok.loc[ok["approach"] == appr, "time_s"].to_numpy(dtype=float)
            c = family_colour(fam, fams)
            ax.bar(i, np.exp(np.mean(np.log(v))), color=c, alpha=0.35, edgecolor=c)
            jitter = np.linspace(-0.2, 0.2, len(v)) if len(v) > 1 else np.zeros(1)
            ax.scatter(i + jitter, v, color=c, s=10, zorder=3)
        ax.set_yscale("log")
        ax.set_xticks(range(len(rows)), [a for _, a in rows], rotation=45, fontsize=8)
        ax.set_ylabel("seconds per fixing run (log scale)")
        ax.legend(handles=[Patch(color=family_colour(f, fams), alpha=0.5,
                                 label=D.FAMILY_TITLES.get(f, f)) for f in D.family_order(fams)],
                  fontsize=7)
        ax.text(0.01, 0.98, "points: %s; bars: geometric mean" % ("runs" if per_run else "subjects"),
                transform=ax.transAxes, fontsize=7, va="top")
    ax.set_title(title, fontsize=10)
    _save(fig, path)


def discussion_figure(disc, path, title):
    """Ensembles of f0 and f1 against the plain fix: per metric, the change of each method against
    the plain fixed model of the same (approach, subject), one box per method."""
    metrics = [("ACC (points)", "acc_mean", 1), ("ASR (points)", "asr_mean", -1),
               ("AAOD (rate)", "aaod_mean", -1), ("NFR (points)", "nfr_mean", -1)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(12.0, 3.4))
    methods = [m for m in DISCUSSION_METHODS if m != "plain" and m in set(disc["method"])]
    methods += sorted(set(disc["method"]) - set(DISCUSSION_METHODS))
    plain = disc[disc["method"] == "plain"].set_index(["approach", "subject"])
    for ax, (name, col, better) in zip(axes, metrics):
        boxes = []
        for m in methods:
            g = disc[disc["method"] == m].set_index(["approach", "subject"])
            common = g.index.intersection(plain.index)
            d = (pd.to_numeric(g.loc[common, col], errors="coerce") -
                 pd.to_numeric(plain.loc[common, col], errors="coerce")).dropna()
            boxes.append(d.to_numpy(dtype=float))
        if not methods or all(len(b) == 0 for b in boxes):
            _no_data(ax, "ensembles")
        else:
            ax.boxplot([b if len(b) else [np.nan] for b in boxes], labels=methods)
            for i, b in enumerate(boxes, start=1):  # the cells themselves, over the boxes
                ax.scatter(np.full(len(b), float(i)) + np.linspace(-0.15, 0.15, len(b)), b,
                           s=8, color="#4c72b0", alpha=0.7, zorder=3)
            ax.axhline(0.0, color="grey", linewidth=0.8)
            ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.set_title("%s, %s is better" % (name, "up" if better > 0 else "down"), fontsize=9)
    axes[0].set_ylabel("ensemble - plain fixed model")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


COMPARE = [(UP + "ACC (%)", "acc_up_rel", False), ("RR (%)", "rr", False),
           (UP + "ASR (%)", "asr_up_rel", False), (UP + "AAOD (%)", "aaod_up_rel", False),
           ("NFR (%)", "nfr", False), ("TIME (s, log)", "time_s", True)]


def comparison_figure(ours, study, path, title):
    """Per metric, fixgrid's value beside the study's for each approach, both averaged over the
    subject pairs (fixgrid subject, study subject whose role it plays) where both are OK."""
    fig, axes = plt.subplots(2, 3, figsize=(12.0, 6.4))
    ok_o = ours[ours["outcome"] == "OK"]
    ok_s = study[study["outcome"] == "OK"]
    rows = [r for r in D.rows_in_order(ours) if r[1] in set(study["approach"])] if not ours.empty else []
    for ax, (name, col, log) in zip(axes.ravel(), COMPARE):
        xs, vo, vs = [], [], []
        for fam, appr in rows:
            a, b = [], []
            for _, r in ok_o[ok_o["approach"] == appr].iterrows():
                role = D.SUBJECT_ROLE.get(r["subject"])
                s = ok_s[(ok_s["approach"] == appr) & (ok_s["subject"] == role)]
                if role and not s.empty and D.finite(r.get(col)) and D.finite(s.iloc[0].get(col)):
                    a.append(float(r[col]))
                    b.append(float(s.iloc[0][col]))
            if a:
                xs.append(appr)
                vo.append(np.mean(a))
                vs.append(np.mean(b))
        if not xs:
            _no_data(ax, "pairs")
        else:
            i = np.arange(len(xs))
            ax.bar(i - 0.2, vo, 0.4, label="fixgrid (CPU subjects)", color="#4c72b0")
            ax.bar(i + 0.2, vs, 0.4, label="study", color="#dd8452")
            ax.set_xticks(i, xs, rotation=45, fontsize=7)
            if log:
                ax.set_yscale("log")
            else:
                ax.axhline(0.0, color="grey", linewidth=0.6)
        ax.set_title(name, fontsize=9)
    handles, labels = [], []
    for ax in axes.ravel():
        h, lab = ax.get_legend_handles_labels()
        if h:
            handles, labels = h, lab
            break
    if handles:
        fig.legend(handles, labels, loc="upper right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    _save(fig, path)


def all_figures(res, ref, out_dir):
    """Draws every figure into out_dir; returns [(key, fixgrid file, study file or None, caption)]."""
    ours = cells_from_results(res)
    study = cells_from_reference(ref)
    raw = res["raw.csv"]
    figs = []

    def p(name):
        return os.path.join(out_dir, name)

    rr_vs_accup(ours, p("rr_vs_accup.png"), "fixgrid: RR against %sACC by family" % UP)
    rr_vs_accup(study, p("study_rr_vs_accup.png"), "study: RR against %sACC by family" % UP)
    figs.append(("rr_vs_accup", "rr_vs_accup.png", "study_rr_vs_accup.png",
                 "Repair rate against relative accuracy change, one point per approach and subject, "
                 "coloured by family."))
    side_effects_heatmap(ours, p("side_effects.png"), "fixgrid: side effects (mean over subjects)")
    side_effects_heatmap(study, p("study_side_effects.png"), "study: side effects (mean over subjects)")
    figs.append(("side_effects", "side_effects.png", "study_side_effects.png",
                 "Side effects per approach: %sACC, %sASR, %sAAOD (positive = better) and NFR "
                 "(lower = better), means over the OK subjects; green better, red worse than the "
                 "original model, scaled per column." % (UP, UP, UP)))
    if raw is not None:
        times = raw[["approach", "family", "subject", "outcome", "time_s"]]
        per_run = True
    else:
        times = ours
        per_run = False
    time_per_approach(times, p("time.png"), "fixgrid: time per fixing run", per_run)
    time_per_approach(study, p("study_time.png"), "study: time per fixing run", per_run=False)
    figs.append(("time", "time.png", "study_time.png",
                 "Wall time per fixing run on a log scale (fixgrid: every run; study: the mean per "
                 "subject)."))
    if res["discussion.csv"] is not None:
        discussion_figure(res["discussion.csv"], p("discussion.png"),
                          "fixgrid: post-processing ensembles against the plain fix")
        figs.append(("discussion", "discussion.png", None,
                     "Change of each ensemble of f0 and f1 against the plain fixed model f1, per "
                     "metric, over the (approach, subject) cells. The study's discussion figure "
                     "(one case, probably AP on UTKFace) found every ensemble a little better on all "
                     "four metrics."))
    comparison_figure(ours, study, p("compare.png"),
                      "fixgrid beside the study, per approach and metric")
    figs.append(("compare", "compare.png", None,
                 "Per approach and metric, fixgrid's mean over its CPU subjects beside the study's "
                 "mean over the study subjects whose roles they play (pairs where both are OK)."))
    return figs

