"""The report driver: results directory in, tables (Markdown, LaTeX), figures (PNG) and index.html out."""

import argparse
import os
import sys

from . import data as D
from . import figures as F
from . import page
from . import tables as T

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_REFERENCE = os.path.join(os.path.dirname(HERE), "reference")


def build_tables(res, ref, alpha=0.05):
    """dict key -> Table in page order; tables whose input file is missing are left out."""
    out = {}
    if res["rq12.csv"] is not None:
        out["rq12"] = T.rq12_table(res["rq12.csv"])
    if res["rq3.csv"] is not None:
        out["rq3"] = T.rq3_table(res["rq3.csv"])
    if res["rq4.csv"] is not None:
        out["rq4"] = T.rq4_table(res["rq4.csv"])
    if res["rq12.csv"] is not None and res["rq3.csv"] is not None:
        out["family"] = T.family_table(res["rq12.csv"], res["rq3.csv"], ref)
        out["orderings"] = T.orderings_table(res["rq12.csv"], res["rq3.csv"], ref)
    if res["raw.csv"] is not None:
        out["groups"] = T.groups_table(res["raw.csv"], ref, alpha)
    if res["discussion.csv"] is not None:
        out["discussion"] = T.discussion_table(res["discussion.csv"])
    if any(res[n] is not None for n in ("rq12.csv", "rq3.csv", "rq4.csv")):
        out["compare"] = T.comparison_table(res, ref)
    present = set()
    for name in D.RESULT_FILES:
        if res[name] is not None:
            present |= set(res[name]["subject"])
    out["mapping"] = T.mapping_table(present)
    return out


def write_report(results_dir, out_dir, reference_dir=DEFAULT_REFERENCE, alpha=0.05, figures=True):
    """Writes everything (figures=False: the tables and a page without figures); returns the path
    of index.html. Raises data.ResultsError on bad input."""
    res = D.Results(results_dir)
    ref = D.load_reference(reference_dir)
    os.makedirs(out_dir, exist_ok=True)
    tables = build_tables(res, ref, alpha)
    files = {}
    md_all = []
    for key, t in tables.items():
        md, tex = key + ".md", key + ".tex"
        with open(os.path.join(out_dir, md), "w", encoding="utf-8") as f:
            f.write(t.to_markdown())
        with open(os.path.join(out_dir, tex), "w", encoding="utf-8") as f:
            f.write(t.to_latex())
        files[key] = (md, tex)
        md_all.append(t.to_markdown())
    with open(os.path.join(out_dir, "tables.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(md_all))
    figs = F.all_figures(res, ref, out_dir) if figures else []
    index = os.path.join(out_dir, "index.html")
    text = page.render(tables, figs, res.provenance, os.path.abspath(results_dir), files)
    tmp = index + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, index)
    return index


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="analysis/report",
        description="Regenerate the study's tables and figures from a fixgrid results directory "
        "(raw.csv, rq12.csv, rq3.csv, rq4.csv, discussion.csv) and set them beside the study's.")
    ap.add_argument("results_dir", help="directory the runner wrote its CSV tables to")
    ap.add_argument("out_dir", nargs="?", help="where to write the report (default RESULTS_DIR/report)")
    ap.add_argument("--reference", default=DEFAULT_REFERENCE,
                    help="the study's reference tables (default: %(default)s)")
    ap.add_argument("--alpha", type=float, default=0.05,
                    help="significance level of the Scott-Knott test (default 0.05)")
    args = ap.parse_args(argv)
    out_dir = args.out_dir or os.path.join(args.results_dir, "report")
    try:
        index = write_report(args.results_dir, out_dir, args.reference, args.alpha)
    except D.ResultsError as e:
        print("analysis/report: %s" % e, file=sys.stderr)
        return 2
    print(index)
    return 0
