/* loss.c - cross_entropy, nll_loss, kl_div, mse_loss, l1_loss and
 * smooth_l1_loss with their backward functions, following torch's
 * definitions.
 *
 * Classification losses take an input N x C (or N x C x d1 x ...) and an
 * int64 target N (or N x d1 x ...) of 0-based class indices; "positions"
 * are the N * d1 * ... entries of the target. Pointwise losses take two
 * float32 tensors of one shape. Sums are accumulated in double in index
 * order, so results do not depend on the thread count. */
#include "distill.h"
#include "autograd/op.h"
#include "autograd/kernel_util.h"

#include <math.h>
#include <string.h>

/* Below this many elements OpenMP's start-up costs more than it saves. */
#define PAR_MIN 32768

bool dt_reduction_parse(const char *name, dt_reduction *out)
{
    static const char *const names[] = {"none", "mean", "sum", "batchmean"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (dt_reduction)i;
            return true;
        }
    }
    return false;
}

/* The result tensor: `values` itself (shape ndim/shape) for "none", else a
 * 0-d tensor holding sum / divisor. */
static dt_status reduce_result(const float *values, int64_t count, dt_reduction reduction,
                               double divisor, int ndim, const int64_t *shape, dt_tensor **out)
{
    dt_status st;
    if (reduction == DT_REDUCTION_NONE) {
        if ((st = dt_empty(DT_FLOAT32, ndim, shape, out)))
            return st;
        memcpy(dt_f32(*out), values, (size_t)count * sizeof(float));
        return DT_OK;
    }
    double total = 0;
    for (int64_t i = 0; i < count; i++)
        total += values[i];
    if (reduction != DT_REDUCTION_SUM)
        total /= divisor;   /* 0 / 0 = NaN for an empty mean, as torch */
    return dt_scalar(DT_FLOAT32, total, out);
}

/* The gradient each position (or element) receives from the output:
 * grad_out[i] for "none", otherwise the scalar grad_out / divisor. */
static inline double upstream(const float *g, int64_t i, dt_reduction reduction, double divisor)
{
    if (reduction == DT_REDUCTION_NONE)
        return g[i];
    return reduction == DT_REDUCTION_SUM ? g[0] : g[0] / divisor;
}

/* ------------------------------------------------- classification losses */

typedef struct cls_geom {
    int64_t n, c, d;   /* batch, classes, positions per sample (d1 * d2 ...) */
} cls_geom;

/* The geometry of an input of shape N x C x d1 x ... (ndim >= 2). */
static cls_geom cls_geom_of(int ndim, const int64_t *shape)
{
    cls_geom g = {shape[0], shape[1], 1};
    for (int d = 2; d < ndim; d++)
        g.d *= shape[d];
    return g;
}


/* Checks input (float32, N x C x ...) against target (int64, N x ...),
 * every target value against [0, C) unless it equals ignore_index, and
 * then the reduction (classification losses take no "batchmean"). */
static dt_status check_classification(const dt_tensor *input, const dt_tensor *target,
                                      int64_t ignore_index, dt_reduction reduction, cls_geom *g)
{
    char a[128], b[128];
    if (input->dtype != DT_FLOAT32)
        return dt_fail(DT_ERR_DTYPE, "input must be float32, got %s",
                       dt_dtype_name(input->dtype));
    if (target->dtype != DT_INT64)
        return dt_fail(DT_ERR_DTYPE, "target must be int64 class indices, got %s",
                       dt_dtype_name(target->dtype));
    if (input->ndim < 2)
        return dt_fail(DT_ERR_SHAPE, "input must be N x C (or N x C x d1 ...), got shape %s",
                       dt_shape_str(input->shape, input->ndim, a, sizeof a));
    bool ok = target->ndim == input->ndim - 1 && target->shape[0] == input->shape[0];
    for (int d = 2; ok && d < input->ndim; d++)
        ok = target->shape[d - 1] == input->shape[d];
    if (!ok)
        return dt_fail(DT_ERR_SHAPE, "target of shape %s does not match input of shape %s "
                       "(expected the input's shape without the class dim)",
                       dt_shape_str(target->shape, target->ndim, a, sizeof a),
                       dt_shape_str(input->shape, input->ndim, b, sizeof b));
    *g = cls_geom_of(input->ndim, input->shape);
    int64_t count = dt_numel(target);
    for (int64_t i = 0; i < count; i++) {
        int64_t v = dt_get_flat_i64(target, i);
        if (v != ignore_index && (v < 0 || v >= g->c))
            return dt_fail(DT_ERR_INDEX, "target %lld out of range for %lld classes",
                           (long long)v, (long long)g->c);
    }
    if (reduction == DT_REDUCTION_BATCHMEAN)
        return dt_fail(DT_ERR_ARG, "reduction must be \"mean\", \"sum\" or \"none\"");
    return DT_OK;
}

/* Position p = (sample, spot) sits at sample*C*D + spot in a contiguous
 * input; class k of it is k*D further. */
static inline int64_t position_base(const cls_geom *g, int64_t p)
{
    return (p / g->d) * g->c * g->d + p % g->d;
}

static int64_t count_kept(const int64_t *t, int64_t positions, int64_t ignore_index)
{
    int64_t kept = 0;
    for (int64_t p = 0; p < positions; p++)
        kept += t[p] != ignore_index;
    return kept;
}

/* cross_entropy = log_softmax + nll in one pass, with torch's label
 * smoothing eps:  loss_p = (1 - eps) * (lse - x_t) + eps * (lse - mean_k x_k)
 * (the second term is the mean over classes of -log p_k). Ignored
 * positions give 0 and do not count towards the mean.
 * Saved: input, target (contiguous), per-position logsumexp. */
static dt_status cross_entropy_backward(dt_node *n, const dt_tensor *grad_out, dt_tensor **gi)
{
    DT_PROF_SCOPE(DT_PROF_LOSS);
    if (!n->needs_grad[0])
        return DT_OK;
    ku_backward b;   /* saved: input, target (contiguous), logsumexp */
    dt_status st = ku_backward_begin(n, grad_out, gi, 3, 1, 1, &b);
    if (st == DT_OK) {
        cls_geom g = cls_geom_of(b.saved[0]->ndim, b.saved[0]->shape);
        dt_reduction reduction = (dt_reduction)n->iarg[0];
        int64_t ignore_index = n->iarg[1];
        double divisor = (double)n->iarg[2], eps = n->darg[0];
        const float *xp = dt_f32(b.dense[0]), *gp = dt_f32(b.grad), *lp = dt_f32(b.saved[2]);
        const int64_t *tp = dt_i64(b.saved[1]);
        float *dx = dt_f32(gi[0]);
        int64_t positions = g.n * g.d;
        #pragma omp parallel for schedule(static) if (positions * g.c >= PAR_MIN)
        for (int64_t p = 0; p < positions; p++) {
            int64_t base = position_base(&g, p);
            bool ignored = tp[p] == ignore_index;
            double w = ignored ? 0.0 : upstream(gp, p, reduction, divisor);
            /* d loss_p / d x_k = softmax_k - (1 - eps) [k == t] - eps / C */
            for (int64_t k = 0; k < g.c; k++) {
                int64_t j = base + k * g.d;
                double dk = ignored ? 0.0 : expf(xp[j] - lp[p]) - eps / (double)g.c -
                                           (k == tp[p] ? 1.0 - eps : 0.0);
                dx[j] = (float)(w * dk);
            }
        }
    }
    ku_backward_end(&b);
    return st;
}

dt_status dt_f_cross_entropy(const dt_tensor *logits, const dt_tensor *target,
                             dt_reduction reduction, double label_smoothing, int64_t ignore_index,
                             dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_LOSS);
    *out = NULL;
    cls_geom g;
    dt_status st = check_classification(logits, target, ignore_index, reduction, &g);
    if (st)
        return st;
    if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0))
        return dt_fail(DT_ERR_ARG, "label_smoothing must be in [0, 1], got %g",
                       label_smoothing);
    int64_t positions = g.n * g.d;
    dt_tensor *xc = NULL, *tc = NULL, *lse = NULL, *loss = NULL, *y = NULL;
    st = ku_dense2(logits, target, &xc, &tc);
    if (st == DT_OK)
        st = dt_empty(DT_FLOAT32, 1, &positions, &lse);
    if (st == DT_OK)
        st = dt_empty(DT_FLOAT32, 1, &positions, &loss);
    if (st == DT_OK) {
        const float *xp = dt_f32(xc);
        const int64_t *tp = dt_i64(tc);
        float *lp = dt_f32(lse), *vp = dt_f32(loss);
        double eps = label_smoothing;
        #pragma omp parallel for schedule(static) if (positions * g.c >= PAR_MIN)
        for (int64_t p = 0; p < positions; p++) {
            int64_t base = position_base(&g, p);
            if (tp[p] == ignore_index) {
                lp[p] = 0.0f;
                vp[p] = 0.0f;
                continue;
            }
            float m = -INFINITY;
            for (int64_t k = 0; k < g.c; k++)
                m = fmaxf(m, xp[base + k * g.d]);
            double sum = 0, total = 0;
            for (int64_t k = 0; k < g.c; k++) {
                sum += expf(xp[base + k * g.d] - m);
                total += xp[base + k * g.d];
            }
            double l = m + log(sum);
            lp[p] = (float)l;
            double nll = l - xp[base + tp[p] * g.d];
            double smooth = eps > 0 ? l - total / (double)g.c : 0.0;
            vp[p] = (float)((1.0 - eps) * nll + eps * smooth);
        }
        int64_t kept = count_kept(tp, positions, ignore_index);
        st = reduce_result(vp, positions, reduction, (double)kept, target->ndim, target->shape, &y);
        dt_node *node = NULL;
        if (st == DT_OK)
            st = dt_record("CrossEntropyBackward", cross_entropy_backward, 1,
                           (const dt_tensor *[]){logits}, 3,
                           (const dt_tensor *[]){logits, tc, lse}, y, &node);
        if (node) {
            node->iarg[0] = reduction;
            node->iarg[1] = ignore_index;
            node->iarg[2] = kept;
            node->darg[0] = eps;
        }
    }
    return ku_finish(st, y, out, 4, (dt_tensor *[]){xc, tc, lse, loss});
}

/* nll_loss: loss_p = -input[p, target_p]; ignored positions give 0 and do
 * not count towards the mean. Saved: target (contiguous). */
static dt_status nll_backward(dt_node *n, const dt_tensor *grad_out, dt_tensor **gi)
{
    DT_PROF_SCOPE(DT_PROF_LOSS);
    if (!n->needs_grad[0])
        return DT_OK;
    ku_backward b;   /* saved: target (contiguous) */
    dt_status st = ku_backward_begin(n, grad_out, gi, 1, 0, 0, &b);
    if (st == DT_OK)
        st = dt_zeros(DT_FLOAT32, n->input_ndims[0], n->input_shapes[0], &gi[0]);
    if (st == DT_OK) {
        cls_geom g = cls_geom_of(n->input_ndims[0], n->input_shapes[0]);
        dt_reduction reduction = (dt_reduction)n->iarg[0];
        int64_t ignore_index = n->iarg[1];
        double divisor = (double)n->iarg[2];
        const int64_t *tp = dt_i64(b.saved[0]);
        const float *gp = dt_f32(b.grad);
        float *dx = dt_f32(gi[0]);
        for (int64_t p = 0; p < g.n * g.d; p++)
            if (tp[p] != ignore_index)
                dx[position_base(&g, p) + tp[p] * g.d] =
                    (float)-upstream(gp, p, reduction, divisor);
    }
    ku_backward_end(&b);
    return st;
}

dt_status dt_f_nll_loss(const dt_tensor *logp, const dt_tensor *target, dt_reduction reduction,
                        int64_t ignore_index, dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_LOSS);
    *out = NULL;
    cls_geom g;
    dt_status st = check_classification(logp, target, ignore_index, reduction, &g);
    if (st)
        return st;
    int64_t positions = g.n * g.d;
    dt_tensor *xc = NULL, *tc = NULL, *loss = NULL, *y = NULL;
    st = ku_dense2(logp, target, &xc, &tc);
    if (st == DT_OK)
        st = dt_empty(DT_FLOAT32, 1, &positions, &loss);
    if (st == DT_OK) {
        const float *xp = dt_f32(xc);
        const int64_t *tp = dt_i64(tc);
        float *vp = dt_f32(loss);
        for (int64_t p = 0; p < positions; p++)
            vp[p] = tp[p] == ignore_index ? 0.0f : -xp[position_base(&g, p) + tp[p] * g.d];
        int64_t kept = count_kept(tp, positions, ignore_index);
        st = reduce_result(vp, positions, reduction, (double)kept, target->ndim, target->shape, &y);
        dt_node *node = NULL;
        if (st == DT_OK)
            st = dt_record("NllLossBackward", nll_backward, 1, (const dt_tensor *[]){logp}, 1,
                           (const dt_tensor *[]){tc}, y, &node);
        if (node) {
            node->iarg[0] = reduction;
            node->iarg[1] = ignore_index;
            node->iarg[2] = kept;
        }
    }
    return ku_finish(st, y, out, 3, (dt_tensor *[]){xc, tc, loss});
}

/* ------------------------------------------------------ pointwise losses */

/* a is the input (prediction, or log-probabilities for kl_div), b the
 * target. */
typedef enum pw_kind { PW_MSE, PW_L1, PW_SMOOTH_L1, PW_KL, PW_KL_LOG_TARGET } pw_kind;

static inline double sign_of(double v) { return (v > 0) - (v < 0); }

/* Value of the elementwise loss and its partial derivatives. */
static inline double pw_eval(pw_kind kind, double a, double b, double beta, double *da,
                             double *db)
{
    double d = a - b, value, ga;
    switch (kind) {
    case PW_MSE:
        value = d * d;
        ga = 2 * d;
        break;
    case PW_SMOOTH_L1:
        if (fabs(d) < beta) {   /* beta == 0 leaves plain l1 */
            value = 0.5 * d * d / beta;
            ga = d / beta;
            break;
        }
        value = fabs(d) - 0.5 * beta;
        ga = sign_of(d);
        break;
    case PW_KL:
        /* torch: target * (log target - input), 0 where target == 0 (there
         * the derivative in the target is taken as 0 as well). */
        if (b == 0) {
            *da = 0;
            *db = 0;
            return 0;
        }
        *da = -b;
        *db = log(b) + 1 - a;
        return b * (log(b) - a);
    case PW_KL_LOG_TARGET: {
        /* target given as log-probabilities: exp(b) * (b - a), again 0
         * where the probability exp(b) is 0 (b = -inf would give NaN) */
        double e = exp(b);
        if (e == 0) {
            *da = 0;
            *db = 0;
            return 0;
        }
        *da = -e;
        *db = e * (b - a + 1);
        return e * (b - a);
    }
    default:   /* PW_L1: sign(0) = 0 as torch */
        value = fabs(d);
        ga = sign_of(d);
        break;
    }
    *da = ga;
    *db = -ga;
    return value;
}

/* Saved: input, target. iarg: kind, reduction; darg: beta, divisor. */
static dt_status pointwise_backward(dt_node *n, const dt_tensor *grad_out, dt_tensor **gi)
{
    DT_PROF_SCOPE(DT_PROF_LOSS);
    ku_backward bw;
    dt_status st = ku_backward_begin(n, grad_out, gi, 2, 2, 2, &bw);
    if (st == DT_OK) {
        const dt_tensor *ac = bw.dense[0];
        pw_kind kind = (pw_kind)n->iarg[0];
        dt_reduction reduction = (dt_reduction)n->iarg[1];
        double beta = n->darg[0], divisor = n->darg[1];
        const float *ap = dt_f32(ac), *bp = dt_f32(bw.dense[1]), *gp = dt_f32(bw.grad);
        float *da = gi[0] ? dt_f32(gi[0]) : NULL, *db = gi[1] ? dt_f32(gi[1]) : NULL;
        int64_t count = dt_numel(ac);
        #pragma omp parallel for schedule(static) if (count >= PAR_MIN)
        for (int64_t i = 0; i < count; i++) {
            double w = upstream(gp, i, reduction, divisor), pa, pb;
            pw_eval(kind, ap[i], bp[i], beta, &pa, &pb);
            if (da)
                da[i] = (float)(w * pa);
            if (db)
                db[i] = (float)(w * pb);
        }
    }
    ku_backward_end(&bw);
    return st;
}

static dt_status pointwise_loss(pw_kind kind, const char *node_name, const dt_tensor *a,
                                const dt_tensor *b, dt_reduction reduction, double beta,
                                dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_LOSS);
    *out = NULL;
    char s1[128], s2[128];
    if (a->dtype != DT_FLOAT32 || b->dtype != DT_FLOAT32)
        return dt_fail(DT_ERR_DTYPE, "input and target must be float32, got %s and %s",
                       dt_dtype_name(a->dtype), dt_dtype_name(b->dtype));
    if (!dt_same_shape(a, b))
        return dt_fail(DT_ERR_SHAPE, "input of shape %s and target of shape %s differ",
                       dt_shape_str(a->shape, a->ndim, s1, sizeof s1),
                       dt_shape_str(b->shape, b->ndim, s2, sizeof s2));
    if (reduction == DT_REDUCTION_BATCHMEAN && kind != PW_KL && kind != PW_KL_LOG_TARGET)
        return dt_fail(DT_ERR_ARG, "reduction must be \"mean\", \"sum\" or \"none\"");
    int64_t count = dt_numel(a);
    /* mean divides by every element, batchmean by the batch size only */
    double divisor = (double)count;
    if (reduction == DT_REDUCTION_BATCHMEAN)
        divisor = a->ndim > 0 ? (double)a->shape[0] : 1.0;
    dt_tensor *ac = NULL, *bc = NULL, *loss = NULL, *y = NULL;
    dt_status st = ku_dense2(a, b, &ac, &bc);
    if (st == DT_OK)
        st = dt_empty(DT_FLOAT32, 1, &count, &loss);
    if (st == DT_OK) {
        const float *ap = dt_f32(ac), *bp = dt_f32(bc);
        float *vp = dt_f32(loss);
        #pragma omp parallel for schedule(static) if (count >= PAR_MIN)
        for (int64_t i = 0; i < count; i++) {
            double unused_a, unused_b;
            vp[i] = (float)pw_eval(kind, ap[i], bp[i], beta, &unused_a, &unused_b);
        }
        st = reduce_result(vp, count, reduction, divisor, a->ndim, a->shape, &y);
        dt_node *node = NULL;
        if (st == DT_OK)
            st = ku_record2(node_name, pointwise_backward, a, b, false, y, &node);
        if (node) {
            node->iarg[0] = kind;
            node->iarg[1] = reduction;
            node->darg[0] = beta;
            node->darg[1] = divisor;
        }
    }
    return ku_finish(st, y, out, 3, (dt_tensor *[]){ac, bc, loss});
}

dt_status dt_f_kl_div(const dt_tensor *input, const dt_tensor *target, dt_reduction reduction,
                      bool log_target, dt_tensor **out)
{
    return pointwise_loss(log_target ? PW_KL_LOG_TARGET : PW_KL, "KlDivBackward", input,
                          target, reduction, 0.0, out);
}

dt_status dt_f_mse_loss(const dt_tensor *input, const dt_tensor *target, dt_reduction reduction,
                        dt_tensor **out)
{
    return pointwise_loss(PW_MSE, "MseLossBackward", input, target, reduction, 0.0, out);
}

dt_status dt_f_l1_loss(const dt_tensor *input, const dt_tensor *target, dt_reduction reduction,
                       dt_tensor **out)
{
    return pointwise_loss(PW_L1, "L1LossBackward", input, target, reduction, 0.0, out);
}

dt_status dt_f_smooth_l1_loss(const dt_tensor *input, const dt_tensor *target,
                              dt_reduction reduction, double beta, dt_tensor **out)
{
    if (!(beta >= 0.0))
        return dt_fail(DT_ERR_ARG, "beta must be >= 0, got %g", beta);
    return pointwise_loss(PW_SMOOTH_L1, "SmoothL1LossBackward", input, target,
                          reduction, beta, out);
}
