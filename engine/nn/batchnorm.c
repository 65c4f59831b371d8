/* batchnorm.c - differentiable batch normalisation over dim 1.
 *
 * x is (N, C), (N, C, L) or (N, C, H, W): channel c holds N*S values, S the
 * product of the dims after C. Groups of channels are spread over OpenMP
 * threads; each channel's sums are taken by one thread in an order fixed by
 * the shape, so results do not depend on the thread count.
 *
 * Training mode normalises with the batch mean and biased variance and
 * updates the running statistics in place (running_var with the unbiased
 * variance, as PyTorch); eval mode uses the running statistics. The mean and
 * 1/sqrt(var + eps) actually used are copied into the node, so later writes
 * to the running tensors do not disturb backward.
 *
 * Synchronised (training, sync_ranks, more than one rank: SyncBatchNorm)
 * the statistics are those of the batch over all ranks: the per-channel
 * sums of each pass are summed over the ranks before they are used
 * (forward: the sums, then the centred sums; backward: sum(dy) and
 * sum(dy * xhat)), and the counts are the global ones. The weight and bias
 * gradients stay this rank's own, as for any parameter under data-parallel
 * averaging. */
#include "distill.h"
#include "autograd/op.h"
#include "core/overlap.h"

#include "cpu/cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct bn_geom {
    int64_t N, C, S;
} bn_geom;

/* Per-channel statistics used by the forward, kept for backward, and the
 * number of values behind them (all ranks' when synchronised). */
typedef struct bn_ctx {
    double *mean;
    double *invstd;
    double count;
    bool synced;
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

/* ------------------------------------------------------------ channel sums
 *
 * Channel c of a contiguous (N, C, S) tensor is N rows of S floats, C * S
 * apart. Its sums are taken in vector lanes, lane j receiving the elements
 * at row offsets k with k % LANES == j (GLANES for double lanes), over
 * fixed blocks of rows; each block's lanes are then added in double, lane
 * by lane, block by block. The order depends on the shape only, so the
 * sums are the same for any thread count (and any ISA: the row kernels are
 * the CPU layer's, cpu/bn_lanes.h).
 *
 * The forward first sums x in float lanes (a lane sums at most PER_LANE
 * values, or one row's share if that is more) for a provisional mean mf,
 * then sums d = x - mf and d * d in double lanes: the mean of d corrects
 * mf to the exact mean and the variance has no cancellation. Backward
 * sums are in double lanes too (see GLANES). The double
 * reference in spec/batchnorm_spec.lua checks the accuracy.
 *
 * Work is split into chunks of a few neighbouring channels: their rows of
 * one image are adjacent in memory, so small planes (8x8) are read as
 * long runs rather than 256-byte pieces 16 KiB apart, and a chunk's data
 * (about CHUNK_BYTES) stays in L2 between the passes over it. How channels
 * are grouped changes the memory order only, never a channel's sums. */

#define LANES DT_BN_LANES
#define PER_LANE 64
#define CHUNK_MAX 16
#define CHUNK_BYTES (256 * 1024)

/* Channels [c0, c0 + nc) of a contiguous (N, C, S) tensor. */
typedef struct bn_chunk {
    const bn_geom *g;
    int64_t c0, nc;
} bn_chunk;

static int64_t chunk_channels(const bn_geom *g)
{
    int64_t bytes = g->N * g->S * (int64_t)sizeof(float);
    int64_t per = bytes > 0 ? CHUNK_BYTES / bytes : CHUNK_MAX;
    return per < 1 ? 1 : per > CHUNK_MAX ? CHUNK_MAX : per;
}

static int64_t chunk_count(const bn_geom *g)
{
    int64_t per = chunk_channels(g);
    return (g->C + per - 1) / per;
}

static bn_chunk chunk_at(const bn_geom *g, int64_t q)
{
    int64_t per = chunk_channels(g), c0 = q * per;
    return (bn_chunk){g, c0, g->C - c0 < per ? g->C - c0 : per};
}

/* Offset of row n of the chunk's channel i. */
static int64_t row_at(const bn_chunk *k, int64_t n, int64_t i)
{
    return (n * k->g->C + k->c0 + i) * k->g->S;
}

/* Rows per block: as many as keep each lane at no more than PER_LANE
 * values (a row puts ceil(S / LANES) values in a lane), at least one. */
static int64_t block_rows(const bn_geom *g)
{
    int64_t per_row = (g->S + LANES - 1) / LANES;
    int64_t r = PER_LANE / (per_row > 0 ? per_row : 1);
    return r > 0 ? r : 1;
}

/* Threads pay off only on more than a few thousand elements. */
static bool parallel_worth(const bn_geom *g)
{
    return chunk_count(g) > 1 && g->N * g->C * g->S >= 16384;
}

/* Adds the lanes to *sum in double, in lane order, and clears them. */
static void flush_lanes(float *lanes, double *sum)
{
    double s = 0.0;
    for (int j = 0; j < LANES; j++) {
        s += lanes[j];
        lanes[j] = 0.0f;
    }
    *sum += s;
}

/* Backward's sums are kept in double lanes (GLANES of them, the same
 * lane rule): dx is a small difference of large terms when a channel's
 * values barely vary (two values per channel, or var close to eps), and
 * float products would swamp it. */
#define GLANES DT_BN_GLANES

static void flush_glanes(double *lanes, double *sum)
{
    double s = 0.0;
    for (int j = 0; j < GLANES; j++) {
        s += lanes[j];
        lanes[j] = 0.0;
    }
    *sum += s;
}

/* The block of the chunk's rows [n0, n0 + br) and its offset. */
static dt_cpu_bn_block block_at(const bn_chunk *k, int64_t n0, int64_t br, int64_t *offset)
{
    int64_t rows = k->g->N - n0 < br ? k->g->N - n0 : br;
    *offset = row_at(k, n0, 0);
    return (dt_cpu_bn_block){rows, k->nc, k->g->S, k->g->C * k->g->S};
}

/* sum[i] = sum of the chunk's channel i. */
static void chunk_sum(const bn_chunk *k, const float *x, double *sum)
{
    const dt_cpu_bn *bn = &dt_cpu()->bn;
    float a[CHUNK_MAX][LANES] = {{0}};
    int64_t br = block_rows(k->g), o;
    for (int64_t i = 0; i < k->nc; i++)
        sum[i] = 0.0;
    for (int64_t n0 = 0; n0 < k->g->N; n0 += br) {
        dt_cpu_bn_block b = block_at(k, n0, br, &o);
        bn->sum(&b, x + o, a[0]);
        for (int64_t i = 0; i < k->nc; i++)
            flush_lanes(a[i], &sum[i]);
    }
}

/* With d = x - m[i] over the chunk's channel i: sd[i] = sum d, sdd[i] = sum d * d. */
static void chunk_centred(const bn_chunk *k, const float *x, const float *m, double *sd,
                          double *sdd)
{
    const dt_cpu_bn *bn = &dt_cpu()->bn;
    double a[CHUNK_MAX][GLANES] = {{0}}, q[CHUNK_MAX][GLANES] = {{0}};
    int64_t br = block_rows(k->g), o;
    for (int64_t i = 0; i < k->nc; i++)
        sd[i] = sdd[i] = 0.0;
    for (int64_t n0 = 0; n0 < k->g->N; n0 += br) {
        dt_cpu_bn_block b = block_at(k, n0, br, &o);
        bn->centred(&b, x + o, m, a[0], q[0]);
        for (int64_t i = 0; i < k->nc; i++) {
            flush_glanes(a[i], &sd[i]);
            flush_glanes(q[i], &sdd[i]);
        }
    }
}

/* sdy[i] = sum dy, sdyx[i] = sum dy * (x - m[i]) over the chunk's channel i. */
static void chunk_grad_sums(const bn_chunk *k, const float *dy, const float *x, const double *m,
                            double *sdy, double *sdyx)
{
    const dt_cpu_bn *bn = &dt_cpu()->bn;
    double g[CHUNK_MAX][GLANES] = {{0}}, p[CHUNK_MAX][GLANES] = {{0}};
    int64_t br = block_rows(k->g), o;
    for (int64_t i = 0; i < k->nc; i++)
        sdy[i] = sdyx[i] = 0.0;
    for (int64_t n0 = 0; n0 < k->g->N; n0 += br) {
        dt_cpu_bn_block b = block_at(k, n0, br, &o);
        bn->grad(&b, dy + o, x + o, m, g[0], p[0]);
        for (int64_t i = 0; i < k->nc; i++) {
            flush_glanes(g[i], &sdy[i]);
            flush_glanes(p[i], &sdyx[i]);
        }
    }
}

/* Mean and biased variance of the chunk's channels: the mean first, then
 * the centred sums around its float rounding mf; the mean of x - mf
 * corrects for mf != mean, so the variance does not suffer from
 * cancellation. */
static void chunk_stats(const bn_chunk *k, const float *x, double *mean, double *var)
{
    double count = (double)(k->g->N * k->g->S), sum[CHUNK_MAX], sd[CHUNK_MAX], sdd[CHUNK_MAX];
    float mf[CHUNK_MAX] = {0};
    chunk_sum(k, x, sum);
    for (int64_t i = 0; i < k->nc; i++)
        mf[i] = (float)(sum[i] / count);
    chunk_centred(k, x, mf, sd, sdd);
    for (int64_t i = 0; i < k->nc; i++) {
        double md = sd[i] / count, v = sdd[i] / count - md * md;
        mean[i] = mf[i] + md;
        var[i] = v < 0.0 ? 0.0 : v;   /* rounding can go below 0; NaN stays NaN */
    }
}

/* y = x * scale[i] + shift[i] over the chunk's channel i. */
static void chunk_affine(const bn_chunk *k, const float *x, float *y, const float *scale,
                         const float *shift)
{
    int64_t o;
    dt_cpu_bn_block b = block_at(k, 0, k->g->N, &o);
    dt_cpu()->bn.affine(&b, x + o, y + o, scale, shift);
}

/* dx over the chunk's channel i from coef[i], evaluated in double for the
 * reason given at GLANES. */
static void chunk_dx(const bn_chunk *k, const float *dy, const float *x, float *dx,
                     const dt_cpu_bn_dx *coef)
{
    int64_t o;
    dt_cpu_bn_block b = block_at(k, 0, k->g->N, &o);
    dt_cpu()->bn.dx(&b, dy + o, x + o, dx + o, coef);
}

/* ----------------------------------------------------------------- forward */

/* Per chunk of channels: the statistics (batch or running), then
 * y = x * scale + shift, in one parallel loop so the chunk is still in
 * cache for the last pass. */
static void bn_forward_kernel(const bn_geom *g, const float *x, bool training,
                              const dt_tensor *rm, const dt_tensor *rv, double eps,
                              const dt_tensor *w, const dt_tensor *b, bn_ctx *ctx, double *var,
                              float *y)
{
    int64_t chunks = chunk_count(g);
    #pragma omp parallel for schedule(static) if (parallel_worth(g))
    for (int64_t q = 0; q < chunks; q++) {
        bn_chunk k = chunk_at(g, q);
        float scale[CHUNK_MAX], shift[CHUNK_MAX];
        if (training)
            chunk_stats(&k, x, ctx->mean + k.c0, var + k.c0);
        for (int64_t i = 0; i < k.nc; i++) {
            int64_t c = k.c0 + i;
            if (!training) {
                ctx->mean[c] = *elem(rm, c);
                var[c] = *elem(rv, c);
            }
            ctx->invstd[c] = 1.0 / sqrt(var[c] + eps);
            double wc = w ? *elem(w, c) : 1.0, bc = b ? *elem(b, c) : 0.0;
            scale[i] = (float)(ctx->invstd[c] * wc);
            shift[i] = (float)(bc - ctx->mean[c] * ctx->invstd[c] * wc);
        }
        chunk_affine(&k, x, y, scale, shift);
    }
}

/* The synchronised forward: each pass's per-channel sums over all chunks,
 * summed over the ranks, then the normalisation. */
static dt_status bn_forward_synced(const bn_geom *g, const float *x, double eps,
                                   const dt_tensor *w, const dt_tensor *b, bn_ctx *ctx,
                                   double *var, float *y)
{
    int64_t C = g->C, chunks = chunk_count(g);
    double *sums = calloc((size_t)(3 * C + 1), sizeof *sums);
    float *mf = malloc((size_t)(C > 0 ? C : 1) * sizeof *mf);
    if (!sums || !mf) {
        free(sums);
        free(mf);
        return dt_fail(DT_ERR_NOMEM, "batch_norm: out of memory");
    }
    double *sd = sums + C + 1, *sdd = sd + C;
    #pragma omp parallel for schedule(static) if (parallel_worth(g))
    for (int64_t q = 0; q < chunks; q++) {
        bn_chunk k = chunk_at(g, q);
        chunk_sum(&k, x, sums + k.c0);
    }
    sums[C] = (double)(g->N * g->S);
    dt_status st = dt_dist_sum_doubles(sums, C + 1);
    double count = sums[C];
    for (int64_t c = 0; st == DT_OK && c < C; c++)
        mf[c] = (float)(sums[c] / count);
    if (st == DT_OK) {
        #pragma omp parallel for schedule(static) if (parallel_worth(g))
        for (int64_t q = 0; q < chunks; q++) {
            bn_chunk k = chunk_at(g, q);
            chunk_centred(&k, x, mf + k.c0, sd + k.c0, sdd + k.c0);
        }
        st = dt_dist_sum_doubles(sd, 2 * C);
    }
    for (int64_t c = 0; st == DT_OK && c < C; c++) {
        double md = sd[c] / count, v = sdd[c] / count - md * md;
        ctx->mean[c] = mf[c] + md;
        var[c] = v < 0.0 ? 0.0 : v;
        ctx->invstd[c] = 1.0 / sqrt(var[c] + eps);
    }
    ctx->count = count;
    ctx->synced = true;
    if (st == DT_OK) {
        #pragma omp parallel for schedule(static) if (parallel_worth(g))
        for (int64_t q = 0; q < chunks; q++) {
            bn_chunk k = chunk_at(g, q);
            float scale[CHUNK_MAX], shift[CHUNK_MAX];
            for (int64_t i = 0; i < k.nc; i++) {
                int64_t c = k.c0 + i;
                double wc = w ? *elem(w, c) : 1.0, bc = b ? *elem(b, c) : 0.0;
                scale[i] = (float)(ctx->invstd[c] * wc);
                shift[i] = (float)(bc - ctx->mean[c] * ctx->invstd[c] * wc);
            }
            chunk_affine(&k, x, y, scale, shift);
        }
    }
    free(sums);
    free(mf);
    return st;
}

/* ---------------------------------------------------------------- backward */

/* Per channel, one pass for sum(dy) and sum(dy * xhat), one for dx:
 *   eval:     dx = w * invstd * dy
 *   training: dx = w * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))
 * (training also subtracts the projections through the batch mean and
 * variance). */
static void bn_backward_kernel(const bn_geom *g, const float *x, const float *dy,
                               const bn_ctx *ctx, const dt_tensor *w, bool training, float *dx,
                               float *dw, float *db)
{
    double count = ctx->count;
    int64_t chunks = chunk_count(g);
    #pragma omp parallel for schedule(static) if (parallel_worth(g))
    for (int64_t q = 0; q < chunks; q++) {
        bn_chunk k = chunk_at(g, q);
        double sdy[CHUNK_MAX], sdyc[CHUNK_MAX];
        dt_cpu_bn_dx coef[CHUNK_MAX];
        chunk_grad_sums(&k, dy, x, ctx->mean + k.c0, sdy, sdyc);
        for (int64_t i = 0; i < k.nc; i++) {
            int64_t c = k.c0 + i;
            double is = ctx->invstd[c], sdyx = sdyc[i] * is;   /* sum(dy * xhat) */
            if (dw)
                dw[c] = (float)sdyx;
            if (db)
                db[c] = (float)sdy[i];
            double a = (w ? *elem(w, c) : 1.0) * is;
            double mdy = training ? sdy[i] / count : 0.0, mdyx = training ? sdyx / count : 0.0;
            coef[i] = (dt_cpu_bn_dx){a, mdy, a * is * mdyx, ctx->mean[c]};
        }
        if (dx)
            chunk_dx(&k, dy, x, dx, coef);
    }
}

/* The synchronised backward: this rank's sums give dw and db; the sums
 * over the ranks give dx. */
static dt_status bn_backward_synced(const bn_geom *g, const float *x, const float *dy,
                                    const bn_ctx *ctx, const dt_tensor *w, float *dx, float *dw,
                                    float *db)
{
    int64_t C = g->C, chunks = chunk_count(g);
    double *sums = calloc((size_t)(2 * C + 1), sizeof *sums);
    if (!sums)
        return dt_fail(DT_ERR_NOMEM, "batch_norm backward: out of memory");
    double *sdy = sums, *sdyc = sums + C;
    #pragma omp parallel for schedule(static) if (parallel_worth(g))
    for (int64_t q = 0; q < chunks; q++) {
        bn_chunk k = chunk_at(g, q);
        chunk_grad_sums(&k, dy, x, ctx->mean + k.c0, sdy + k.c0, sdyc + k.c0);
    }
    for (int64_t c = 0; c < C; c++) {
        if (dw)
            dw[c] = (float)(sdyc[c] * ctx->invstd[c]);
        if (db)
            db[c] = (float)sdy[c];
    }
    dt_status st = dt_dist_sum_doubles(sums, 2 * C);
    if (st == DT_OK && dx) {
        #pragma omp parallel for schedule(static) if (parallel_worth(g))
        for (int64_t q = 0; q < chunks; q++) {
            bn_chunk k = chunk_at(g, q);
            dt_cpu_bn_dx coef[CHUNK_MAX];
            for (int64_t i = 0; i < k.nc; i++) {
                int64_t c = k.c0 + i;
                double is = ctx->invstd[c], a = (w ? *elem(w, c) : 1.0) * is;
                double mdy = sdy[c] / ctx->count, mdyx = sdyc[c] * is / ctx->count;
                coef[i] = (dt_cpu_bn_dx){a, mdy, a * is * mdyx, ctx->mean[c]};
            }
            chunk_dx(&k, dy, x, dx, coef);
        }
    }
    free(sums);
    return st;
}

static dt_status bn_backward(dt_node *node, const dt_tensor *grad_out, dt_tensor **gi)
{
    DT_PROF_SCOPE(DT_PROF_BN);
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
        float *dx = need_x ? dt_f32(gi[0]) : NULL;
        float *dw = need_w ? dt_f32(gi[1]) : NULL, *db = need_b ? dt_f32(gi[2]) : NULL;
        if (ctx->synced)
            st = bn_backward_synced(&g, dt_f32(x), dt_f32(gy), ctx, ws, dx, dw, db);
        else
            bn_backward_kernel(&g, dt_f32(x), dt_f32(gy), ctx, ws, training, dx, dw, db);
    }
    dt_tensor_release(x);
    dt_tensor_release(gy);
    return st;
}

dt_status dt_f_batch_norm(const dt_tensor *x, dt_tensor *running_mean, dt_tensor *running_var,
                          const dt_tensor *weight, const dt_tensor *bias, bool training,
                          bool sync_ranks, double momentum, double eps, dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_BN);
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
    if (training && running_mean &&
        ((st = dt_check_writable(running_mean)) || (st = dt_check_writable(running_var))))
        return st;
    if (training && running_mean && dt_share_memory(running_mean, running_var))
        return dt_fail(DT_ERR_ARG, "batch_norm: running_mean and running_var share memory; "
                       "the update needs separate tensors");
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
        ctx->count = (double)(g.N * g.S);
        if (training && sync_ranks && dt_dist_size() > 1)
            st = bn_forward_synced(&g, dt_f32(xc), eps, weight, bias, ctx, var, dt_f32(y));
        else
            bn_forward_kernel(&g, dt_f32(xc), training, running_mean, running_var, eps, weight,
                              bias, ctx, var, dt_f32(y));
    }
    if (st == DT_OK) {
        if (training && running_mean) {
            /* not recorded: the running statistics are buffers, not graph inputs */
            double n = ctx->count, unbias = n / (n - 1.0);
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
