"""Scott-Knott ESD: rank treatments into non-overlapping groups, 'a' the best.

The study prints statistical groups per metric; its test is not named. Scott-Knott ESD
(Tantithamthavorn, McIntosh, Hassan, Matsumoto, IEEE TSE 2017/2019) is the test the
software-engineering literature uses for exactly this ranking, and it is not packaged in Debian, so
it is implemented here from its two published building blocks:

1. Scott-Knott (Scott & Knott, Biometrics 30(3), 1974): sort treatment means; among the k-1 cuts of
   the sorted list into two contiguous parts take the one with the largest between-part sum of
   squares B0 = T1^2/k1 + T2^2/k2 - (T1+T2)^2/k (T = sums of the means); estimate the variance
   sigma0^2 = (sum_i (m_i - m)^2 + v * s^2) / (k + v), where s^2 = MSE / r is the variance of one
   treatment mean (MSE and its degrees of freedom v = N - K from the one-way ANOVA of all the
   data, r the harmonic mean of the group sizes); lambda = pi / (2 (pi - 2)) * B0 / sigma0^2 is
   approximately chi-square with k / (pi - 2) degrees of freedom. If the cut is significant at
   alpha, split and recurse on both parts; else the part is one group.
2. Effect-size correction (the "ESD" step): two adjacent groups whose boundary treatments (the last
   of the better group, the first of the worse) differ by a negligible Cohen's d (|d| < 0.2, Cohen
   1988) are merged. Comparing the boundary pair is the strictest choice: it is the closest pair
   across the cut, so a merge happens whenever the groups touch with a negligible difference.

Direction: every metric is turned into "higher is better" before ranking (lower-is-better metrics
are negated), so the best group always gets 'a'. A transform (the report uses log10 for time, whose
runs span orders of magnitude) is applied by the caller.
"""

import math

import numpy as np
from scipy import stats

NEGLIGIBLE_D = 0.2  # Cohen's (1988) threshold between "negligible" and "small"


def sk_lambda(means, mse_mean, dfr):
    """Best cut of the sorted `means` and its Scott-Knott statistic.

    means: treatment means sorted descending; mse_mean: variance of one mean (MSE / r);
    dfr: error degrees of freedom. Returns (cut, b0, lam, df, p): the first `cut` means form the
    first part. Needs at least two means.
    """
    m = np.asarray(means, dtype=float)
    k = len(m)
    if k < 2:
        raise ValueError("sk_lambda: need at least two means, got %d" % k)
    total = m.sum()
    best_cut, b0 = 1, -1.0
    for cut in range(1, k):
        t1 = m[:cut].sum()
        t2 = total - t1
        b = t1 * t1 / cut + t2 * t2 / (k - cut) - total * total / k
        if b > b0 + 1e-12 * max(1.0, abs(b0)):
            best_cut, b0 = cut, b
    sigma0 = (((m - m.mean()) ** 2).sum() + dfr * mse_mean) / (k + dfr)
    df = k / (math.pi - 2.0)
    if sigma0 <= 0.0:
        # All means equal and no within-treatment noise: nothing to split.
        lam = 0.0 if b0 <= 0.0 else math.inf
    else:
        lam = math.pi / (2.0 * (math.pi - 2.0)) * b0 / sigma0
    p = float(stats.chi2.sf(lam, df)) if math.isfinite(lam) else 0.0
    return best_cut, b0, lam, df, p


def cohen_d(x, y):
    """Cohen's d with the pooled standard deviation; inf when the pooled sd is 0 and the means differ."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    diff = x.mean() - y.mean()
    nx, ny = len(x), len(y)
    if nx + ny <= 2:
        pooled = 0.0
    else:
        vx = x.var(ddof=1) if nx > 1 else 0.0
        vy = y.var(ddof=1) if ny > 1 else 0.0
        pooled = math.sqrt(((nx - 1) * vx + (ny - 1) * vy) / (nx + ny - 2))
    if pooled == 0.0:
        return 0.0 if diff == 0.0 else math.copysign(math.inf, diff)
    return diff / pooled


def letters(n):
    """Group letter n (0-based): a..z, then a2..z2, ..."""
    return chr(ord("a") + n % 26) + ("" if n < 26 else str(n // 26 + 1))


def sk_esd(samples, higher_is_better=True, alpha=0.05, esd=True):
    """Rank treatments with Scott-Knott ESD.

    samples: dict name -> sequence of observations (NaN dropped; empty treatments are left out).
    Returns dict name -> rank (1 = best group). Ties in the mean keep the dict's order.
    """
    data = {}
    for name, vals in samples.items():
        v = np.asarray([x for x in vals if x is not None], dtype=float)
        v = v[np.isfinite(v)]
        if len(v):
            data[name] = v if higher_is_better else -v
    if not data:
        return {}
    names = sorted(data, key=lambda n: -data[n].mean())  # stable: dict order breaks ties
    if len(names) == 1:
        return {names[0]: 1}
    sizes = np.array([len(data[n]) for n in names], dtype=float)
    n_all = sizes.sum()
    kk = len(names)
    sse = sum(((data[n] - data[n].mean()) ** 2).sum() for n in names)
    dfr = n_all - kk
    mse = sse / dfr if dfr > 0 else 0.0
    r = kk / (1.0 / sizes).sum()  # harmonic mean of the group sizes
    mse_mean = mse / r
    means = [data[n].mean() for n in names]

    groups = []  # list of lists of indices into names, best first

    def split(lo, hi):
        if hi - lo < 2:
            groups.append(list(range(lo, hi)))
            return
        cut, _, _, _, p = sk_lambda(means[lo:hi], mse_mean, dfr)
        if p < alpha:
            split(lo, lo + cut)
            split(lo + cut, hi)
        else:
            groups.append(list(range(lo, hi)))

    split(0, kk)

    if esd:
        merged = [groups[0]]
        for g in groups[1:]:
            prev_last = names[merged[-1][-1]]
            first = names[g[0]]
            if abs(cohen_d(data[prev_last], data[first])) < NEGLIGIBLE_D:
                merged[-1] = merged[-1] + g
            else:
                merged.append(g)
        groups = merged

    ranks = {}
    for rank, g in enumerate(groups, start=1):
        for i in g:
            ranks[names[i]] = rank
    return ranks


def sk_esd_letters(samples, higher_is_better=True, alpha=0.05, esd=True):
    """Like sk_esd, but the ranks as compact letters ('a' = best group)."""
    return {n: letters(r - 1) for n, r in sk_esd(samples, higher_is_better, alpha, esd).items()}
