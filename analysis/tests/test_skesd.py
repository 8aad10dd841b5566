"""Scott-Knott ESD on cases whose answer is derived by hand below.

No published example with its raw data could be obtained offline (the ScottKnott / ScottKnottESD R
packages' example data sets are binary .rda files, and R's packages are not installed here), so
every expected value here is derived by hand in the comments, from the formulas in
fgreport/skesd.py (Scott & Knott 1974; Tantithamthavorn et al. 2017).
"""

import math
import os
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fgreport.skesd import cohen_d, letters, sk_esd, sk_esd_letters, sk_lambda  # noqa: E402

# pi / (2 (pi - 2)) = 3.14159265 / 2.28318531 = 1.3759691
LAMBDA_FACTOR = 1.3759691


class ScottKnottStatistic(unittest.TestCase):
    def test_three_means_hand_computed(self):
        # Data A = {0.5, 1.5}, B = {1.5, 2.5}, C = {5.5, 6.5}: means 1, 2, 6, two replicates each.
        # Within-group SS = 3 x (0.25 + 0.25) = 1.5 on N - K = 6 - 3 = 3 df: MSE = 0.5,
        # variance of a mean s^2 = 0.5 / 2 = 0.25.
        # Sorted descending 6, 2, 1 (total 9):
        #   cut {6} | {2, 1}:  36/1 + 9/2  - 81/3 = 36 + 4.5 - 27 = 13.5
        #   cut {6, 2} | {1}:  64/2 + 1/1  - 27   = 32 + 1   - 27 = 6
        # best cut after the first mean, B0 = 13.5.
        # sigma0^2 = (sum (m - 3)^2 + v s^2) / (k + v) = (9 + 1 + 4 + 3 x 0.25) / (3 + 3) = 2.458333
        # lambda = 1.37596907 x 13.5 / 2.458333 = 7.556170; df = 3 / (pi - 2) = 2.627908.
        cut, b0, lam, df, p = sk_lambda([6.0, 2.0, 1.0], 0.25, 3)
        self.assertEqual(cut, 1)
        self.assertAlmostEqual(b0, 13.5, places=12)
        self.assertAlmostEqual(lam, LAMBDA_FACTOR * 13.5 / (14.75 / 6.0), places=5)
        self.assertAlmostEqual(lam, 7.556170, places=5)
        self.assertAlmostEqual(df, 2.627908, places=5)
        # chi-square tail of 7.56 on 2.63 df lies between those of the integer df around it:
        # P(chi2_2 > 7.556) = exp(-7.556 / 2) = 0.0229 and P(chi2_3 > 7.556) = 0.056.
        self.assertTrue(0.0229 < p < 0.056, p)

    def test_second_level_is_not_significant(self):
        # The part {2, 1} of the case above: B0 = 4 + 1 - 9/2 = 0.5; sum (m - 1.5)^2 = 0.5;
        # sigma0^2 = (0.5 + 3 x 0.25) / (2 + 3) = 0.25; lambda = 1.37597 x 0.5 / 0.25 = 2.75194
        # on 2 / (pi - 2) = 1.75194 df. Its tail lies between those of 1 df (0.097) and 2 df
        # (exp(-2.75194 / 2) = 0.253), both above 0.05: no split, the part stays one group.
        cut, b0, lam, df, p = sk_lambda([2.0, 1.0], 0.25, 3)
        self.assertAlmostEqual(b0, 0.5, places=12)
        self.assertAlmostEqual(lam, 2.751938, places=5)
        self.assertAlmostEqual(df, 1.751938, places=5)
        self.assertTrue(0.097 < p < 0.253, p)

    def test_grouping_of_the_hand_case(self):
        # From the two tests above: C alone in the best group, A and B together in the second.
        # ESD keeps the split: Cohen's d between C and B = (6 - 2) / sqrt(0.5) = 5.66, not negligible.
        ranks = sk_esd({"A": [0.5, 1.5], "B": [1.5, 2.5], "C": [5.5, 6.5]})
        self.assertEqual(ranks, {"C": 1, "A": 2, "B": 2})
        self.assertEqual(sk_esd_letters({"A": [0.5, 1.5], "B": [1.5, 2.5], "C": [5.5, 6.5]}),
                         {"C": "a", "A": "b", "B": "b"})

    def test_lower_is_better_reverses_the_order(self):
        # The same data as a cost: the smallest means (A, B) form the best group 'a'.
        got = sk_esd_letters({"A": [0.5, 1.5], "B": [1.5, 2.5], "C": [5.5, 6.5]},
                             higher_is_better=False)
        self.assertEqual(got, {"A": "a", "B": "a", "C": "b"})


class EffectSizeCorrection(unittest.TestCase):
    def test_significant_but_negligible_difference_is_merged(self):
        # Y = 1000 evenly spaced points on [-1.7, 1.7], X = Y + 0.1. The sample variance of n evenly
        # spaced points on [-a, a] is a^2 (n + 1) / (3 (n - 1)) x n / (n - 1) = 0.966228.
        # Scott-Knott: B0 = (0.1 - 0)^2 / 2 = 0.005; MSE = 0.966228 on 1998 df, s^2 = 0.000966228;
        # sigma0^2 = (0.005 + 1998 x 0.000966228) / 2000 = 0.000967771;
        # lambda = 1.37597 x 0.005 / 0.000967771 = 7.10903 on 1.75194 df: p ~ 0.022 < 0.05, a split.
        # ESD: d = 0.1 / sqrt(0.966228) = 0.1017 < 0.2, negligible, so the two groups merge.
        y = np.linspace(-1.7, 1.7, 1000)
        x = y + 0.1
        _, b0, lam, _, p = sk_lambda([0.1, 0.0], y.var(ddof=1) / 1000, 1998)
        self.assertAlmostEqual(y.var(ddof=1), 2.89 * 1001 / 2997 * 1000 / 999, places=12)
        self.assertAlmostEqual(lam, 7.10903, places=4)
        self.assertLess(p, 0.05)
        self.assertAlmostEqual(cohen_d(x, y), 0.1 / math.sqrt(y.var(ddof=1)), places=12)
        self.assertEqual(sk_esd({"X": x, "Y": y}, esd=False), {"X": 1, "Y": 2})
        self.assertEqual(sk_esd({"X": x, "Y": y}), {"X": 1, "Y": 1})

    def test_identical_treatments_are_one_group(self):
        # All means equal: B0 = 0, lambda = 0, p = 1.
        self.assertEqual(sk_esd_letters({"p": [1, 2, 3], "q": [1, 2, 3], "r": [3, 2, 1]}),
                         {"p": "a", "q": "a", "r": "a"})

    def test_zero_variance_distinct_constants(self):
        # Constant runs (noop's RR is 0 in every run) against others: the pooled sd is zero, the
        # difference is not, so d is infinite and the groups stay apart.
        self.assertEqual(cohen_d([0, 0, 0], [0, 0, 0]), 0.0)
        self.assertEqual(cohen_d([1, 1], [0, 0]), math.inf)
        self.assertEqual(sk_esd_letters({"noop": [0, 0, 0], "AP": [39, 40, 41]}),
                         {"AP": "a", "noop": "b"})

    def test_missing_values_and_empty_treatments(self):
        self.assertEqual(sk_esd({"a": [np.nan], "b": [1.0, np.nan]}), {"b": 1})
        self.assertEqual(sk_esd({}), {})

    def test_letters(self):
        self.assertEqual([letters(i) for i in (0, 1, 25, 26)], ["a", "b", "z", "a2"])


if __name__ == "__main__":
    unittest.main()
