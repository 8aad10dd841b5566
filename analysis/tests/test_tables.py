"""Every table of the report against values computed by hand from analysis/tests/data/sample/.

The sample (written by data/make_sample.py) uses, per approach and subject, three seeds whose
offsets cancel in the mean: acc = acc0 + d, rr = rr(approach), asr = asr0 - a, aaod = aaod0 - f,
nfr = acc0 + rr (100 - acc0) / 100 - acc. Subjects: fmnist-lenet5 (acc0 85, asr0 80),
fmnist-s-resnet (70, 70, aaod0 0.2, time x3), income-mlp (80, 60, aaod0 0.1, time x0.5).
The tests read the written Markdown and LaTeX files, not the in-memory objects.
"""

import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from fgreport import data as D  # noqa: E402
from fgreport import tables as T  # noqa: E402
from fgreport.report import write_report  # noqa: E402

SAMPLE = os.path.join(HERE, "data", "sample")
LENET, SRES, INCOME = "fmnist-lenet5 (MNIST)", "fmnist-s-resnet (CIFAR-10S)", "income-mlp (UTKFace)"
UP = "\u21d1"


def read_markdown(path):
    """A GitHub Markdown table as (header, {tuple(first two cells): row dict}); the rows, in
    order, are also in the dict under the key "all"."""
    with open(path, encoding="utf-8") as f:
        lines = [ln.strip() for ln in f if ln.strip().startswith("|")]
    split = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    header, body = split[0], split[2:]
    rows = {"all": []}
    for r in body:
        rows[tuple(r[:2])] = dict(zip(header, r))
        rows["all"].append(dict(zip(header, r)))
    return header, rows


class Tables(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.mkdtemp(prefix="fg-analysis-")
        write_report(SAMPLE, cls.out)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.out, ignore_errors=True)

    def md(self, key):
        return read_markdown(os.path.join(self.out, key + ".md"))

    def tex(self, key):
        with open(os.path.join(self.out, key + ".tex"), encoding="utf-8") as f:
            return f.read()

    def test_rq12(self):
        _, rows = self.md("rq12")
        ap = rows[("model", "AP")]
        # AP on fmnist-lenet5: 85 + 1 = 86.00; up = 1 / 85 x 100 = +1.18; RR 40.00.
        self.assertEqual([ap[LENET + " ACC"], ap[LENET + " " + UP + "ACC"], ap[LENET + " RR"]],
                         ["86.00", "+1.18", "40.00"])
        # on fmnist-s-resnet: 71.00, 1 / 70 x 100 = +1.43; on income-mlp: 81.00, 1 / 80 = +1.25.
        self.assertEqual(ap[SRES + " " + UP + "ACC"], "+1.43")
        self.assertEqual(ap[INCOME + " ACC"], "81.00")
        self.assertEqual(ap[INCOME + " " + UP + "ACC"], "+1.25")
        # DTR on fmnist-s-resnet: 70 - 1 = 69.00, -1 / 70 = -1.43 %, RR 12.00.
        dtr = rows[("neuron", "DTR")]
        self.assertEqual([dtr[SRES + " ACC"], dtr[SRES + " " + UP + "ACC"], dtr[SRES + " RR"]],
                         ["69.00", "-1.43", "12.00"])
        # Outcome codes print as such, in every column of the subject, never as a number.
        self.assertEqual(dtr[LENET + " ACC"], "UNADAPTABLE")
        et = rows[("model", "ET")]  # seed 2 FAILED, seeds 0 and 1 OK: the cell is FAILURE
        self.assertEqual({et[INCOME + " " + c] for c in ("ACC", UP + "ACC", "RR")}, {"FAILURE"})
        self.assertEqual(rows[("layer", "3M")][SRES + " RR"], "CORRUPTED")
        self.assertEqual(rows[("layer", "RA")][INCOME + " ACC"], "UNADAPTABLE")
        # an approach of an unknown family, run on one subject only
        self.assertEqual(rows[("experimental", "mystery")][LENET + " RR"], "20.00")
        self.assertEqual(rows[("experimental", "mystery")][SRES + " ACC"], T.NOT_RUN)
        # families in the study's order, baselines and unknown families last
        self.assertEqual([r["Approach"] for r in rows["all"]], ["AP", "ET", "3M", "RA", "AR", "DTR", "noop", "mystery"])

    def test_rq12_latex(self):
        tex = self.tex("rq12")
        self.assertIn("AP & 86.00 & +1.18 & 40.00 & 71.00 & +1.43 & 40.00 & 81.00 & +1.25 & 40.00 \\\\",
                      tex)
        self.assertIn("ET & 85.50 & +0.59 & 30.00 & 70.50 & +0.71 & 30.00 & "
                      "\\multicolumn{3}{c}{FAILURE} \\\\", tex)
        self.assertIn("\\multicolumn{3}{c}{fmnist-s-resnet (CIFAR-10S)}", tex)
        self.assertIn("$\\Uparrow$ACC", tex)
        self.assertIn("\\multicolumn{10}{l}{\\textit{Model-level}}", tex)
        self.assertEqual(tex.count("\\begin{tabular}"), tex.count("\\end{tabular}"))

    def test_rq3(self):
        header, rows = self.md("rq3")
        # AAOD columns only on the fairness subjects
        self.assertNotIn(LENET + " AAOD", header)
        self.assertIn(SRES + " AAOD", header)
        ap = rows[("model", "AP")]
        # AP on fmnist-lenet5: ASR 80 - 20 = 60.00, up = 20 / 80 = +25.00 %,
        # NFR = 85 + 40 x 0.15 - 86 = 5.00.
        self.assertEqual([ap[LENET + " ASR"], ap[LENET + " " + UP + "ASR"], ap[LENET + " NFR"]],
                         ["60.00", "+25.00", "5.00"])
        # AP on income-mlp: ASR 60 - 20 = 40.00, +33.33; AAOD 0.1 - 0.02 = 0.0800, +20.00;
        # NFR = 80 + 40 x 0.2 - 81 = 7.00.
        self.assertEqual([ap[INCOME + " " + c] for c in ("ASR", UP + "ASR", "AAOD", UP + "AAOD", "NFR")],
                         ["40.00", "+33.33", "0.0800", "+20.00", "7.00"])
        # AR on fmnist-s-resnet: ASR 70 - 2 = 68.00, 2 / 70 = +2.86; AAOD 0.2 - 0.005 = 0.1950,
        # 0.005 / 0.2 = +2.50; NFR = 70 + 8 x 0.3 - 69.8 = 2.60.
        ar = rows[("neuron", "AR")]
        self.assertEqual([ar[SRES + " " + c] for c in ("ASR", UP + "ASR", "AAOD", UP + "AAOD", "NFR")],
                         ["68.00", "+2.86", "0.1950", "+2.50", "2.60"])
        # ET worsens fairness: AAOD 0.2 + 0.01 = 0.2100, up = -0.01 / 0.2 = -5.00.
        self.assertEqual(rows[("model", "ET")][SRES + " " + UP + "AAOD"], "-5.00")
        self.assertEqual(rows[("layer", "3M")][SRES + " AAOD"], "CORRUPTED")

    def test_rq4(self):
        _, rows = self.md("rq4")
        # AP: 600 s x 3 = 1800 s on fmnist-s-resnet; AR: 30 s x 3 = 90 s; 3M: 2 s x 0.5 = 1 s.
        self.assertEqual(rows[("model", "AP")][SRES + " time"], "30m00s")
        self.assertEqual(rows[("model", "AP")][LENET + " time"], "10m00s")
        self.assertEqual(rows[("neuron", "AR")][SRES + " time"], "01m30s")
        self.assertEqual(rows[("layer", "3M")][INCOME + " time"], "1.0s")
        self.assertEqual(rows[("model", "ET")][INCOME + " time"], "FAILURE")
        self.assertEqual(T.fmt_time(2 * 3600 + 30 * 60 + 10), "02h30m")
        self.assertEqual(T.fmt_time(float("nan")), T.NA)

    def test_family_averages(self):
        _, rows = read_markdown(os.path.join(self.out, "family.md"))
        rows = {v["Family"]: v for v in rows["all"]}
        model = rows["Model-level"]
        # Model-level OK cells: AP x 3 subjects, ET on fmnist-lenet5 and fmnist-s-resnet = 5.
        # RR = (3 x 40 + 2 x 30) / 5 = 36.00.
        # up-ACC = (1/85 + 1/70 + 1/80 + 0.5/85 + 0.5/70) x 100 / 5
        #        = (1.17647 + 1.42857 + 1.25 + 0.58824 + 0.71429) / 5 = +1.03.
        # NFR: AP 5.0, 70 + 12 - 71 = 11.0, 7.0; ET 85 + 4.5 - 85.5 = 4.0, 70 + 9 - 70.5 = 8.5
        #      -> 35.5 / 5 = 7.10.
        self.assertEqual([model["fixgrid " + c] for c in ("cells", "RR", UP + "ACC", "NFR")],
                         ["5", "36.00", "+1.03", "7.10"])
        layer = rows["Layer-level"]
        # Layer-level OK cells: 3M on fmnist-lenet5 and income-mlp, RA on fmnist-lenet5.
        # RR = (5 + 5 + 10) / 3 = 6.67; up-ACC = (0 + 0 - 0.5/85 x 100) / 3 = -0.20;
        # NFR = (0.75 + 1.0 + 2.0) / 3 = 1.25.
        self.assertEqual([layer["fixgrid " + c] for c in ("cells", "RR", UP + "ACC", "NFR")],
                         ["3", "6.67", "-0.20", "1.25"])
        # The study's artifact averages, as derived independently in
        # shared/study/paper-reconstruction.md section 4.7 (25 / 6 / 32 cells).
        art = "study (artifact tables) "
        self.assertEqual([model[art + c] for c in ("cells", "RR", UP + "ACC", "NFR")],
                         ["25", "19.54", "+0.32", "3.14"])
        self.assertEqual([layer[art + c] for c in ("cells", "RR", UP + "ACC", "NFR")],
                         ["6", "4.90", "-0.39", "0.65"])
        self.assertEqual([rows["Neuron-level"][art + c] for c in ("cells", "RR", UP + "ACC", "NFR")],
                         ["32", "7.21", "-1.01", "1.70"])
        self.assertEqual(rows["Neuron-level"]["study (final paper) RR"], "5.99")
        self.assertEqual(rows["Baselines (fixgrid)"]["fixgrid RR"], "0.00")
        self.assertEqual(rows["Baselines (fixgrid)"][art + "RR"], T.NA)

    def test_groups(self):
        _, rows = self.md("groups")
        # RR per run: AP 39..41, ET 29..31, mystery 19..21, DTR 11..13, RA 9..11, AR 7..9,
        # 3M 4..6, noop 0. Every pair of neighbouring means is >= 2 points apart with a within sd
        # of at most 1, so each Scott-Knott cut is significant and every boundary d is >= 2:
        # eight groups in that order.
        got = {v["Approach"]: v["fixgrid RR"] for v in rows["all"]}
        self.assertEqual(got, {"AP": "a", "ET": "b", "mystery": "c", "DTR": "d", "RA": "e",
                               "AR": "f", "3M": "g", "noop": "h"})
        # noop takes 0.01 s, at least 100 times faster than any other run: alone in 'a' for TIME.
        self.assertEqual(rows[("baseline", "noop")]["fixgrid TIME"], "a")
        self.assertNotIn("a", [v["fixgrid TIME"] for v in rows["all"] if v["Approach"] != "noop"])
        # AAOD needs a fairness subject: RA and mystery have no OK run on one.
        self.assertEqual(rows[("layer", "RA")]["fixgrid AAOD"], T.NA)
        self.assertEqual(rows[("experimental", "mystery")]["fixgrid AAOD"], T.NA)
        # the study's letters beside ours
        self.assertEqual(rows[("layer", "3M")]["study ACC"], "cef")
        self.assertEqual(rows[("baseline", "noop")]["study ACC"], T.NA)

    def test_discussion(self):
        _, rows = self.md("discussion")
        rows = {v["Method"]: v for v in rows["all"]}
        acc = "mean over (approach, subject) ACC"
        nfr = "mean over (approach, subject) NFR"
        # plain: AP 86, 71, 81 and AR 84.8, 69.8, 79.8 -> 472.4 / 6 = 78.73; soft adds 0.1.
        self.assertEqual(rows["plain fix (NO)"][acc], "78.73")
        self.assertEqual(rows["soft voting (SV)"][acc], "78.83")
        # NFR plain: (5 + 11 + 7 + 1.4 + 2.6 + 1.8) / 6 = 4.80; soft -0.4 -> 4.40.
        self.assertEqual(rows["plain fix (NO)"][nfr], "4.80")
        self.assertEqual(rows["soft voting (SV)"][nfr], "4.40")

    def test_comparison_and_mapping(self):
        _, rows = read_markdown(os.path.join(self.out, "compare.md"))
        by = {(v["Approach"], v["subject \u2192 study subject"]): v for v in rows["all"]}
        ap = by[("AP", "fmnist-lenet5 \u2192 MNIST")]
        self.assertEqual((ap["ACC fixgrid"], ap["ACC study"]), ("86.00", "99.06"))
        self.assertEqual((ap["TIME fixgrid"], ap["TIME study"]), ("10m00s", "13h46m"))
        et = by[("ET", "income-mlp \u2192 UTKFace")]
        self.assertEqual((et["RR fixgrid"], et["RR study"]), ("FAILURE", "CORRUPTED"))
        self.assertEqual(by[("AR", "fmnist-lenet5 \u2192 MNIST")]["AAOD study"], T.NA)
        _, m = read_markdown(os.path.join(self.out, "mapping.md"))
        m = {v["fixgrid subject"]: v for v in m["all"]}
        self.assertEqual(m["fmnist-vgg"]["study subject"], "CIFAR-10")
        self.assertEqual(m["income-mlp"]["fairness subject"], "yes")
        self.assertEqual(m["tiny"]["study subject"], "(none)")

    def test_orderings(self):
        _, rows = self.md("orderings")
        rows = {v["Ordering"]: v for v in rows["all"]}
        # Family means as in test_family_averages; neuron-level OK cells: arachne x 3, DTR on
        # fmnist-s-resnet. RR (3 x 8 + 12) / 4 = 9.00; up-ACC (-0.2/85 - 0.2/70 - 0.2/80
        # - 1/70) x 100 / 4 = -0.55; NFR (1.4 + 2.6 + 1.8 + 4.6) / 4 = 2.60.
        rr = rows["model-level RR highest"]
        self.assertEqual((rr["fixgrid verdict"], rr["fixgrid values"]),
                         ("holds", "model 36.00, layer 6.67, neuron 9.00"))
        acc = rows["neuron-level accuracy loss largest"]
        self.assertEqual((acc["fixgrid verdict"], acc["fixgrid values"]),
                         ("holds", "model +1.03, layer -0.20, neuron -0.55"))
        self.assertEqual(rows["layer-level NFR lowest"]["fixgrid values"],
                         "model 7.10, layer 1.25, neuron 2.60")
        inner = rows["INNER improves AAOD on the fairness subjects"]
        self.assertEqual(inner["fixgrid verdict"], T.NOT_RUN)  # the sample has no INNER
        # The study's own tables: all four hold (paper-reconstruction.md 4.7 and 4.3).
        self.assertEqual({v["study (artifact tables) verdict"] for v in rows.values()}, {"holds"})
        self.assertEqual(inner["study (artifact tables) values"], "UTKFace +33.66, CIFAR-10S +8.23")

    def test_orderings_that_fail(self):
        import pandas as pd
        acc = pd.DataFrame({
            "family": ["model", "layer", "neuron", "neuron"], "outcome": ["OK"] * 4,
            "approach": ["AP", "3M", "IN", "AR"], "subject": ["s", "s", "f1", "f2"],
            "rr": [5.0, 4.0, 20.0, 1.0], "acc_up_rel": [-2.0, 0.5, 1.0, 0.0]})
        rq3 = acc.assign(nfr=[1.0, 3.0, 2.0, 2.0], aaod_up_rel=[0.0, 0.0, 4.0, -1.0])
        got = {c: (v, shown) for c, v, shown in
               T.orderings(acc, rq3, {"f1", "f2"}, ("rr", "acc_up_rel", "nfr", "aaod_up_rel"))}
        # neuron RR (20 + 1) / 2 = 10.5 beats model 5; model's up-ACC -2 is the lowest;
        # layer's NFR 3 is the highest.
        self.assertEqual(got["model-level RR highest"],
                         ("does not hold", "model 5.00, layer 4.00, neuron 10.50"))
        self.assertEqual(got["neuron-level accuracy loss largest"][0], "does not hold")
        self.assertEqual(got["layer-level NFR lowest"][0], "does not hold")
        # INNER (IN) ran on f1 only, with a gain: holds; a loss on a second subject breaks it.
        self.assertEqual(got["INNER improves AAOD on the fairness subjects"], ("holds", "f1 +4.00"))
        rq3b = pd.concat([rq3, rq3.iloc[[2]].assign(subject="f2", aaod_up_rel=-3.0)])
        v = T.orderings(acc, rq3b, {"f1", "f2"}, ("rr", "acc_up_rel", "nfr", "aaod_up_rel"))[3]
        self.assertEqual(v[1:], ("does not hold", "f1 +4.00, f2 -3.00"))
        # One family alone cannot be judged.
        one = acc[acc["family"] == "model"]
        self.assertEqual(T.orderings(one, rq3[rq3["family"] == "model"], set(),
                                     ("rr", "acc_up_rel", "nfr", "aaod_up_rel"))[0][1], T.NOT_RUN)

    def test_outputs_exist(self):
        for key in ("rq12", "rq3", "rq4", "family", "orderings", "groups", "discussion", "compare",
                    "mapping"):
            for ext in (".md", ".tex"):
                self.assertTrue(os.path.getsize(os.path.join(self.out, key + ext)) > 0, key + ext)
        for png in ("rr_vs_accup", "side_effects", "time", "discussion", "compare",
                    "study_rr_vs_accup", "study_side_effects", "study_time"):
            with open(os.path.join(self.out, png + ".png"), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", png)


class Inputs(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="fg-analysis-in-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text):
        with open(os.path.join(self.dir, name), "w", encoding="utf-8") as f:
            f.write(text)

    def test_provenance(self):
        res = D.Results(SAMPLE)
        self.assertEqual(res.provenance["raw.csv"]["blas"], "none")
        self.assertEqual(res.provenance["rq12.csv"]["config_hash"], "sample")

    def test_runner_names_map_to_study_labels(self):
        # The runner writes registry names; the sample writes AP and AR that way (apricot, arachne).
        self.assertEqual([D.approach_label(n) for n in ("apricot", "arachne", "ap", "Care", "FT",
                                                        "neurecover", "noop", "newthing")],
                         ["AP", "AR", "AP", "CARE", "finetune", "NR", "noop", "newthing"])
        raw = D.Results(SAMPLE)["raw.csv"]
        self.assertNotIn("apricot", set(raw["approach"]))
        self.assertEqual(len(raw[raw["approach"] == "AP"]), 9)

    def test_every_registered_approach_maps_to_its_label(self):
        # Each src/fix/*.c approach's `.name` maps to its `.label` (the study's): a registry name
        # without an alias would drop that approach from the comparison with the study.
        import glob
        import re
        src = os.path.join(os.path.dirname(os.path.dirname(HERE)), "src", "fix")
        pairs = []
        for path in sorted(glob.glob(os.path.join(src, "*.c"))):
            text = open(path).read()
            for m in re.finditer(r'\.name = "([^"]+)",\s*\.label = "([^"]+)"', text):
                pairs.append(m.groups())
        self.assertGreaterEqual(len(pairs), 16, pairs)
        for name, label in pairs:
            if label in D.APPROACHES:
                self.assertEqual(D.approach_label(name), label, name)

    def test_unknown_outcome_is_an_error(self):
        self.write("rq4.csv", "# experiment: x\napproach,family,subject,outcome,time_s_mean\n"
                   "AP,model,tiny,MAYBE,1.0\n")
        with self.assertRaisesRegex(D.ResultsError, "rq4.csv: unknown outcome"):
            D.Results(self.dir)

    def test_missing_column_is_an_error(self):
        self.write("rq4.csv", "approach,family,subject,time_s_mean\nAP,model,tiny,1.0\n")
        with self.assertRaisesRegex(D.ResultsError, "missing column.*outcome"):
            D.Results(self.dir)

    def test_partial_results_and_blank_family(self):
        # Only rq4.csv, with an approach whose family is blank: the report still writes its page.
        self.write("rq4.csv", "# commit: abc\napproach,family,subject,outcome,time_s_mean\n"
                   "AP,model,tiny,OK,2.5\nnew,,tiny,OK,4\n")
        out = os.path.join(self.dir, "out")
        write_report(self.dir, out, figures=False)  # the figures are checked on the sample
        _, rows = read_markdown(os.path.join(out, "rq4.md"))
        self.assertEqual(rows[("unknown", "new")]["tiny time"], "4.0s")
        self.assertTrue(os.path.exists(os.path.join(out, "index.html")))
        self.assertFalse(os.path.exists(os.path.join(out, "rq12.md")))


if __name__ == "__main__":
    unittest.main()
