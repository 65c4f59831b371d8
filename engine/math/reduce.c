/* reduce.c - sum, mean, max/min, argmax/argmin, var/std, norm, logsumexp, prod.
 *
 * The input is seen as O outputs (the kept dims) times R reduced elements
 * (the reduced dims, row-major). Each output's R elements are cut into
 * fixed blocks of BLOCK elements. A work item is one (output, block) pair:
 * it gathers the block into a small buffer (converting to double, or to
 * int64 for exact integer sums), optionally transforms it (square, |x|^p,
 * exp(x - max)...) and reduces it to a partial. The partials of an output
 * are then combined in block order.
 *
 * Block boundaries depend only on R, and every sum runs in a fixed order
 * (eight interleaved lanes within a block, then the blocks in order), so
 * the result is bitwise the same for any thread count; threads only decide
 * which work items they take.
 *
 * Two-pass ops run the machinery twice: var/std (mean, then squared
 * deviations) and logsumexp (max, then sum of exp(x - max)).
 */
#include "distill.h"
#include "autograd/op.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 2048
#define PARALLEL_MIN 32768

void dt_reduce_opts_init(dt_reduce_opts *o)
{
    memset(o, 0, sizeof *o);
    o->correction = 1;
    o->p = 2;
}

/* --------------------------------------------------------------- geometry */

typedef struct geom {
    const char *data;          /* first element of the input */
    dt_dtype dtype;
    int nk;                    /* kept dims, in input order */
    int64_t kshape[DT_MAX_DIMS], kstride[DT_MAX_DIMS];
    int nr;                    /* reduced dims, coalesced, outermost first */
    int64_t rshape[DT_MAX_DIMS], rstride[DT_MAX_DIMS];
    int64_t O, R, K;           /* outputs, reduced elements per output, blocks per output */
} geom;

static void make_geom(const dt_tensor *a, const bool *reduced, geom *g)
{
    memset(g, 0, sizeof *g);
    g->data = (const char *)dt_data(a);
    g->dtype = a->dtype;
    g->O = 1;
    g->R = 1;
    /* Reduced dims from the innermost out; size-1 dims drop, and a dim
     * merges into the one inside it when their strides chain. */
    int64_t cs[DT_MAX_DIMS], cst[DT_MAX_DIMS];
    int m = 0;
    for (int d = a->ndim - 1; d >= 0; d--) {
        if (!reduced[d]) {
            continue;
        }
        g->R *= a->shape[d];
        if (a->shape[d] == 1)
            continue;
        if (m > 0 && a->stride[d] == cst[m - 1] * cs[m - 1]) {
            cs[m - 1] *= a->shape[d];
        } else {
            cs[m] = a->shape[d];
            cst[m] = a->stride[d];
            m++;
        }
    }
    g->nr = m;
    for (int i = 0; i < m; i++) {
        g->rshape[i] = cs[m - 1 - i];
        g->rstride[i] = cst[m - 1 - i];
    }
    for (int d = 0; d < a->ndim; d++) {
        if (reduced[d])
            continue;
        g->kshape[g->nk] = a->shape[d];
        g->kstride[g->nk] = a->stride[d];
        g->nk++;
        g->O *= a->shape[d];
    }
    g->K = (g->R + BLOCK - 1) / BLOCK;
}

/* Element offset of output o's first input element. */
static int64_t kept_offset(const geom *g, int64_t o)
{
    int64_t off = 0;
    for (int d = g->nk - 1; d >= 0; d--) {
        off += (o % g->kshape[d]) * g->kstride[d];
        o /= g->kshape[d];
    }
    return off;
}

/* Load reduced elements f0 .. f0+n-1 (row-major over the reduced dims) of
 * the output starting at `base` into buf, converted to BUF_T. */
#define GATHER(NAME, BUF_T)                                                              \
    static void NAME(const geom *g, int64_t base, int64_t f0, int64_t n, BUF_T *buf)     \
    {                                                                                    \
        int64_t idx[DT_MAX_DIMS], off = base, f = f0;                                    \
        for (int d = g->nr - 1; d >= 0; d--) {                                           \
            idx[d] = f % g->rshape[d];                                                   \
            f /= g->rshape[d];                                                           \
            off += idx[d] * g->rstride[d];                                               \
        }                                                                                \
        int last = g->nr - 1;                                                            \
        int64_t ls = last >= 0 ? g->rstride[last] : 0;                                   \
        int64_t lsz = last >= 0 ? g->rshape[last] : 1;                                   \
        int64_t pos = last >= 0 ? idx[last] : 0;                                         \
        int64_t done = 0;                                                                \
        while (done < n) {                                                               \
            int64_t m = lsz - pos < n - done ? lsz - pos : n - done;                     \
            BUF_T *dst = buf + done;                                                     \
            switch (g->dtype) {                                                          \
            case DT_FLOAT32: {                                                           \
                const float *p = (const float *)g->data + off;                           \
                if (ls == 1)                                                             \
                    for (int64_t k = 0; k < m; k++)                                      \
                        dst[k] = (BUF_T)p[k];                                            \
                else                                                                     \
                    for (int64_t k = 0; k < m; k++)                                      \
                        dst[k] = (BUF_T)p[k * ls];                                       \
                break;                                                                   \
            }                                                                            \
            case DT_INT64: {                                                             \
                const int64_t *p = (const int64_t *)g->data + off;                       \
                for (int64_t k = 0; k < m; k++)                                          \
                    dst[k] = (BUF_T)p[k * ls];                                           \
                break;                                                                   \
            }                                                                            \
            case DT_UINT8: {                                                             \
                const uint8_t *p = (const uint8_t *)g->data + off;                       \
                for (int64_t k = 0; k < m; k++)                                          \
                    dst[k] = (BUF_T)p[k * ls];                                           \
                break;                                                                   \
            }                                                                            \
            }                                                                            \
            done += m;                                                                   \
            off += m * ls;                                                               \
            pos += m;                                                                    \
            if (pos == lsz && done < n) {                                                \
                /* carry into the outer reduced dims */                                  \
                off -= lsz * ls;                                                         \
                pos = 0;                                                                 \
                for (int d = last - 1; d >= 0; d--) {                                    \
                    off += g->rstride[d];                                                \
                    if (++idx[d] < g->rshape[d])                                         \
                        break;                                                           \
                    off -= g->rshape[d] * g->rstride[d];                                 \
                    idx[d] = 0;                                                          \
                }                                                                        \
            }                                                                            \
        }                                                                                \
    }

GATHER(gather_f64, double)
GATHER(gather_i64, int64_t)

/* ---------------------------------------------------------- block kernels */

typedef enum xform { X_NONE, X_ABS, X_SQ, X_POWABS, X_NONZERO, X_SQDEV, X_EXPSUB } xform;
typedef enum blockop { B_SUM, B_PROD, B_MAX, B_MIN } blockop;

typedef struct phase {
    xform x;
    blockop b;
    double p;                  /* X_POWABS exponent */
    const double *center;      /* X_SQDEV / X_EXPSUB: per-output mean or max */
} phase;

/* Eight interleaved lanes: the compiler vectorises the lane adds, and the
 * order is fixed by the block alone. */
static double sum_block(const double *x, int64_t n)
{
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += x[k + l];
    for (int l = 0; k < n; k++, l++)
        acc[l] += x[k];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static int64_t sum_block_i64(const int64_t *x, int64_t n)
{
    uint64_t s = 0;   /* wraps like torch's int64 sum */
    for (int64_t k = 0; k < n; k++)
        s += (uint64_t)x[k];
    return (int64_t)s;
}

/* Does y replace best as the running extreme? Strictly better keeps the
 * first occurrence; a NaN wins (max and min propagate NaN) and stays. */
static inline bool better_f(double y, double best, bool is_max)
{
    if (best != best)
        return false;
    return y != y || (is_max ? y > best : y < best);
}

/* First extreme of a block: a branch-free pass with eight running extremes
 * (no single dependency chain) finds the value and whether there is a NaN;
 * a second pass finds its first position. The value returned is that
 * element itself, so -0 and +0 ties also resolve to the first. */
static void extreme_block(const double *x, int64_t n, bool is_max, double *v, int64_t *at)
{
    double lane[8];
    int nan_seen = 0;
    for (int l = 0; l < 8; l++)
        lane[l] = x[0];
    int64_t k = 0;
    if (is_max) {
        for (; k + 8 <= n; k += 8)
            for (int l = 0; l < 8; l++)
                lane[l] = x[k + l] > lane[l] ? x[k + l] : lane[l];
    } else {
        for (; k + 8 <= n; k += 8)
            for (int l = 0; l < 8; l++)
                lane[l] = x[k + l] < lane[l] ? x[k + l] : lane[l];
    }
    double m = lane[0];
    for (int l = 1; l < 8; l++)
        m = is_max ? (lane[l] > m ? lane[l] : m) : (lane[l] < m ? lane[l] : m);
    for (; k < n; k++)
        m = is_max ? (x[k] > m ? x[k] : m) : (x[k] < m ? x[k] : m);
    for (k = 0; k < n; k++)
        nan_seen |= x[k] != x[k];
    k = 0;
    if (nan_seen) {
        while (x[k] == x[k])
            k++;
    } else {
        while (x[k] != m)
            k++;
    }
    *v = x[k];
    *at = k;
}

static void extreme_block_i64(const int64_t *x, int64_t n, bool is_max, int64_t *v, int64_t *at)
{
    int64_t best = x[0], bi = 0;
    for (int64_t k = 1; k < n; k++)
        if (is_max ? x[k] > best : x[k] < best) {
            best = x[k];
            bi = k;
        }
    *v = best;
    *at = bi;
}

static void transform(double *x, int64_t n, const phase *ph, int64_t o)
{
    switch (ph->x) {
    case X_NONE: break;
    case X_ABS:
        for (int64_t k = 0; k < n; k++)
            x[k] = fabs(x[k]);
        break;
    case X_SQ:
        for (int64_t k = 0; k < n; k++)
            x[k] = x[k] * x[k];
        break;
    case X_POWABS:
        for (int64_t k = 0; k < n; k++)
            x[k] = pow(fabs(x[k]), ph->p);
        break;
    case X_NONZERO:
        for (int64_t k = 0; k < n; k++)
            x[k] = x[k] != 0;
        break;
    case X_SQDEV: {
        double c = ph->center[o];
        for (int64_t k = 0; k < n; k++) {
            double d = x[k] - c;
            x[k] = d * d;
        }
        break;
    }
    case X_EXPSUB: {
        double c = ph->center[o];
        for (int64_t k = 0; k < n; k++)
            x[k] = exp(x[k] - c);
        break;
    }
    }
}

static bool parallel_worth(const geom *g) { return g->O * g->R >= PARALLEL_MIN; }

/* Reducing leading dims of a tensor whose kept dims are innermost (a sum
 * over the batch of an N x C tensor) would gather each output's elements
 * with a large stride. Instead a work item takes a tile of up to TILE
 * neighbouring outputs, adjacent in memory, and gathers them together,
 * one cache line per reduced position. The buffers hold the same values
 * in the same order as the one-output gather, so results are identical. */
#define TILE 16

static bool use_tiles(const geom *g)
{
    return g->nk > 0 && g->kstride[g->nk - 1] == 1 && g->kshape[g->nk - 1] >= 4 && g->nr > 0 &&
           g->rstride[g->nr - 1] != 1;
}

/* buf[t * BLOCK + j] = element f0 + j of output o0 + t, for t < nt. */
static void gather_tile(const geom *g, int64_t base, int nt, int64_t f0, int64_t n, double *buf)
{
    int64_t idx[DT_MAX_DIMS], off = base, f = f0;
    for (int d = g->nr - 1; d >= 0; d--) {
        idx[d] = f % g->rshape[d];
        f /= g->rshape[d];
        off += idx[d] * g->rstride[d];
    }
    int last = g->nr - 1;
    for (int64_t j = 0; j < n; j++) {
        switch (g->dtype) {
        case DT_FLOAT32: {
            const float *p = (const float *)g->data + off;
            for (int t = 0; t < nt; t++)
                buf[t * BLOCK + j] = p[t];
            if (last == 0 && j + 1 < n && idx[0] + 1 < g->rshape[0]) {
                /* fast path: one reduced dim, no carry to handle */
                idx[0]++;
                off += g->rstride[0];
                continue;
            }
            break;
        }
        case DT_INT64: {
            const int64_t *p = (const int64_t *)g->data + off;
            for (int t = 0; t < nt; t++)
                buf[t * BLOCK + j] = (double)p[t];
            break;
        }
        case DT_UINT8: {
            const uint8_t *p = (const uint8_t *)g->data + off;
            for (int t = 0; t < nt; t++)
                buf[t * BLOCK + j] = p[t];
            break;
        }
        }
        for (int d = last; d >= 0; d--) {   /* next reduced position */
            off += g->rstride[d];
            if (++idx[d] < g->rshape[d])
                break;
            off -= g->rshape[d] * g->rstride[d];
            idx[d] = 0;
        }
    }
}

/* Transform and reduce one gathered block of output o into a partial. */
static void block_partial(double *buf, int64_t n, const phase *ph, int64_t o, int64_t f0,
                          double *pv, int64_t *pi)
{
    transform(buf, n, ph, o);
    switch (ph->b) {
    case B_SUM: *pv = sum_block(buf, n); break;
    case B_PROD: {
        double p = 1;
        for (int64_t k = 0; k < n; k++)
            p *= buf[k];
        *pv = p;
        break;
    }
    case B_MAX:
    case B_MIN:
        extreme_block(buf, n, ph->b == B_MAX, pv, pi);
        *pi += f0;
        break;
    }
}

/* One pass in double: res[o] (and at[o] for max/min, 0-based flat reduced
 * index) for every output. */
static dt_status run_phase(const geom *g, const phase *ph, double *res, int64_t *at)
{
    int64_t items_all = g->O * g->K;
    double *pv = malloc((size_t)(items_all > 0 ? items_all : 1) * sizeof *pv);
    int64_t *pi = malloc((size_t)(items_all > 0 ? items_all : 1) * sizeof *pi);
    if (!pv || !pi) {
        free(pv);
        free(pi);
        return dt_fail(DT_ERR_NOMEM, "out of memory in a reduction");
    }
    bool tiles = use_tiles(g);
    int64_t row = tiles ? g->kshape[g->nk - 1] : 1;         /* outputs per innermost kept row */
    int64_t per_row = tiles ? (row + TILE - 1) / TILE : 1;  /* tiles per row */
    int64_t units = tiles ? (g->O / row) * per_row : g->O;  /* tiles (or single outputs) */
    int64_t items = units * g->K;
    int failed = 0;
#pragma omp parallel if (parallel_worth(g))
    {
        double *buf = malloc((size_t)(tiles ? TILE : 1) * BLOCK * sizeof *buf);
        if (!buf) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t it = 0; it < items; it++) {
            if (!buf)
                continue;
            int64_t u = it / g->K, f0 = (it % g->K) * BLOCK;
            int64_t n = g->R - f0 < BLOCK ? g->R - f0 : BLOCK;
            if (tiles) {
                int64_t o0 = (u / per_row) * row + (u % per_row) * TILE;
                int64_t left = row - (u % per_row) * TILE;
                int nt = left < TILE ? (int)left : TILE;
                gather_tile(g, kept_offset(g, o0), nt, f0, n, buf);
                for (int t = 0; t < nt; t++) {
                    int64_t o = o0 + t, slot = o * g->K + it % g->K;
                    block_partial(buf + t * BLOCK, n, ph, o, f0, &pv[slot], &pi[slot]);
                }
            } else {
                gather_f64(g, kept_offset(g, u), f0, n, buf);
                block_partial(buf, n, ph, u, f0, &pv[it], &pi[it]);
            }
        }
        free(buf);
    }
    if (failed) {
        free(pv);
        free(pi);
        return dt_fail(DT_ERR_NOMEM, "out of memory in a reduction");
    }
#pragma omp parallel for schedule(static) if (parallel_worth(g))
    for (int64_t o = 0; o < g->O; o++) {
        const double *v = pv + o * g->K;
        const int64_t *i = pi + o * g->K;
        double r;
        int64_t ri = 0;
        switch (ph->b) {
        case B_SUM:
            r = 0;
            for (int64_t k = 0; k < g->K; k++)
                r += v[k];
            break;
        case B_PROD:
            r = 1;
            for (int64_t k = 0; k < g->K; k++)
                r *= v[k];
            break;
        default: {
            /* an empty reduction never gets here for max/min (checked);
             * logsumexp's first pass over nothing gives -inf */
            bool is_max = ph->b == B_MAX;
            r = is_max ? -INFINITY : INFINITY;
            for (int64_t k = 0; k < g->K; k++)
                if (k == 0 || better_f(v[k], r, is_max)) {
                    r = v[k];
                    ri = i[k];
                }
            break;
        }
        }
        res[o] = r;
        if (at)
            at[o] = ri;
    }
    free(pv);
    free(pi);
    return DT_OK;
}

/* The exact integer pass: sum, prod, max, min of int64/uint8 inputs. */
static dt_status run_phase_i64(const geom *g, blockop b, int64_t *res, int64_t *at)
{
    int64_t items = g->O * g->K;
    int64_t *pv = malloc((size_t)(items > 0 ? items : 1) * sizeof *pv);
    int64_t *pi = malloc((size_t)(items > 0 ? items : 1) * sizeof *pi);
    if (!pv || !pi) {
        free(pv);
        free(pi);
        return dt_fail(DT_ERR_NOMEM, "out of memory in a reduction");
    }
#pragma omp parallel for schedule(static) if (parallel_worth(g))
    for (int64_t it = 0; it < items; it++) {
        int64_t buf[BLOCK];
        buf[0] = 0;
        int64_t o = it / g->K, f0 = (it % g->K) * BLOCK;
        int64_t n = g->R - f0 < BLOCK ? g->R - f0 : BLOCK;
        gather_i64(g, kept_offset(g, o), f0, n, buf);
        switch (b) {
        case B_SUM: pv[it] = sum_block_i64(buf, n); break;
        case B_PROD: {
            uint64_t p = 1;
            for (int64_t k = 0; k < n; k++)
                p *= (uint64_t)buf[k];
            pv[it] = (int64_t)p;
            break;
        }
        case B_MAX:
        case B_MIN:
            extreme_block_i64(buf, n, b == B_MAX, &pv[it], &pi[it]);
            pi[it] += f0;
            break;
        }
    }
#pragma omp parallel for schedule(static) if (parallel_worth(g))
    for (int64_t o = 0; o < g->O; o++) {
        const int64_t *v = pv + o * g->K;
        const int64_t *i = pi + o * g->K;
        uint64_t acc = b == B_PROD ? 1 : 0;
        int64_t best = 0, bi = 0;
        for (int64_t k = 0; k < g->K; k++) {
            if (b == B_SUM)
                acc += (uint64_t)v[k];
            else if (b == B_PROD)
                acc *= (uint64_t)v[k];
            else if (k == 0 || (b == B_MAX ? v[k] > best : v[k] < best)) {
                best = v[k];
                bi = i[k];
            }
        }
        res[o] = b == B_SUM || b == B_PROD ? (int64_t)acc : best;
        if (at)
            at[o] = bi;
    }
    free(pv);
    free(pi);
    return DT_OK;
}

/* ------------------------------------------------------------------ entry */

static const char *op_name(dt_reduce_op op)
{
    static const char *names[] = {"sum", "mean", "max", "min", "argmax", "argmin",
                                  "var", "std", "norm", "logsumexp", "prod"};
    return names[op];
}

static dt_dtype out_dtype(dt_reduce_op op, dt_dtype in)
{
    switch (op) {
    case DT_RED_SUM:
    case DT_RED_PROD: return in == DT_FLOAT32 ? DT_FLOAT32 : DT_INT64;
    case DT_RED_MAX:
    case DT_RED_MIN: return in;
    case DT_RED_ARGMAX:
    case DT_RED_ARGMIN: return DT_INT64;
    default: return DT_FLOAT32;
    }
}

/* Compute into the contiguous output `out` (O elements). */
static dt_status compute(dt_reduce_op op, const geom *g, const dt_reduce_opts *opts, dt_tensor *out)
{
    int64_t O = g->O;
    bool is_arg = op == DT_RED_ARGMAX || op == DT_RED_ARGMIN;
    bool exact_int = g->dtype != DT_FLOAT32 &&
                     (op == DT_RED_SUM || op == DT_RED_PROD || op == DT_RED_MAX ||
                      op == DT_RED_MIN || is_arg);
    size_t n = (size_t)(O > 0 ? O : 1);
    dt_status st = DT_OK;

    if (exact_int) {
        int64_t *res = malloc(n * sizeof *res), *at = malloc(n * sizeof *at);
        blockop b = op == DT_RED_SUM ? B_SUM : op == DT_RED_PROD ? B_PROD
                  : (op == DT_RED_MAX || op == DT_RED_ARGMAX) ? B_MAX : B_MIN;
        st = res && at ? run_phase_i64(g, b, res, at)
                       : dt_fail(DT_ERR_NOMEM, "out of memory in a reduction");
        if (st == DT_OK) {
            for (int64_t o = 0; o < O; o++) {
                int64_t v = is_arg ? at[o] : res[o];
                if (out->dtype == DT_UINT8)
                    dt_u8(out)[o] = (uint8_t)v;
                else
                    dt_i64(out)[o] = v;
            }
        }
        free(res);
        free(at);
        return st;
    }

    double *res = malloc(n * sizeof *res), *center = malloc(n * sizeof *center);
    int64_t *at = malloc(n * sizeof *at);
    if (!res || !center || !at) {
        free(res);
        free(center);
        free(at);
        return dt_fail(DT_ERR_NOMEM, "out of memory in a reduction");
    }
    double R = (double)g->R;
    phase ph = {X_NONE, B_SUM, 0, NULL};
    switch (op) {
    case DT_RED_SUM:
    case DT_RED_MEAN:
        st = run_phase(g, &ph, res, NULL);
        if (op == DT_RED_MEAN)
            for (int64_t o = 0; o < O; o++)
                res[o] /= R;   /* 0/0: the mean of nothing is NaN */
        break;
    case DT_RED_PROD:
        ph.b = B_PROD;
        st = run_phase(g, &ph, res, NULL);
        break;
    case DT_RED_MAX:
    case DT_RED_MIN:
    case DT_RED_ARGMAX:
    case DT_RED_ARGMIN:
        ph.b = (op == DT_RED_MAX || op == DT_RED_ARGMAX) ? B_MAX : B_MIN;
        st = run_phase(g, &ph, res, at);
        break;
    case DT_RED_VAR:
    case DT_RED_STD: {
        st = run_phase(g, &ph, center, NULL);
        for (int64_t o = 0; o < O; o++)
            center[o] /= R;
        phase dev = {X_SQDEV, B_SUM, 0, center};
        if (st == DT_OK)
            st = run_phase(g, &dev, res, NULL);
        /* As torch: divide by max(0, R - correction), so one element with
         * correction 1 gives 0/0 = NaN and too large a correction gives inf. */
        double denom = R - opts->correction > 0 ? R - opts->correction : 0;
        for (int64_t o = 0; o < O; o++) {
            double v = res[o] / denom;
            res[o] = op == DT_RED_STD ? sqrt(v) : v;
        }
        break;
    }
    case DT_RED_NORM: {
        double p = opts->p;
        if (p == INFINITY || p == -INFINITY) {
            ph.x = X_ABS;
            ph.b = p > 0 ? B_MAX : B_MIN;
            if (g->R == 0) {   /* torch: the inf-norm of nothing is 0 */
                for (int64_t o = 0; o < O; o++)
                    res[o] = 0;
                break;
            }
            st = run_phase(g, &ph, res, at);
        } else if (p == 0) {
            ph.x = X_NONZERO;
            st = run_phase(g, &ph, res, NULL);
        } else if (p == 1) {
            ph.x = X_ABS;
            st = run_phase(g, &ph, res, NULL);
        } else if (p == 2) {
            ph.x = X_SQ;
            st = run_phase(g, &ph, res, NULL);
            for (int64_t o = 0; o < O; o++)
                res[o] = sqrt(res[o]);
        } else {
            ph.x = X_POWABS;
            ph.p = p;
            st = run_phase(g, &ph, res, NULL);
            for (int64_t o = 0; o < O; o++)
                res[o] = pow(res[o], 1.0 / p);
        }
        break;
    }
    case DT_RED_LOGSUMEXP: {
        /* log(sum(exp(x))) = m + log(sum(exp(x - m))) with m the max, so
         * large values do not overflow. */
        phase mx = {X_NONE, B_MAX, 0, NULL};
        st = g->R > 0 ? run_phase(g, &mx, center, at) : DT_OK;
        if (g->R == 0)
            for (int64_t o = 0; o < O; o++)
                center[o] = -INFINITY;
        phase es = {X_EXPSUB, B_SUM, 0, center};
        if (st == DT_OK)
            st = run_phase(g, &es, res, NULL);
        for (int64_t o = 0; o < O; o++) {
            double m = center[o];
            res[o] = isinf(m) || m != m ? m : m + log(res[o]);
        }
        break;
    }
    }
    if (st == DT_OK) {
        for (int64_t o = 0; o < O; o++) {
            if (is_arg)
                dt_i64(out)[o] = at[o];
            else
                dt_f32(out)[o] = (float)res[o];
        }
    }
    free(res);
    free(center);
    free(at);
    return st;
}

dt_status dt_reduce(dt_reduce_op op, const dt_tensor *a, const dt_reduce_opts *opts, dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_OTHER);
    *out = NULL;
    dt_reduce_opts defaults;
    if (!opts) {
        dt_reduce_opts_init(&defaults);
        opts = &defaults;
    }
    if ((int)op < 0 || op > DT_RED_PROD)
        return dt_fail(DT_ERR_ARG, "unknown reduction %d", (int)op);
    bool is_arg = op == DT_RED_ARGMAX || op == DT_RED_ARGMIN;
    if (opts->ndims < 0 || opts->ndims > DT_MAX_DIMS)
        return dt_fail(DT_ERR_ARG, "%s: %d dims given; at most %d", op_name(op), opts->ndims,
                       DT_MAX_DIMS);
    if (is_arg && opts->ndims > 1)
        return dt_fail(DT_ERR_ARG, "%s reduces over one dim (or over all elements), got %d dims",
                       op_name(op), opts->ndims);
    if (op == DT_RED_NORM && opts->p != opts->p)
        return dt_fail(DT_ERR_ARG, "norm: p must not be NaN");

    bool reduced[DT_MAX_DIMS];
    for (int d = 0; d < DT_MAX_DIMS; d++)
        reduced[d] = opts->ndims == 0;
    for (int i = 0; i < opts->ndims; i++) {
        int d = opts->dims[i];
        dt_status st = dt_normalize_dim(&d, a->ndim);
        if (st)
            return st;
        if (a->ndim == 0)
            continue;   /* dim 0 (or -1) of a 0-d tensor: nothing to reduce */
        if (reduced[d])
            return dt_fail(DT_ERR_ARG, "dim %d appears more than once", d + 1);
        reduced[d] = true;
    }

    geom g;
    make_geom(a, reduced, &g);
    if (g.R == 0 && g.O > 0 &&
        (op == DT_RED_MAX || op == DT_RED_MIN || is_arg))
        return dt_fail(DT_ERR_SHAPE, "%s of an empty dim is undefined (it has no identity; the "
                       "reduced size is 0)", op_name(op));

    int64_t shape[DT_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < a->ndim; d++) {
        if (!reduced[d])
            shape[nd++] = a->shape[d];
        else if (opts->keepdim)
            shape[nd++] = 1;
    }
    dt_tensor *r;
    dt_status st = dt_zeros(out_dtype(op, a->dtype), nd, shape, &r);
    if (st == DT_OK)
        st = compute(op, &g, opts, r);
    if (st) {
        dt_tensor_release(r);
        return st;
    }
    *out = r;
    return DT_OK;
}
