/* batchnorm.c - differentiable batch normalisation over dim 1.
 *
 * x is (N, C), (N, C, L) or (N, C, H, W): channel c holds N*S values, S the
 * product of the dims after C. Channels are spread over OpenMP threads and
 * their sums are accumulated in double, in a fixed order.
 *
 * Training mode normalises with the batch mean and biased variance and
 * updates the running statistics in place (running_var with the unbiased
 * variance, as PyTorch); eval mode uses the running statistics. The mean and
 * 1/sqrt(var + eps) actually used are copied into the node, so later writes
 * to the running tensors do not disturb backward. */
#include "distill.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct bn_geom {
    int64_t N, C, S;
} bn_geom;

/* Per-channel statistics used by the forward, kept for backward. */
typedef struct bn_ctx {
    double *mean;
    double *invstd;
} bn_ctx;

static void bn_ctx_free(void *p)
{
    bn_ctx *c = p;
    free(c->mean);
    free(c->invstd);
    free(c);
}

static bn_ctx *bn_ctx_new(int64_t C)
{
    bn_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->mean = malloc((size_t)(C > 0 ? C : 1) * sizeof(double));
    c->invstd = malloc((size_t)(C > 0 ? C : 1) * sizeof(double));
    if (!c->mean || !c->invstd) {
        bn_ctx_free(c);
        return NULL;
    }
    return c;
}

/* Element (n, c, s) of a contiguous x is at (n * C + c) * S + s. */
static const float *chan_row(const bn_geom *g, const float *x, int64_t n, int64_t c)
{
    return x + (n * g->C + c) * g->S;
}

static dt_status check_param(const dt_tensor *t, const char *what, int64_t C)
{
    if (!t)
        return DT_OK;
    if (t->dtype != DT_FLOAT32)
        return dt_fail(DT_ERR_DTYPE, "batch_norm: %s must be float32, got %s", what,
                       dt_dtype_name(t->dtype));
    if (t->ndim != 1 || t->shape[0] != C)
        return dt_fail(DT_ERR_SHAPE, "batch_norm: %s must be a 1-d tensor of %lld elements "
                       "(one per channel), got %d-d with %lld elements", what, (long long)C,
                       t->ndim, (long long)dt_numel(t));
    return DT_OK;
}

/* Strided element i of a 1-d float32 tensor. */
static float *elem(const dt_tensor *t, int64_t i) { return dt_f32(t) + i * t->stride[0]; }

static void batch_stats(const bn_geom *g, const float *x, double *mean, double *var)
{
    #pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < g->C; c++) {
        double s = 0.0;
        for (int64_t n = 0; n < g->N; n++) {
            const float *r = chan_row(g, x, n, c);
            for (int64_t k = 0; k < g->S; k++)
                s += r[k];
        }
        double m = s / (double)(g->N * g->S), q = 0.0;
        /* two passes: the centred sum of squares does not cancel */
        for (int64_t n = 0; n < g->N; n++) {
            const float *r = chan_row(g, x, n, c);
            for (int64_t k = 0; k < g->S; k++) {
                double d = r[k] - m;
                q += d * d;
            }
        }
        mean[c] = m;
        var[c] = q / (double)(g->N * g->S);
    }
}

static void normalize(const bn_geom *g, const float *x, const bn_ctx *ctx, const dt_tensor *w,
                      const dt_tensor *b, float *y)
{
    #pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < g->C; c++) {
        /* y = x * scale + shift */
        double wc = w ? *elem(w, c) : 1.0, bc = b ? *elem(b, c) : 0.0;
        float scale = (float)(ctx->invstd[c] * wc);
        float shift = (float)(bc - ctx->mean[c] * ctx->invstd[c] * wc);
        for (int64_t n = 0; n < g->N; n++) {
            const float *r = chan_row(g, x, n, c);
            float *o = y + (r - x);
            for (int64_t k = 0; k < g->S; k++)
                o[k] = r[k] * scale + shift;
        }
    }
}

static dt_status bn_backward_unprof(dt_node *node, const dt_tensor *grad_out, dt_tensor **gi)
{
    dt_tensor *xs, *ws = NULL, *x = NULL, *gy = NULL;
    bool has_w = node->iarg[0], training = node->iarg[1];
    dt_status st = dt_node_saved(node, 0, &xs);
    if (st == DT_OK && has_w)
        st = dt_node_saved(node, 1, &ws);
    if (st)
        return st;
    const bn_ctx *ctx = node->ctx;
    bn_geom g = {xs->shape[0], xs->shape[1], 1};
    for (int d = 2; d < xs->ndim; d++)
        g.S *= xs->shape[d];
    st = dt_contiguous(xs, &x);
    if (st == DT_OK)
        st = dt_contiguous((dt_tensor *)grad_out, &gy);
    bool need_x = node->needs_grad[0];
    bool need_w = node->ninputs > 1 && node->needs_grad[1];
    bool need_b = node->ninputs > 2 && node->needs_grad[2];
    if (st == DT_OK && need_x)
        st = dt_empty(DT_FLOAT32, xs->ndim, xs->shape, &gi[0]);
    if (st == DT_OK && need_w)
        st = dt_empty(DT_FLOAT32, 1, &g.C, &gi[1]);
    if (st == DT_OK && need_b)
        st = dt_empty(DT_FLOAT32, 1, &g.C, &gi[2]);
    if (st == DT_OK) {
        const float *xp = dt_f32(x), *dy = dt_f32(gy);
        float *dx = need_x ? dt_f32(gi[0]) : NULL;
        float *dw = need_w ? dt_f32(gi[1]) : NULL, *db = need_b ? dt_f32(gi[2]) : NULL;
        double count = (double)(g.N * g.S);
        #pragma omp parallel for schedule(static)
        for (int64_t c = 0; c < g.C; c++) {
            double m = ctx->mean[c], is = ctx->invstd[c];
            /* sum(dy) and sum(dy * xhat) over the channel */
            double sdy = 0.0, sdyx = 0.0;
            for (int64_t n = 0; n < g.N; n++) {
                const float *r = chan_row(&g, xp, n, c), *d = dy + (r - xp);
                for (int64_t k = 0; k < g.S; k++) {
                    sdy += d[k];
                    sdyx += d[k] * ((r[k] - m) * is);
                }
            }
            if (dw)
                dw[c] = (float)sdyx;
            if (db)
                db[c] = (float)sdy;
            if (!dx)
                continue;
            double wc = ws ? *elem(ws, c) : 1.0;
            /* eval: dx = dy * w * invstd. training also subtracts the
             * projections through the batch mean and variance:
             * dx = w * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) */
            double a = wc * is;
            double mdy = training ? sdy / count : 0.0, mdyx = training ? sdyx / count : 0.0;
            for (int64_t n = 0; n < g.N; n++) {
                const float *r = chan_row(&g, xp, n, c), *d = dy + (r - xp);
                float *o = dx + (r - xp);
                for (int64_t k = 0; k < g.S; k++) {
                    double xhat = (r[k] - m) * is;
                    o[k] = (float)(a * (d[k] - mdy - xhat * mdyx));
                }
            }
        }
    }
    dt_tensor_release(x);
    dt_tensor_release(gy);
    return st;
}

static dt_status bn_backward(dt_node *node, const dt_tensor *grad_out, dt_tensor **gi)
{
    DT_PROF_BEGIN(t0_);
    dt_status st_ = bn_backward_unprof(node, grad_out, gi);
    DT_PROF_END(DT_PROF_BN, t0_);
    return st_;
}

static dt_status dt_f_batch_norm_unprof(const dt_tensor *x, dt_tensor *running_mean, dt_tensor *running_var,
                          const dt_tensor *weight, const dt_tensor *bias, bool training,
                          double momentum, double eps, dt_tensor **out)
{
    *out = NULL;
    if (x->dtype != DT_FLOAT32)
        return dt_fail(DT_ERR_DTYPE, "batch_norm: input must be float32, got %s",
                       dt_dtype_name(x->dtype));
    if (x->ndim < 2 || x->ndim > 4)
        return dt_fail(DT_ERR_SHAPE, "batch_norm: expected a 2-d (N, C), 3-d (N, C, L) or 4-d "
                       "(N, C, H, W) input, got %d-d", x->ndim);
    bn_geom g = {x->shape[0], x->shape[1], 1};
    for (int d = 2; d < x->ndim; d++)
        g.S *= x->shape[d];
    dt_status st;
    if ((st = check_param(running_mean, "running_mean", g.C)) ||
        (st = check_param(running_var, "running_var", g.C)) ||
        (st = check_param(weight, "weight", g.C)) || (st = check_param(bias, "bias", g.C)))
        return st;
    if (!running_mean != !running_var)
        return dt_fail(DT_ERR_ARG, "batch_norm: running_mean and running_var must be given "
                       "together");
    if (!training && !running_mean)
        return dt_fail(DT_ERR_ARG, "batch_norm: eval mode (training = false) needs "
                       "running_mean and running_var");
    if (training && g.N * g.S <= 1)
        return dt_fail(DT_ERR_SHAPE, "batch_norm: expected more than 1 value per channel when "
                       "training, got %lld", (long long)(g.N * g.S));
    if (!(eps >= 0))
        return dt_fail(DT_ERR_ARG, "batch_norm: eps must be non-negative");

    bn_ctx *ctx = bn_ctx_new(g.C);
    double *var = malloc((size_t)(g.C > 0 ? g.C : 1) * sizeof *var);
    dt_tensor *xc = NULL, *y = NULL;
    st = ctx && var ? DT_OK : dt_fail(DT_ERR_NOMEM, "batch_norm: out of memory");
    if (st == DT_OK)
        st = dt_contiguous((dt_tensor *)x, &xc);
    if (st == DT_OK)
        st = dt_empty(DT_FLOAT32, x->ndim, x->shape, &y);
    if (st == DT_OK) {
        if (training) {
            batch_stats(&g, dt_f32(xc), ctx->mean, var);
        } else {
            for (int64_t c = 0; c < g.C; c++) {
                ctx->mean[c] = *elem(running_mean, c);
                var[c] = *elem(running_var, c);
            }
        }
        for (int64_t c = 0; c < g.C; c++)
            ctx->invstd[c] = 1.0 / sqrt(var[c] + eps);
        normalize(&g, dt_f32(xc), ctx, weight, bias, dt_f32(y));
        if (training && running_mean) {
            /* not recorded: the running statistics are buffers, not graph inputs */
            double n = (double)(g.N * g.S), unbias = n / (n - 1.0);
            for (int64_t c = 0; c < g.C; c++) {
                float *rm = elem(running_mean, c), *rv = elem(running_var, c);
                *rm = (float)((1.0 - momentum) * *rm + momentum * ctx->mean[c]);
                *rv = (float)((1.0 - momentum) * *rv + momentum * var[c] * unbias);
            }
            running_mean->storage->version++;
            running_var->storage->version++;
        }
    }
    free(var);
    dt_tensor_release(xc);
    dt_node *node = NULL;
    if (st == DT_OK) {
        const dt_tensor *inputs[3] = {x, weight, bias};
        const dt_tensor *save[2] = {x, weight};
        st = dt_record("BatchNormBackward", bn_backward, 3, inputs, weight ? 2 : 1, save, y, &node);
    }
    if (st) {
        if (ctx)
            bn_ctx_free(ctx);
        dt_tensor_release(y);
        return st;
    }
    if (node) {
        node->iarg[0] = weight != NULL;
        node->iarg[1] = training;
        node->ctx = ctx;
        node->free_ctx = bn_ctx_free;
    } else {
        bn_ctx_free(ctx);
    }
    *out = y;
    return DT_OK;
}

dt_status dt_f_batch_norm(const dt_tensor *x, dt_tensor *running_mean, dt_tensor *running_var,
                          const dt_tensor *weight, const dt_tensor *bias, bool training,
                          double momentum, double eps, dt_tensor **out)
{
    DT_PROF_BEGIN(t0_);
    dt_status st_ = dt_f_batch_norm_unprof(x, running_mean, running_var, weight, bias, training, momentum, eps, out);
    DT_PROF_END(DT_PROF_BN, t0_);
    return st_;
}
