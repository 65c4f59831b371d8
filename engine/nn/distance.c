/* distance.c - normalize, cdist, pairwise_distance and cosine_similarity
 * with their backward functions, following torch's definitions.
 *
 * p-norms: ||v||_p = (sum_k |v_k|^p)^(1/p) for a finite p > 0, with
 * d||v||_p / dv_k = sign(v_k) (|v_k| / ||v||_p)^(p-1), taken as 0 where
 * v_k == 0 or the norm is 0, so backward at zero distance gives 0, never
 * NaN. Sums are in double; parallel loops give each output element to one
 * thread, so results do not depend on the thread count. */
#include "distill.h"
#include "autograd/op.h"
#include "autograd/kernel_util.h"

#include <math.h>

/* Below this much work OpenMP's start-up costs more than it saves. */
#define PAR_MIN 32768

static dt_status check_float(const dt_tensor *x)
{
    if (x->dtype != DT_FLOAT32)
        return dt_fail(DT_ERR_DTYPE, "expected float32 tensors, got %s",
                       dt_dtype_name(x->dtype));
    return DT_OK;
}

static dt_status check_p(double p)
{
    if (!(p > 0.0) || isinf(p))
        return dt_fail(DT_ERR_ARG, "p must be positive and finite, got %g", p);
    return DT_OK;
}

static dt_status check_same_shape(const dt_tensor *a, const dt_tensor *b)
{
    dt_status st = check_float(a);
    if (st || (st = check_float(b)))
        return st;
    if (dt_same_shape(a, b))
        return DT_OK;
    char s1[128], s2[128];
    return dt_fail(DT_ERR_SHAPE, "x1 of shape %s and x2 of shape %s differ",
                   dt_shape_str(a->shape, a->ndim, s1, sizeof s1),
                   dt_shape_str(b->shape, b->ndim, s2, sizeof s2));
}

/* |v|^p, specialised for the common orders. */
static inline double pow_abs(double v, double p)
{
    if (p == 2.0)
        return v * v;
    if (p == 1.0)
        return fabs(v);
    return pow(fabs(v), p);
}

static inline double root(double s, double p)
{
    if (p == 2.0)
        return sqrt(s);
    if (p == 1.0)
        return s;
    return pow(s, 1.0 / p);
}

/* d||v||_p / dv_k from v_k and the norm. */
static inline double norm_grad(double v, double norm, double p)
{
    if (norm == 0.0 || v == 0.0)
        return 0.0;
    if (p == 2.0)
        return v / norm;
    double s = v > 0 ? 1.0 : -1.0;
    if (p == 1.0)
        return s;
    return s * pow(fabs(v) / norm, p - 1.0);
}

/* t's shape without `dim`. */
static int drop_dim(const dt_tensor *t, int dim, int64_t *shape)
{
    int m = 0;
    for (int d = 0; d < t->ndim; d++)
        if (d != dim)
            shape[m++] = t->shape[d];
    return m;
}

/* ------------------------------------------------------------ normalize */

/* torch F.normalize: y = x / max(||x||_p, eps) along dim. With
 * d = max(n, eps), backward is
 *   dx_k = g_k / d - [n >= eps] (sum_j g_j x_j) / d^2 * dn/dx_k
 * (the clamp passes no gradient to the norm where it is active).
 * Saved: x. darg: p, eps; iarg: dim. */
static dt_status normalize_backward(dt_node *n, const dt_tensor *grad_out, dt_tensor **gi)
{
    if (!n->needs_grad[0])
        return DT_OK;
    ku_backward b;
    dt_status st = ku_backward_begin(n, grad_out, gi, 1, 1, 1, &b);
    if (st == DT_OK) {
        double p = n->darg[0], eps = n->darg[1];
        ku_lanes l = ku_lanes_of(b.dense[0], (int)n->iarg[0]);
        const float *xp = dt_f32(b.dense[0]), *gp = dt_f32(b.grad);
        float *dx = dt_f32(gi[0]);
        int64_t count = l.outer * l.inner;
        #pragma omp parallel for schedule(static) if (count * l.n >= PAR_MIN)
        for (int64_t lane = 0; lane < count; lane++) {
            int64_t base = ku_lane_base(&l, lane);
            double s = 0, dot = 0;
            for (int64_t k = 0; k < l.n; k++) {
                double v = xp[base + k * l.inner];
                s += pow_abs(v, p);
                dot += v * gp[base + k * l.inner];
            }
            double norm = root(s, p), d = norm >= eps ? norm : eps;
            bool clamped = norm < eps;
            for (int64_t k = 0; k < l.n; k++) {
                int64_t j = base + k * l.inner;
                double v = gp[j] / d;
                if (!clamped)
                    v -= dot / (d * d) * norm_grad(xp[j], norm, p);
                dx[j] = (float)v;
            }
        }
    }
    ku_backward_end(&b);
    return st;
}

dt_status dt_f_normalize(const dt_tensor *x, double p, int dim, double eps, dt_tensor **out)
{
    *out = NULL;
    dt_status st = check_float(x);
    if (st || (st = check_p(p)) || (st = dt_normalize_dim(&dim, x->ndim)))
        return st;
    if (!(eps >= 0.0))
        return dt_fail(DT_ERR_ARG, "eps must be >= 0, got %g", eps);
    dt_tensor *xc, *y;
    if ((st = ku_dense_and_like(x, &xc, &y)))
        return st;
    ku_lanes l = ku_lanes_of(xc, dim);
    const float *xp = dt_f32(xc);
    float *yp = dt_f32(y);
    int64_t count = l.outer * l.inner;
    #pragma omp parallel for schedule(static) if (count * l.n >= PAR_MIN)
    for (int64_t lane = 0; lane < count; lane++) {
        int64_t base = ku_lane_base(&l, lane);
        double s = 0;
        for (int64_t k = 0; k < l.n; k++)
            s += pow_abs(xp[base + k * l.inner], p);
        double norm = root(s, p), d = norm >= eps ? norm : eps;
        for (int64_t k = 0; k < l.n; k++)
            yp[base + k * l.inner] = (float)(xp[base + k * l.inner] / d);
    }
    dt_tensor_release(xc);
    dt_node *node;
    if ((st = ku_record1("NormalizeBackward", normalize_backward, x, x, y, &node)))
        return st;
    if (node) {
        node->iarg[0] = dim;
        node->darg[0] = p;
        node->darg[1] = eps;
    }
    *out = y;
    return DT_OK;
}

/* ---------------------------------------------------------------- cdist */

/* out[b][i][j] = ||x1[b][i] - x2[b][j]||_p for x1 (batch...) x P x M and
 * x2 (batch...) x R x M with equal batch dims (no broadcasting), computed
 * directly (no |a|^2 + |b|^2 - 2ab shortcut, which loses precision).
 * Saved: x1, x2, out. darg: p. */
typedef struct cdist_geom {
    int64_t batch, p, r, m;
} cdist_geom;

static cdist_geom cdist_geom_of(const int64_t *s1, const int64_t *s2, int ndim)
{
    cdist_geom g = {1, s1[ndim - 2], s2[ndim - 2], s1[ndim - 1]};
    for (int d = 0; d < ndim - 2; d++)
        g.batch *= s1[d];
    return g;
}

static dt_status cdist_backward(dt_node *n, const dt_tensor *grad_out, dt_tensor **gi)
{
    ku_backward bw;   /* saved 2, the distances, is contiguous: made by the forward */
    dt_status st = ku_backward_begin(n, grad_out, gi, 3, 2, 2, &bw);
    if (st)
        goto done;
    double p = n->darg[0];
    const dt_tensor *x1 = bw.saved[0], *x2 = bw.saved[1];
    cdist_geom g = cdist_geom_of(x1->shape, x2->shape, x1->ndim);
    const float *a = dt_f32(bw.dense[0]), *b = dt_f32(bw.dense[1]), *gp = dt_f32(bw.grad),
                *dp = dt_f32(bw.saved[2]);
    int64_t work = g.batch * g.p * g.r * g.m;
    if (gi[0]) {
        /* dx1[b][i][k] = sum_j g[b][i][j] * dd_ij/dx1_ik */
        float *d1 = dt_f32(gi[0]);
        #pragma omp parallel for schedule(static) if (work >= PAR_MIN)
        for (int64_t bi = 0; bi < g.batch * g.p; bi++) {
            int64_t bb = bi / g.p;
            const float *row = a + bi * g.m;
            for (int64_t k = 0; k < g.m; k++) {
                double acc = 0;
                for (int64_t j = 0; j < g.r; j++) {
                    int64_t o = bi * g.r + j;
                    double diff = (double)row[k] - b[(bb * g.r + j) * g.m + k];
                    acc += gp[o] * norm_grad(diff, dp[o], p);
                }
                d1[bi * g.m + k] = (float)acc;
            }
        }
    }
    if (gi[1]) {
        /* dx2[b][j][k] = -sum_i g[b][i][j] * dd_ij/dx1_ik */
        float *d2 = dt_f32(gi[1]);
        #pragma omp parallel for schedule(static) if (work >= PAR_MIN)
        for (int64_t bj = 0; bj < g.batch * g.r; bj++) {
            int64_t bb = bj / g.r, j = bj % g.r;
            const float *col = b + bj * g.m;
            for (int64_t k = 0; k < g.m; k++) {
                double acc = 0;
                for (int64_t i = 0; i < g.p; i++) {
                    int64_t o = (bb * g.p + i) * g.r + j;
                    double diff = (double)a[(bb * g.p + i) * g.m + k] - col[k];
                    acc -= gp[o] * norm_grad(diff, dp[o], p);
                }
                d2[bj * g.m + k] = (float)acc;
            }
        }
    }
done:
    ku_backward_end(&bw);
    return st;
}

dt_status dt_f_cdist(const dt_tensor *x1, const dt_tensor *x2, double p, dt_tensor **out)
{
    *out = NULL;
    char s1[128], s2[128];
    dt_status st = check_float(x1);
    if (st || (st = check_float(x2)) || (st = check_p(p)))
        return st;
    bool ok = x1->ndim >= 2 && x1->ndim == x2->ndim &&
              x1->shape[x1->ndim - 1] == x2->shape[x2->ndim - 1];
    for (int d = 0; ok && d < x1->ndim - 2; d++)
        ok = x1->shape[d] == x2->shape[d];
    if (!ok)
        return dt_fail(DT_ERR_SHAPE, "expected x1 (B...) x P x M and x2 (B...) x R x M with "
                       "the same batch dims and M, got %s and %s",
                       dt_shape_str(x1->shape, x1->ndim, s1, sizeof s1),
                       dt_shape_str(x2->shape, x2->ndim, s2, sizeof s2));
    cdist_geom g = cdist_geom_of(x1->shape, x2->shape, x1->ndim);
    int64_t shape[DT_MAX_DIMS];
    for (int d = 0; d < x1->ndim - 1; d++)
        shape[d] = x1->shape[d];
    shape[x1->ndim - 1] = g.r;
    dt_tensor *c1 = NULL, *c2 = NULL, *y = NULL;
    st = ku_dense2(x1, x2, &c1, &c2);
    if (st == DT_OK)
        st = dt_empty(DT_FLOAT32, x1->ndim, shape, &y);
    if (st == DT_OK) {
        const float *a = dt_f32(c1), *b = dt_f32(c2);
        float *yp = dt_f32(y);
        #pragma omp parallel for schedule(static) if (g.batch * g.p * g.r * g.m >= PAR_MIN)
        for (int64_t bi = 0; bi < g.batch * g.p; bi++) {
            int64_t bb = bi / g.p;
            for (int64_t j = 0; j < g.r; j++) {
                const float *u = a + bi * g.m, *v = b + (bb * g.r + j) * g.m;
                double s = 0;
                for (int64_t k = 0; k < g.m; k++)
                    s += pow_abs((double)u[k] - v[k], p);
                yp[bi * g.r + j] = (float)root(s, p);
            }
        }
        dt_node *node = NULL;
        st = ku_record2("CdistBackward", cdist_backward, x1, x2, true, y, &node);
        if (node)
            node->darg[0] = p;
    }
    return ku_finish(st, y, out, 2, (dt_tensor *[]){c1, c2});
}

/* ---------------------------------------------------- pairwise_distance */

/* torch: out = ||x1 - x2 + eps||_p over the last dim (dropped). x1 and x2
 * have one shape (no broadcasting). Saved: x1, x2, out. darg: p, eps. */
static dt_status pairwise_backward(dt_node *n, const dt_tensor *grad_out, dt_tensor **gi)
{
    ku_backward bw;
    dt_status st = ku_backward_begin(n, grad_out, gi, 3, 2, 2, &bw);
    if (st == DT_OK) {
        double p = n->darg[0], eps = n->darg[1];
        const dt_tensor *x1 = bw.saved[0];
        int64_t m = x1->shape[x1->ndim - 1], rows = m ? dt_numel(x1) / m : 0;
        const float *a = dt_f32(bw.dense[0]), *b = dt_f32(bw.dense[1]), *gp = dt_f32(bw.grad),
                    *dp = dt_f32(bw.saved[2]);
        float *d1 = gi[0] ? dt_f32(gi[0]) : NULL, *d2 = gi[1] ? dt_f32(gi[1]) : NULL;
        #pragma omp parallel for schedule(static) if (rows * m >= PAR_MIN)
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t k = 0; k < m; k++) {
                int64_t j = r * m + k;
                double v = gp[r] * norm_grad((double)a[j] - b[j] + eps, dp[r], p);
                if (d1)
                    d1[j] = (float)v;
                if (d2)
                    d2[j] = (float)-v;
            }
        }
    }
    ku_backward_end(&bw);
    return st;
}

dt_status dt_f_pairwise_distance(const dt_tensor *x1, const dt_tensor *x2, double p, double eps,
                                 dt_tensor **out)
{
    *out = NULL;
    dt_status st = check_same_shape(x1, x2);
    if (st || (st = check_p(p)))
        return st;
    if (x1->ndim < 1)
        return dt_fail(DT_ERR_SHAPE, "inputs need at least 1 dim");
    int64_t shape[DT_MAX_DIMS];
    int ndim = drop_dim(x1, x1->ndim - 1, shape);
    int64_t m = x1->shape[x1->ndim - 1];
    dt_tensor *c1 = NULL, *c2 = NULL, *y = NULL;
    st = ku_dense2(x1, x2, &c1, &c2);
    if (st == DT_OK)
        st = dt_empty(DT_FLOAT32, ndim, shape, &y);
    if (st == DT_OK) {
        const float *a = dt_f32(c1), *b = dt_f32(c2);
        float *yp = dt_f32(y);
        int64_t rows = dt_numel(y);
        #pragma omp parallel for schedule(static) if (rows * m >= PAR_MIN)
        for (int64_t r = 0; r < rows; r++) {
            double s = 0;
            for (int64_t k = 0; k < m; k++)
                s += pow_abs((double)a[r * m + k] - b[r * m + k] + eps, p);
            yp[r] = (float)root(s, p);
        }
        dt_node *node = NULL;
        st = ku_record2("PairwiseDistanceBackward", pairwise_backward, x1, x2, true, y, &node);
        if (node) {
            node->darg[0] = p;
            node->darg[1] = eps;
        }
    }
    return ku_finish(st, y, out, 2, (dt_tensor *[]){c1, c2});
}

/* ---------------------------------------------------- cosine_similarity */

/* torch 1.13's formula, along `dim` (dropped):
 *   w12 = sum x1*x2, w1 = sum x1*x1, w2 = sum x2*x2
 *   out = w12 / sqrt(max(w1 * w2, eps^2))   = x1.x2 / max(|x1| |x2|, eps)
 * Backward with s = sqrt(w1 w2): unclamped (w1 w2 > eps^2)
 *   dx1 = g (x2 / s - out x1 / w1),  dx2 = g (x1 / s - out x2 / w2);
 * clamped: dx1 = g x2 / eps, dx2 = g x1 / eps.
 * Saved: x1, x2. iarg: dim; darg: eps. */
typedef struct cos_terms {
    double w12, w1, w2;
} cos_terms;

static cos_terms cos_lane(const float *a, const float *b, int64_t n, int64_t stride)
{
    cos_terms t = {0, 0, 0};
    for (int64_t k = 0; k < n; k++) {
        double u = a[k * stride], v = b[k * stride];
        t.w12 += u * v;
        t.w1 += u * u;
        t.w2 += v * v;
    }
    return t;
}

static dt_status cosine_backward(dt_node *n, const dt_tensor *grad_out, dt_tensor **gi)
{
    ku_backward bw;
    dt_status st = ku_backward_begin(n, grad_out, gi, 2, 2, 2, &bw);
    if (st == DT_OK) {
        double eps = n->darg[0];
        ku_lanes l = ku_lanes_of(bw.dense[0], (int)n->iarg[0]);
        const float *a = dt_f32(bw.dense[0]), *b = dt_f32(bw.dense[1]), *gp = dt_f32(bw.grad);
        float *d1 = gi[0] ? dt_f32(gi[0]) : NULL, *d2 = gi[1] ? dt_f32(gi[1]) : NULL;
        int64_t count = l.outer * l.inner;
        #pragma omp parallel for schedule(static) if (count * l.n >= PAR_MIN)
        for (int64_t lane = 0; lane < count; lane++) {
            int64_t base = ku_lane_base(&l, lane);
            cos_terms t = cos_lane(a + base, b + base, l.n, l.inner);
            double g = gp[lane], prod = t.w1 * t.w2;
            bool clamped = !(prod > eps * eps);
            double s = clamped ? eps : sqrt(prod), cosine = t.w12 / s;
            for (int64_t k = 0; k < l.n; k++) {
                int64_t j = base + k * l.inner;
                double u = a[j], v = b[j];
                if (d1)
                    d1[j] = (float)(g * (clamped ? v / s : v / s - cosine * u / t.w1));
                if (d2)
                    d2[j] = (float)(g * (clamped ? u / s : u / s - cosine * v / t.w2));
            }
        }
    }
    ku_backward_end(&bw);
    return st;
}

dt_status dt_f_cosine_similarity(const dt_tensor *x1, const dt_tensor *x2, int dim, double eps,
                                 dt_tensor **out)
{
    *out = NULL;
    dt_status st = check_same_shape(x1, x2);
    if (st || (st = dt_normalize_dim(&dim, x1->ndim)))
        return st;
    if (!(eps >= 0.0))
        return dt_fail(DT_ERR_ARG, "eps must be >= 0, got %g", eps);
    int64_t shape[DT_MAX_DIMS];
    int ndim = drop_dim(x1, dim, shape);
    dt_tensor *c1 = NULL, *c2 = NULL, *y = NULL;
    st = ku_dense2(x1, x2, &c1, &c2);
    if (st == DT_OK)
        st = dt_empty(DT_FLOAT32, ndim, shape, &y);
    if (st == DT_OK) {
        ku_lanes l = ku_lanes_of(c1, dim);
        const float *a = dt_f32(c1), *b = dt_f32(c2);
        float *yp = dt_f32(y);
        int64_t count = l.outer * l.inner;
        /* the output is the lanes in (outer, inner) order: lane index */
        #pragma omp parallel for schedule(static) if (count * l.n >= PAR_MIN)
        for (int64_t lane = 0; lane < count; lane++) {
            cos_terms t = cos_lane(a + ku_lane_base(&l, lane), b + ku_lane_base(&l, lane), l.n, l.inner);
            double prod = t.w1 * t.w2;
            yp[lane] = (float)(t.w12 / (prod > eps * eps ? sqrt(prod) : eps));
        }
        dt_node *node = NULL;
        st = ku_record2("CosineSimilarityBackward", cosine_backward, x1, x2, false, y, &node);
        if (node) {
            node->iarg[0] = dim;
            node->darg[0] = eps;
        }
    }
    return ku_finish(st, y, out, 2, (dt_tensor *[]){c1, c2});
}
