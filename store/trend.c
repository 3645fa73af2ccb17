/* SPDX-License-Identifier: MIT
 *
 * trend.c -- Mann-Kendall and Theil-Sen on one series (trend.h).
 */
#define _GNU_SOURCE             /* M_SQRT2 */
#include <math.h>
#include <stddef.h>

#include "trend.h"

#define TS_PAIRS (ML_TREND_TS_MAX * (ML_TREND_TS_MAX - 1) / 2)

size_t
ml_trend_scratch(size_t n)
{
    return 2 * n + TS_PAIRS + 1;
}

/* Pairs i < j with a[i] > a[j], by a bottom-up merge sort of a (tmp: n
 * more); *sorted gets whichever of the two holds a sorted at the end. */
static double
inversions(double *a, double *tmp, size_t n, double **sorted)
{
    double inv = 0;

    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n;
            size_t hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;

            while (i < mid && j < hi) {
                if (a[j] < a[i]) {      /* strictly: equal ones are ties */
                    inv += (double)(mid - i);
                    tmp[k++] = a[j++];
                } else {
                    tmp[k++] = a[i++];
                }
            }
            while (i < mid)
                tmp[k++] = a[i++];
            while (j < hi)
                tmp[k++] = a[j++];
        }
        double *x = a;
        a = tmp;
        tmp = x;
    }
    *sorted = a;
    return inv;
}

double
ml_trend_exact_p(size_t n, double s)
{
    /* perm[k]: permutations of m elements with k inversions (Mahonian
     * numbers), built up to m = n; S = N - 2 * inversions */
    double perm[ML_TREND_EXACT_MAX * (ML_TREND_EXACT_MAX - 1) / 2 + 1];
    double next[sizeof perm / sizeof perm[0]];
    size_t npairs = n * (n - 1) / 2, top = 0;
    double total = 0, hit = 0;

    if (n < 2 || n > ML_TREND_EXACT_MAX)
        return 1;
    perm[0] = 1;
    for (size_t m = 2; m <= n; m++) {
        size_t ntop = top + m - 1;

        for (size_t k = 0; k <= ntop; k++) {
            next[k] = 0;
            for (size_t i = 0; i < m && i <= k; i++)
                if (k - i <= top)
                    next[k] += perm[k - i];
        }
        for (size_t k = 0; k <= ntop; k++)
            perm[k] = next[k];
        top = ntop;
    }
    for (size_t k = 0; k <= npairs; k++) {
        total += perm[k];
        if ((double)npairs - 2.0 * (double)k >= s)
            hit += perm[k];
    }
    return hit / total;
}

/* The k-th smallest of v[0..n) (v reordered), Hoare's selection. */
static double
kth(double *v, size_t n, size_t k)
{
    ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, kk = (ptrdiff_t)k;

    while (lo < hi) {
        double pivot = v[lo + (hi - lo) / 2];
        ptrdiff_t i = lo, j = hi;

        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                double x = v[i];
                v[i++] = v[j];
                v[j--] = x;
            }
        }
        if (kk <= j)
            hi = j;
        else if (kk >= i)
            lo = i;
        else
            return v[kk];
    }
    return v[kk];
}

/* Median of v[0..n), n > 0 (v reordered). */
static double
median(double *v, size_t n)
{
    double hi = kth(v, n, n / 2), lo;

    if (n % 2)
        return hi;
    lo = v[0];                  /* the largest of the lower half */
    for (size_t i = 1; i < n / 2; i++)
        if (v[i] > lo)
            lo = v[i];
    return (lo + hi) / 2;
}

static void
theil_sen(const double *y, const uint64_t *t, size_t n, double *buf,
          struct ml_trend *out)
{
    size_t idx[ML_TREND_TS_MAX], m = n < ML_TREND_TS_MAX ? n : ML_TREND_TS_MAX;
    size_t np = 0;

    for (size_t k = 0; k < m; k++)      /* evenly spread, first and last */
        idx[k] = m == n ? k : k * (n - 1) / (m - 1);
    for (size_t a = 0; a < m; a++)
        for (size_t b = a + 1; b < m; b++)
            buf[np++] = (y[idx[b]] - y[idx[a]]) / (double)(idx[b] - idx[a]);
    out->slope = np ? median(buf, np) : 0;
    out->slope_hour = NAN;
    if (t == NULL)
        return;
    np = 0;
    for (size_t a = 0; a < m; a++)
        for (size_t b = a + 1; b < m; b++)
            if (t[idx[b]] > t[idx[a]])
                buf[np++] = (y[idx[b]] - y[idx[a]]) * 3600e9 /
                            (double)(t[idx[b]] - t[idx[a]]);
    if (np)
        out->slope_hour = median(buf, np);
}

void
ml_trend(const double *y, const uint64_t *t, size_t n, double *scratch,
         struct ml_trend *out)
{
    double *a = scratch, *tmp = scratch + n, *sorted;
    double npairs = (double)n * (double)(n - 1) / 2, ties = 0, tvar = 0;

    *out = (struct ml_trend){ .n = n, .p = 1, .slope_hour = NAN };
    if (n < 2)
        return;
    for (size_t i = 0; i < n; i++)
        a[i] = y[i];
    double q = inversions(a, tmp, n, &sorted);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;

        while (j < n && sorted[j] == sorted[i])
            j++;
        double g = (double)(j - i);
        ties += g * (g - 1) / 2;
        tvar += g * (g - 1) * (2 * g + 5);
        i = j;
    }
    out->s = (npairs - q - ties) - q;
    out->var = ((double)n * (double)(n - 1) * (2.0 * (double)n + 5) - tvar) / 18;
    out->tau = out->s / npairs;
    if (out->var > 0 && out->s != 0)
        out->z = (out->s - (out->s > 0 ? 1 : -1)) / sqrt(out->var);
    if (n >= 3 && out->var > 0) {
        out->exact = n <= ML_TREND_EXACT_MAX;
        out->p = out->exact ? ml_trend_exact_p(n, out->s)
                            : 0.5 * erfc(out->z / M_SQRT2);
    }
    theil_sen(y, t, n, scratch + 2 * n, out);
}

double
ml_trend_floor(double total)
{
    double f = total * ML_TREND_FLOOR_FRACTION;

    return f > ML_TREND_FLOOR_MIN ? f : ML_TREND_FLOOR_MIN;
}

enum ml_verdict
ml_trend_verdict(const struct ml_trend *count, const struct ml_trend *bytes,
                 double net_bytes, double floor)
{
    if (bytes->n < ML_TREND_MIN_N)
        return ML_VERDICT_FEW_SNAPSHOTS;
    if (!(count->p < ML_TREND_ALPHA && count->s > 0) &&
        !(bytes->p < ML_TREND_ALPHA && bytes->s > 0))
        return ML_VERDICT_NO_TREND;
    if (net_bytes < floor || bytes->slope * (double)(bytes->n - 1) < floor)
        return ML_VERDICT_BELOW_FLOOR;
    return ML_VERDICT_SUSPECT;
}

size_t
ml_trend_mid(const uint64_t *t, size_t n)
{
    size_t m = n > 0 ? (n - 1) / 2 : 0;

    if (n > 1 && t != NULL && t[n - 1] > t[0]) {
        /* the middle time without overflow: t0 + (t1 - t0) / 2 */
        uint64_t mid = t[0] + (t[n - 1] - t[0]) / 2;

        for (m = 0; m + 1 < n && t[m + 1] <= mid; m++)
            ;
    }
    return m;
}

enum ml_verdict
ml_trend_verdict_late(enum ml_verdict v, const double *count,
                      const double *bytes, size_t n, size_t mid)
{
    size_t rises = 0;

    if (v != ML_VERDICT_SUSPECT || n < 2 || mid >= n)
        return v;
    double late = bytes[n - 1] - bytes[mid];
    double net = bytes[n - 1] - bytes[0];
    for (size_t i = mid + 1; i < n; i++)
        rises += bytes[i] > bytes[i - 1];
    /* relative: the floor is the whole rise's, which a leak just over it
     * does not reach in half the window */
    if (!(late > 0) || late < ML_TREND_LATE_FRACTION * net)
        return ML_VERDICT_STOPPED;
    if (!(count[n - 1] > count[mid]) && rises < 2)
        return ML_VERDICT_STOPPED;
    return v;
}

const char *
ml_verdict_name(enum ml_verdict v)
{
    switch (v) {
    case ML_VERDICT_SUSPECT: return "suspect";
    case ML_VERDICT_FEW_SNAPSHOTS: return "few_snapshots";
    case ML_VERDICT_NO_TREND: return "no_trend";
    case ML_VERDICT_BELOW_FLOOR: return "below_floor";
    case ML_VERDICT_STOPPED: return "stopped";
    }
    return "?";
}
