/* SPDX-License-Identifier: MIT
 *
 * trend.h -- is a series going up, and how fast: the robust trend test
 * growth (report_growth.c) runs on each type's count and bytes over a
 * process's snapshots.  No allocation: the caller lends the scratch.
 *
 * - Mann-Kendall: S = (pairs i < j with y_j > y_i) - (pairs with
 *   y_j < y_i), its variance under "no trend" corrected for ties
 *   (n(n-1)(2n+5) - sum over tie groups t(t-1)(2t+5)) / 18, Kendall's
 *   tau-a = S / (n(n-1)/2), and the one-sided p of an upward trend:
 *   exact for n <= ML_TREND_EXACT_MAX (the distribution of S without
 *   ties, from the number of permutations with k inversions; with ties
 *   that distribution is the wider one, so p is conservative), else the
 *   normal approximation with continuity correction, Z = (S - 1)/sqrt(var)
 *   for S > 0.  S is counted in O(n log n) (merge sort), so 1,000
 *   snapshots cost ~10,000 steps, not 500,000.
 * - Theil-Sen: the median of the pairwise slopes (y_j - y_i) / (j - i),
 *   per snapshot, and with the snapshots' times, per hour.  Over at most
 *   ML_TREND_TS_MAX points (n(n-1)/2 pairs): above that, on that many
 *   snapshots evenly spread from the first to the last (first and last
 *   included), which keeps a type's slope to 2,016 pairs whatever n.
 */
#ifndef ML_TREND_H
#define ML_TREND_H

#include <stddef.h>
#include <stdint.h>

#define ML_TREND_EXACT_MAX 10
#define ML_TREND_TS_MAX 64

struct ml_trend {
    size_t n;
    double s;           /* Mann-Kendall S */
    double var;         /* Var(S), tie-corrected */
    double z;           /* (S -/+ 1) / sqrt(var); 0 when S is 0 */
    double tau;         /* S / (n(n-1)/2) */
    double p;           /* one-sided p of an upward trend (1 when n < 3) */
    int exact;          /* p from the exact distribution */
    double slope;       /* Theil-Sen, per snapshot */
    double slope_hour;  /* Theil-Sen, per hour of t; NAN without times */
};

/* ---- the verdict on one type (growth's "suspect") ----
 *
 * A suspect has a significant upward trend (one-sided p < ML_TREND_ALPHA
 * on its count or its bytes) that is material: both its net byte growth
 * (last - first) and its Theil-Sen byte slope times the window's span
 * (n - 1 snapshots) reach the floor, ML_TREND_FLOOR_FRACTION of the
 * process's bytes in its last snapshot (at least ML_TREND_FLOOR_MIN).
 * With fewer than ML_TREND_MIN_N snapshots no p can be below alpha (the
 * exact p of 5 rising points is 1/120), so nothing is a suspect.
 *
 * Where the lines are: a leak that stops for the last snapshots stays a
 * suspect (every pair before the stop still rises); a plateau stops
 * being one once its flat tail holds about 71% of the snapshots (1/sqrt 2:
 * then most pairs have slope 0 and so has the median) or earlier, when
 * the slope times the span drops below the floor; a cache that fills and
 * is evicted again (sawtooth) has as many falling pairs across cycles as
 * rising ones and no significant S; noise has neither.
 *
 * A warm-up is not a leak.  A type that passes the test above stays a
 * suspect only if it still grows in the latter half of the window, from
 * the last snapshot taken at or before the window's middle time
 * (ml_trend_mid) to the last one: its bytes by at least
 * ML_TREND_LATE_FRACTION of its net growth (the floor is the whole
 * rise's: a leak just over it grows by less in half the window), and either its count
 * grows there too (new objects keep coming) or its bytes rise in two or
 * more of the latter half's steps (an object that keeps growing; the one
 * resize of a full cache's dict table is one step).  Else its growth
 * stopped in the first half (a cache that fills, then holds steady) and
 * its verdict is ML_VERDICT_STOPPED.  A leak that grows in bursts and
 * keeps what it got has a burst in the latter half and stays a suspect;
 * so does one that grows for most of the window and stops near its end. */
#define ML_TREND_ALPHA 0.01
#define ML_TREND_MIN_N 5
#define ML_TREND_FLOOR_FRACTION 0.01
#define ML_TREND_FLOOR_MIN 4096.0
#define ML_TREND_LATE_FRACTION 0.1

enum ml_verdict {
    ML_VERDICT_SUSPECT,
    ML_VERDICT_FEW_SNAPSHOTS,   /* n < ML_TREND_MIN_N */
    ML_VERDICT_NO_TREND,        /* no significant upward trend */
    ML_VERDICT_BELOW_FLOOR,     /* rising, but not by enough to matter */
    ML_VERDICT_STOPPED,         /* rose, but not in the latter half: warm-up */
};

/* The floor for a process whose last snapshot holds total bytes. */
double ml_trend_floor(double total);

/* The verdict on a type from its count and bytes trends over the same
 * snapshots and its net byte growth. */
enum ml_verdict ml_trend_verdict(const struct ml_trend *count,
                                 const struct ml_trend *bytes,
                                 double net_bytes, double floor);

/* The index of the last of n points taken at or before the middle time
 * (t[0] + t[n-1]) / 2; (n - 1) / 2 when t is NULL or the times are all
 * equal; 0 when n is 0. */
size_t ml_trend_mid(const uint64_t *t, size_t n);

/* v, or ML_VERDICT_STOPPED when v is ML_VERDICT_SUSPECT and the type did
 * not grow in the latter half (the rule above): count and bytes are its
 * n values, mid is ml_trend_mid of their times. */
enum ml_verdict ml_trend_verdict_late(enum ml_verdict v, const double *count,
                                      const double *bytes, size_t n,
                                      size_t mid);

/* "suspect", "few_snapshots", "no_trend", "below_floor", "stopped"
 * (docs/cli-json.md) */
const char *ml_verdict_name(enum ml_verdict v);

/* Doubles of scratch ml_trend needs for n points. */
size_t ml_trend_scratch(size_t n);

/* The trend of y[0..n) taken at times t[0..n) in nanoseconds (increasing;
 * NULL: no per-hour slope).  scratch: ml_trend_scratch(n) doubles. */
void ml_trend(const double *y, const uint64_t *t, size_t n, double *scratch,
              struct ml_trend *out);

/* P(S >= s) with no trend, exactly (n <= ML_TREND_EXACT_MAX). */
double ml_trend_exact_p(size_t n, double s);

#endif /* ML_TREND_H */
