/* conv.c - differentiable 2-d convolution (NCHW), forward and backward.
 *
 * General path: per image and per group, the input patch matrix ("im2col",
 * K = Cg*kh*kw rows by P = OH*OW columns) is multiplied by the group's
 * weight matrix (Og x K) with the engine's AVX-512 GEMM (gemm.c), the
 * weights packed once per call for all images. DISTILL_CONV_BLAS=1 selects
 * the previous single-threaded OpenBLAS sgemm instead (the baseline of
 * scripts/bench_ops.lua; ours measured 1.3-2.2x faster on every CIFAR ResNet
 * shape, engine/bench/bench_gemm.c). 1x1 stride-1 unpadded kernels
 * use the input planes as the patch matrix directly. Depthwise convolutions
 * (groups == C == O) use a direct loop kernel: a K = kh*kw GEMM per channel
 * would spend more time building patches than multiplying.
 *
 * 3x3 stride-1 convolutions go through Winograd's F(4x4, 3x3) instead
 * (winograd.c) when dt_get_conv_algo says so (use_winograd): forward, input
 * gradient and weight gradient.
 *
 * Threading: images are spread over OpenMP threads, each with its own patch
 * buffer (kept per thread across calls), and each GEMM runs single-threaded
 * inside that region (OpenBLAS is single-threaded throughout, linalg.c). A
 * batch of one image runs each product with its columns split over the
 * threads. The alternative of one
 * large multi-threaded sgemm over a whole-batch patch matrix was measured
 * (scripts/bench_ops.lua, DISTILL_CONV_BIGGEMM=1 selects it for forward) and
 * was slower at ResNet shapes: it needs a batch-sized patch buffer and an
 * extra pass to reorder the (O x N*P) result into NCHW. (The six 3x3
 * convolutions of ResNet8x4 at batch 64, forward, 2-core VM, two
 * interleaved runs: 1094 and 1194 ms batch-parallel, 1804 and 1488 ms
 * big-GEMM.) With OpenBLAS, when the batch is smaller than the thread
 * count, images run serially and dt_sgemm splits each product instead.
 *
 * Backward runs grad_weight (over fixed image chunks) and grad_input (over
 * images) as two passes, so each is timed under its own profile kind.
 * grad_weight is accumulated per fixed chunk of images (chunk boundaries
 * depend only on N), then the chunk partials are added in chunk order, so
 * the result does not depend on the number of threads. */
#include "distill.h"
#include "gemm.h"
#include "winograd.h"
#include "cpu/cpu.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef struct conv_geom {
    int64_t N, C, H, W;        /* input */
    int64_t O, kh, kw;         /* weight: O x Cg x kh x kw */
    int64_t sh, sw, ph, pw, dh, dw, groups;
    int64_t OH, OW;            /* output plane */
    int64_t Cg, Og;            /* channels per group (in, out) */
    int64_t K, P;              /* patch rows (Cg*kh*kw), output positions (OH*OW) */
    bool direct;               /* 1x1, stride 1, no padding: input is the patch matrix */
    bool depthwise;            /* groups == C == O */
} conv_geom;

/* ceil(a / b) for b > 0 and any sign of a. */
static int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The OpenBLAS baseline (DISTILL_CONV_BLAS=1) instead of dt_gemm. Read
 * once; every thread reads the same value. */
static bool use_blas(void)
{
    static int flag = -1;
    if (flag < 0) {
        const char *e = getenv("DISTILL_CONV_BLAS");
        flag = e && e[0] == '1';
    }
    return flag;
}

static void note_failure(dt_status *shared, dt_status st);

/* ------------------------------------------------ algorithm choice */

/* dt_set_conv_algo's choice; until set, DISTILL_CONV_ALGO (auto, gemm or
 * winograd) as read at the first convolution. */
static int conv_algo = -1;

void dt_set_conv_algo(dt_conv_algo algo) { conv_algo = (int)algo; }

dt_conv_algo dt_get_conv_algo(void)
{
    if (conv_algo < 0) {
        const char *e = getenv("DISTILL_CONV_ALGO");
        conv_algo = e && strcmp(e, "gemm") == 0       ? DT_CONV_GEMM
                    : e && strcmp(e, "winograd") == 0 ? DT_CONV_WINOGRAD
                                                      : DT_CONV_AUTO;
    }
    return (dt_conv_algo)conv_algo;
}

/* Whether g's forward, input gradient and weight gradient go through
 * Winograd's F(4x4, 3x3) (winograd.c) rather than im2col + GEMM. */
static bool use_winograd(const conv_geom *g)
{
    if (!dt_winograd_fits(g->kh, g->kw, g->sh, g->sw, g->dh, g->dw, g->groups, g->ph, g->pw,
                          g->H, g->W))
        return false;
    switch (dt_get_conv_algo()) {
    case DT_CONV_GEMM:
        return false;
    case DT_CONV_WINOGRAD:
        return true;
    default:
        return !use_blas() && g->C >= DT_WINOGRAD_MIN_CHANNELS &&
               g->O >= DT_WINOGRAD_MIN_CHANNELS;
    }
}

/* The problem of g's forward, and of its input gradient: the correlation of
 * dy with the kernel rotated and transposed, padded by 2 - p. */
static dt_wino_problem wino_forward(const conv_geom *g)
{
    return (dt_wino_problem){g->N, g->C, g->H, g->W, g->O, g->ph, g->pw};
}

static dt_wino_problem wino_backward_data(const conv_geom *g)
{
    return (dt_wino_problem){g->N, g->O, g->OH, g->OW, g->C, 2 - g->ph, 2 - g->pw};
}

/* dt_gemm of C = op(A) op(B) + beta C, op(A) from `packed` when given. */
static dt_status gemm_one(const float *packed, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                          const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                          float *c, int64_t ldc)
{
    dt_gemm_op op = {.trans_a = ta, .trans_b = tb, .M = m, .N = n, .K = k, .alpha = 1.0f,
                     .A = a, .lda = lda, .packed_a = packed, .B = b, .ldb = ldb, .beta = beta,
                     .C = c, .ldc = ldc};
    return dt_gemm_run(&op);
}

/* The same product with C's columns split over `threads` threads, in
 * blocks of whole B panels. Each C element is still summed in the same
 * order (dt_gemm's order depends on K only), so the result is the same
 * bitwise for any split. */
static dt_status gemm_split(int threads, const float *packed, bool ta, bool tb, int64_t m,
                            int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                            int64_t ldb, float beta, float *c, int64_t ldc)
{
    int64_t chunk = (n + threads - 1) / threads;
    int64_t nr = dt_gemm_nr();
    chunk = (chunk + nr - 1) / nr * nr;
    dt_status failed = DT_OK;
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (int t = 0; t < threads; t++) {
        int64_t j0 = t * chunk, j1 = j0 + chunk < n ? j0 + chunk : n;
        if (j0 < j1)
            note_failure(&failed, gemm_one(packed, ta, tb, m, j1 - j0, k, a, lda,
                                           tb ? b + j0 * ldb : b + j0, ldb, beta, c + j0, ldc));
    }
    return failed ? dt_fail(failed, "conv2d: GEMM failed (out of memory for packing buffers?)")
                  : DT_OK;
}

/* One per-image product C = op(A) op(B) + beta C: with OpenBLAS, or with
 * dt_gemm, op(A) taken from `packed` when given (packed by pack_weights).
 * Called outside a parallel region (a batch too small to spread images
 * over the threads), dt_gemm's columns are split over the threads instead,
 * as OpenBLAS would thread the product itself. */
static dt_status product(const float *packed, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                         const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                         float *c, int64_t ldc)
{
    if (use_blas()) {
        dt_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
        return DT_OK;
    }
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (threads > 1 && n >= 2 * dt_gemm_nr())
        return gemm_split(threads, packed, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
    return gemm_one(packed, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

/* A failure inside a parallel loop: the first one is kept (its message is
 * in the failing thread's buffer, so the caller re-reports it). */
static void note_failure(dt_status *shared, dt_status st)
{
    if (st == DT_OK)
        return;
    #pragma omp critical(conv_failure)
    if (*shared == DT_OK)
        *shared = st;
}

static dt_status loop_failure(dt_status st, const char *what)
{
    return st ? dt_fail(st, "%s: GEMM failed (out of memory for packing buffers?)", what) : DT_OK;
}

static dt_status make_geom(const dt_tensor *x, const dt_tensor *w, const dt_tensor *bias,
                           const int64_t *stride, const int64_t *padding, const int64_t *dilation,
                           int64_t groups, conv_geom *g)
{
    if (x->dtype != DT_FLOAT32 || w->dtype != DT_FLOAT32 || (bias && bias->dtype != DT_FLOAT32))
        return dt_fail(DT_ERR_DTYPE, "conv2d needs float32 tensors");
    if (x->ndim != 4)
        return dt_fail(DT_ERR_SHAPE, "expected a 4-d input (N, C, H, W), got %d-d", x->ndim);
    if (w->ndim != 4)
        return dt_fail(DT_ERR_SHAPE, "expected a 4-d weight (O, C/groups, kh, kw), got %d-d",
                       w->ndim);
    memset(g, 0, sizeof *g);
    g->N = x->shape[0], g->C = x->shape[1], g->H = x->shape[2], g->W = x->shape[3];
    g->O = w->shape[0], g->kh = w->shape[2], g->kw = w->shape[3];
    g->sh = stride[0], g->sw = stride[1], g->ph = padding[0], g->pw = padding[1];
    g->dh = dilation[0], g->dw = dilation[1], g->groups = groups;
    if (g->sh <= 0 || g->sw <= 0)
        return dt_fail(DT_ERR_ARG, "stride must be positive, got (%lld, %lld)",
                       (long long)g->sh, (long long)g->sw);
    if (g->dh <= 0 || g->dw <= 0)
        return dt_fail(DT_ERR_ARG, "dilation must be positive, got (%lld, %lld)",
                       (long long)g->dh, (long long)g->dw);
    if (g->ph < 0 || g->pw < 0)
        return dt_fail(DT_ERR_ARG, "padding must be non-negative, got (%lld, %lld)",
                       (long long)g->ph, (long long)g->pw);
    if (groups <= 0)
        return dt_fail(DT_ERR_ARG, "groups must be positive, got %lld", (long long)groups);
    if (w->shape[1] * groups != g->C)
        return dt_fail(DT_ERR_SHAPE, "input has %lld channels but weight expects %lld "
                       "(groups=%lld)", (long long)g->C, (long long)(w->shape[1] * groups),
                       (long long)groups);
    if (g->C % groups || g->O % groups)
        return dt_fail(DT_ERR_ARG, "input channels (%lld) and output channels (%lld) must both "
                       "be divisible by groups (%lld)", (long long)g->C, (long long)g->O,
                       (long long)groups);
    if (bias && (bias->ndim != 1 || bias->shape[0] != g->O))
        return dt_fail(DT_ERR_SHAPE, "bias must be a 1-d tensor of %lld elements", (long long)g->O);
    if (g->kh <= 0 || g->kw <= 0)
        return dt_fail(DT_ERR_SHAPE, "kernel size must be positive");
    int64_t ekh = g->dh * (g->kh - 1) + 1, ekw = g->dw * (g->kw - 1) + 1;
    if (g->H + 2 * g->ph < ekh || g->W + 2 * g->pw < ekw)
        return dt_fail(DT_ERR_SHAPE, "kernel size (%lld x %lld, dilated) is bigger than the "
                       "padded input (%lld x %lld)", (long long)ekh, (long long)ekw,
                       (long long)(g->H + 2 * g->ph), (long long)(g->W + 2 * g->pw));
    g->OH = (g->H + 2 * g->ph - ekh) / g->sh + 1;
    g->OW = (g->W + 2 * g->pw - ekw) / g->sw + 1;
    g->Cg = g->C / groups;
    g->Og = g->O / groups;
    g->K = g->Cg * g->kh * g->kw;
    g->P = g->OH * g->OW;
    g->direct = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
    g->depthwise = groups == g->C && groups == g->O && groups > 1;
    return DT_OK;
}

/* The output columns ow whose input column iw = ow*sw - pw + j*dw lies in
 * [0, W): [*lo, *hi). */
static void valid_cols(const conv_geom *g, int64_t j, int64_t *lo, int64_t *hi)
{
    int64_t off = j * g->dw - g->pw;
    *lo = clamp64(ceil_div(-off, g->sw), 0, g->OW);
    *hi = clamp64(ceil_div(g->W - off, g->sw), *lo, g->OW);
}

/* Patch matrix of one group of one image: Cg planes (H x W) -> K x P,
 * rows `ld` floats apart (ld = P unless patches of images sit side by side). */
static void im2col_ld(const conv_geom *g, const float *x, float *col, int64_t ld)
{
    const dt_cpu_moves *mv = &dt_cpu()->moves;
    for (int64_t c = 0; c < g->Cg; c++)
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++) {
                float *row = col + ((c * g->kh + i) * g->kw + j) * ld;
                int64_t lo, hi;
                valid_cols(g, j, &lo, &hi);
                for (int64_t oh = 0; oh < g->OH; oh++) {
                    float *dst = row + oh * g->OW;
                    int64_t ih = oh * g->sh - g->ph + i * g->dh;
                    if (ih < 0 || ih >= g->H) {
                        memset(dst, 0, (size_t)g->OW * sizeof *dst);
                        continue;
                    }
                    const float *src = x + (c * g->H + ih) * g->W + j * g->dw - g->pw;
                    for (int64_t ow = 0; ow < lo; ow++)
                        dst[ow] = 0.0f;
                    if (g->sw == 1)
                        memcpy(dst + lo, src + lo, (size_t)(hi - lo) * sizeof *dst);
                    else if (g->sw == 2)
                        mv->gather_even(dst + lo, src + 2 * lo, hi - lo);
                    else
                        for (int64_t ow = lo; ow < hi; ow++)
                            dst[ow] = src[ow * g->sw];
                    for (int64_t ow = hi; ow < g->OW; ow++)
                        dst[ow] = 0.0f;
                }
            }
}

static void im2col(const conv_geom *g, const float *x, float *col) { im2col_ld(g, x, col, g->P); }

/* The adjoint of im2col: dx (Cg planes, already zeroed) += scatter of col. */
static void col2im(const conv_geom *g, const float *col, float *dx)
{
    const dt_cpu_moves *mv = &dt_cpu()->moves;
    for (int64_t c = 0; c < g->Cg; c++)
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++) {
                const float *row = col + ((c * g->kh + i) * g->kw + j) * g->P;
                int64_t lo, hi;
                valid_cols(g, j, &lo, &hi);
                for (int64_t oh = 0; oh < g->OH; oh++) {
                    int64_t ih = oh * g->sh - g->ph + i * g->dh;
                    if (ih < 0 || ih >= g->H)
                        continue;
                    const float *src = row + oh * g->OW;
                    float *dst = dx + (c * g->H + ih) * g->W + j * g->dw - g->pw;
                    if (g->sw == 1)
                        for (int64_t ow = lo; ow < hi; ow++)
                            dst[ow] += src[ow];
                    else if (g->sw == 2)
                        mv->scatter_add_even(dst + 2 * lo, src + lo, hi - lo);
                    else
                        for (int64_t ow = lo; ow < hi; ow++)
                            dst[ow * g->sw] += src[ow];
                }
            }
}

/* ---------------------------------------------------------- threading */

/* Whether a loop over `items` images or chunks runs on the OpenMP threads:
 * each product inside then runs single-threaded. On the OpenBLAS path a
 * batch smaller than the thread count runs serially instead, each
 * dt_sgemm splitting its columns over the threads. */
static bool batch_parallel(int64_t items)
{
    bool enough = use_blas() ? items >= omp_get_max_threads() : true;
    return enough && items > 1;
}

/* This thread's buffer `slot` (0: patches, 1: weight-gradient partials) of
 * at least n floats, kept for the thread's lifetime (OpenMP's threads
 * persist). A fresh malloc per call faulted in and zeroed megabytes of
 * pages every time (13 % of a conv benchmark's profile, with calloc's
 * memset for the partials). NULL (with the reason recorded) when out of
 * memory. */
static float *thread_buffer(int slot, int64_t n)
{
    static _Thread_local float *buf[2];
    static _Thread_local int64_t cap[2];
    if (cap[slot] < n) {
        free(buf[slot]);
        buf[slot] = malloc((size_t)n * sizeof(float));
        cap[slot] = buf[slot] ? n : 0;
        if (!buf[slot])
            dt_fail(DT_ERR_NOMEM, "conv2d: out of memory for a %lld-float scratch buffer",
                    (long long)n);
    }
    return buf[slot];
}

/* Every group's weight matrix packed for dt_gemm once per call, as op(A)
 * of the forward (W_g, Og x K) or of backward-data (W_g^T, K x Og);
 * *packed stays NULL on the OpenBLAS path. Group grp at grp * *per. */
static dt_status pack_weights(const conv_geom *g, const float *w, bool transpose, float **packed,
                              size_t *per)
{
    *packed = NULL;
    *per = transpose ? dt_gemm_packed_a_size(g->K, g->Og) : dt_gemm_packed_a_size(g->Og, g->K);
    if (use_blas() || *per == 0)
        return DT_OK;
    *packed = malloc(*per * (size_t)g->groups * sizeof(float));
    if (!*packed)
        return dt_fail(DT_ERR_NOMEM, "conv2d: out of memory for packed weights");
    for (int64_t grp = 0; grp < g->groups; grp++) {
        const float *wg = w + grp * g->Og * g->K;
        if (transpose)
            dt_gemm_pack_a(true, g->K, g->Og, wg, g->K, *packed + grp * *per);
        else
            dt_gemm_pack_a(false, g->Og, g->K, wg, g->K, *packed + grp * *per);
    }
    return DT_OK;
}

/* -------------------------------------------------------- depthwise */

/* out plane (OH x OW) = bias + sum over taps of w[i][j] * shifted x plane. */
static void depthwise_plane_forward(const conv_geom *g, const float *x, const float *w, float b,
                                    float *out)
{
    for (int64_t p = 0; p < g->P; p++)
        out[p] = b;
    for (int64_t i = 0; i < g->kh; i++)
        for (int64_t j = 0; j < g->kw; j++) {
            float wv = w[i * g->kw + j];
            int64_t lo, hi;
            valid_cols(g, j, &lo, &hi);
            for (int64_t oh = 0; oh < g->OH; oh++) {
                int64_t ih = oh * g->sh - g->ph + i * g->dh;
                if (ih < 0 || ih >= g->H)
                    continue;
                const float *src = x + ih * g->W + j * g->dw - g->pw;
                float *dst = out + oh * g->OW;
                if (g->sw == 1)
                    for (int64_t ow = lo; ow < hi; ow++)
                        dst[ow] += wv * src[ow];
                else
                    for (int64_t ow = lo; ow < hi; ow++)
                        dst[ow] += wv * src[ow * g->sw];
            }
        }
}

/* dx plane += taps scattered back; dw (kh*kw) += correlation of x and dy. */
static void depthwise_plane_backward(const conv_geom *g, const float *x, const float *w,
                                     const float *dy, float *dx, double *dw)
{
    for (int64_t i = 0; i < g->kh; i++)
        for (int64_t j = 0; j < g->kw; j++) {
            float wv = w[i * g->kw + j];
            double acc = 0.0;
            int64_t lo, hi;
            valid_cols(g, j, &lo, &hi);
            for (int64_t oh = 0; oh < g->OH; oh++) {
                int64_t ih = oh * g->sh - g->ph + i * g->dh;
                if (ih < 0 || ih >= g->H)
                    continue;
                int64_t base = ih * g->W + j * g->dw - g->pw;
                const float *gy = dy + oh * g->OW;
                if (dx)
                    for (int64_t ow = lo; ow < hi; ow++)
                        dx[base + ow * g->sw] += wv * gy[ow];
                if (dw) {
                    float row = 0.0f;
                    for (int64_t ow = lo; ow < hi; ow++)
                        row += x[base + ow * g->sw] * gy[ow];
                    acc += row;
                }
            }
            if (dw)
                dw[i * g->kw + j] += acc;
        }
}

static void depthwise_forward(const conv_geom *g, const float *x, const float *w,
                              const float *bias, float *out)
{
    int64_t planes = g->N * g->C, hw = g->H * g->W, kk = g->kh * g->kw;
    #pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < planes; q++) {
        int64_t c = q % g->C;
        depthwise_plane_forward(g, x + q * hw, w + c * kk, bias ? bias[c] : 0.0f, out + q * g->P);
    }
}

/* ---------------------------------------------------------- forward */

/* One image: every group's product, then the bias. */
static dt_status image_forward(const conv_geom *g, const float *x, const float *w,
                               const float *packed, size_t per, const float *bias, float *out,
                               float *col)
{
    for (int64_t grp = 0; grp < g->groups; grp++) {
        const float *xg = x + grp * g->Cg * g->H * g->W;
        const float *patches = xg;
        dt_status st;
        if (!g->direct) {
            im2col(g, xg, col);
            patches = col;
        }
        st = product(packed ? packed + grp * per : NULL, false, false, g->Og, g->P, g->K,
                     w + grp * g->Og * g->K, g->K, patches, g->P, 0.0f, out + grp * g->Og * g->P,
                     g->P);
        if (st)
            return st;
    }
    if (bias)
        for (int64_t o = 0; o < g->O; o++) {
            float *row = out + o * g->P, b = bias[o];
            for (int64_t p = 0; p < g->P; p++)
                row[p] += b;
        }
    return DT_OK;
}

static dt_status batch_forward(const conv_geom *g, const float *x, const float *w,
                               const float *bias, float *out)
{
    if (use_winograd(g)) {
        dt_wino_problem p = wino_forward(g);
        return dt_winograd_forward(&p, x, w, false, bias, out);
    }
    float *packed;
    size_t per;
    dt_status st = pack_weights(g, w, false, &packed, &per);
    if (st)
        return st;
    int64_t KP = g->direct ? 0 : g->K * g->P;
    int64_t in_img = g->C * g->H * g->W, out_img = g->O * g->P;
    dt_status failed = DT_OK;
    bool parallel = batch_parallel(g->N);
    #pragma omp parallel for schedule(static) if (parallel)
    for (int64_t n = 0; n < g->N; n++) {
        float *col = KP ? thread_buffer(0, KP) : NULL;
        if (KP && !col)
            note_failure(&failed, DT_ERR_NOMEM);
        else
            note_failure(&failed, image_forward(g, x + n * in_img, w, packed, per, bias,
                                                out + n * out_img, col));
    }
    free(packed);
    return loop_failure(failed, "conv2d");
}

/* ---------------------------------------------------------- backward */

/* Images are cut into fixed chunks for grad_weight partials. */
#define WGRAD_CHUNKS 8

/* grad_weight of images [n0, n1) into one chunk's partial (O x K), one
 * GEMM per image and group; the first image's product overwrites the
 * partial (beta = 0), so it needs no zeroing. (Stacking several images side by side into
 * one deeper GEMM when P is small was measured: no gain at 8x8 planes,
 * e.g. 256->256 42.0 vs 41.4 ms at batch 64 on one thread, since the
 * partial stays in cache across the chunk anyway.) */
static dt_status chunk_weight(const conv_geom *g, const float *x, const float *dy, int64_t n0,
                              int64_t n1, float *col, float *partial)
{
    int64_t in_img = g->C * g->H * g->W, out_img = g->O * g->P, plane = g->Cg * g->H * g->W;
    for (int64_t n = n0; n < n1; n++) {
        for (int64_t grp = 0; grp < g->groups; grp++) {
            const float *xg = x + n * in_img + grp * plane;
            const float *dyg = dy + n * out_img + grp * g->Og * g->P;
            float *dwg = partial + grp * g->Og * g->K;
            float beta = n == n0 ? 0.0f : 1.0f;
            dt_status st;
            const float *patches = xg;
            if (!g->direct) {
                im2col(g, xg, col);
                patches = col;
            }
            st = product(NULL, false, true, g->Og, g->K, g->P, dyg, g->P, patches, g->P, beta,
                         dwg, g->K);
            if (st)
                return st;
        }
    }
    return DT_OK;
}

/* grad_weight: dW_g (Og x K) = sum over images of dY_g (Og x P) . patches^T,
 * accumulated per fixed chunk of images, chunks added in order. Chunk
 * boundaries depend only on N. */
static dt_status batch_backward_weight(const conv_geom *g, const float *x, const float *dy,
                                       float *dw)
{
    if (use_winograd(g)) {
        dt_wino_problem p = wino_forward(g);
        return dt_winograd_weight_grad(&p, x, dy, dw);
    }
    int64_t nchunks = g->N < WGRAD_CHUNKS ? g->N : WGRAD_CHUNKS;
    int64_t KP = g->direct ? 0 : g->K * g->P;   /* per thread: an im2col buffer */
    int64_t wsize = g->O * g->K;
    if (nchunks == 0) {
        memset(dw, 0, (size_t)wsize * sizeof *dw);
        return DT_OK;
    }
    float *partial = thread_buffer(1, nchunks * wsize);
    if (!partial)
        return DT_ERR_NOMEM;
    dt_status failed = DT_OK;
    bool parallel = batch_parallel(nchunks);
    #pragma omp parallel for schedule(static) if (parallel)
    for (int64_t u = 0; u < nchunks; u++) {
        float *col = KP ? thread_buffer(0, KP) : NULL;
        int64_t n0 = u * g->N / nchunks, n1 = (u + 1) * g->N / nchunks;
        if (KP && !col)
            note_failure(&failed, DT_ERR_NOMEM);
        else
            note_failure(&failed, chunk_weight(g, x, dy, n0, n1, col, partial + u * wsize));
    }
    #pragma omp parallel for schedule(static)
    for (int64_t e = 0; e < wsize; e++) {
        float s = 0.0f;
        for (int64_t c = 0; c < nchunks; c++)
            s += partial[c * wsize + e];
        dw[e] = s;
    }
    return loop_failure(failed, "conv2d backward");
}

/* grad_input, per image: dX_g = col2im(W_g^T . dY_g). */
static dt_status batch_backward_data(const conv_geom *g, const float *w, const float *dy,
                                     float *dx)
{
    if (use_winograd(g)) {
        dt_wino_problem p = wino_backward_data(g);
        return dt_winograd_forward(&p, dy, w, true, NULL, dx);
    }
    int64_t KP = g->direct ? 0 : g->K * g->P;
    float *packed;
    size_t per;
    dt_status st = pack_weights(g, w, true, &packed, &per);
    if (st)
        return st;
    int64_t in_img = g->C * g->H * g->W, out_img = g->O * g->P, plane = g->Cg * g->H * g->W;
    dt_status failed = DT_OK;
    bool parallel = batch_parallel(g->N);
    #pragma omp parallel for schedule(static) if (parallel)
    for (int64_t n = 0; n < g->N; n++) {
        float *dcol = KP ? thread_buffer(0, KP) : NULL;
        if (KP && !dcol) {
            note_failure(&failed, DT_ERR_NOMEM);
            continue;
        }
        const float *dyn = dy + n * out_img;
        for (int64_t grp = 0; grp < g->groups; grp++) {
            const float *dyg = dyn + grp * g->Og * g->P, *wg = w + grp * g->Og * g->K;
            float *dxg = dx + n * in_img + grp * plane;
            const float *pw = packed ? packed + grp * per : NULL;
            /* direct: dX_g (Cg x HW) = W_g^T . dY_g; else via the patch gradient */
            dt_status s = product(pw, true, false, g->K, g->P, g->Og, wg, g->K, dyg, g->P, 0.0f,
                                  g->direct ? dxg : dcol, g->P);
            note_failure(&failed, s);
            if (s == DT_OK && !g->direct) {
                memset(dxg, 0, (size_t)plane * sizeof *dxg);
                col2im(g, dcol, dxg);
            }
        }
    }
    free(packed);
    return loop_failure(failed, "conv2d backward");
}

static dt_status depthwise_backward(const conv_geom *g, const float *x, const float *w,
                                    const float *dy, float *dx, float *dw)
{
    int64_t hw = g->H * g->W, kk = g->kh * g->kw;
    double *acc = dw ? calloc((size_t)(g->C * kk), sizeof *acc) : NULL;
    if (dw && !acc)
        return dt_fail(DT_ERR_NOMEM, "conv2d backward: out of memory");
    /* One channel per iteration; images in order, so dw is deterministic. */
    #pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < g->C; c++) {
        double *a = acc ? acc + c * kk : NULL;
        for (int64_t n = 0; n < g->N; n++) {
            int64_t q = n * g->C + c;
            float *dxq = dx ? dx + q * hw : NULL;
            if (dxq)
                memset(dxq, 0, (size_t)hw * sizeof *dxq);
            depthwise_plane_backward(g, x + q * hw, w + c * kk, dy + q * g->P, dxq, a);
        }
        if (a)
            for (int64_t t = 0; t < kk; t++)
                dw[c * kk + t] = (float)a[t];
    }
    free(acc);
    return DT_OK;
}

static void bias_backward(const conv_geom *g, const float *dy, float *db)
{
    #pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < g->O; o++) {
        double s = 0.0;
        for (int64_t n = 0; n < g->N; n++) {
            const float *row = dy + (n * g->O + o) * g->P;
            float part = 0.0f;
            for (int64_t p = 0; p < g->P; p++)
                part += row[p];
            s += part;
        }
        db[o] = (float)s;
    }
}

static dt_status conv_backward(dt_node *node, const dt_tensor *grad_out, dt_tensor **gi)
{
    dt_tensor *xs, *ws, *x = NULL, *w = NULL, *dy = NULL;
    dt_status st = dt_node_saved(node, 0, &xs);
    if (st == DT_OK)
        st = dt_node_saved(node, 1, &ws);
    if (st)
        return st;
    conv_geom g;
    st = make_geom(xs, ws, NULL, &node->iarg[0], &node->iarg[2], &node->iarg[4], node->iarg[6], &g);
    if (st == DT_OK)
        st = dt_contiguous(xs, &x);
    if (st == DT_OK)
        st = dt_contiguous(ws, &w);
    if (st == DT_OK)
        st = dt_contiguous((dt_tensor *)grad_out, &dy);
    bool need_x = node->needs_grad[0], need_w = node->needs_grad[1];
    bool need_b = node->ninputs > 2 && node->needs_grad[2];
    if (st == DT_OK && need_x)
        st = dt_empty(DT_FLOAT32, 4, xs->shape, &gi[0]);
    if (st == DT_OK && need_w)
        st = dt_empty(DT_FLOAT32, 4, ws->shape, &gi[1]);
    if (st == DT_OK && need_b)
        st = dt_empty(DT_FLOAT32, 1, &g.O, &gi[2]);
    if (st == DT_OK && (need_x || need_w)) {
        float *dx = need_x ? dt_f32(gi[0]) : NULL, *dw = need_w ? dt_f32(gi[1]) : NULL;
        if (g.depthwise) {
            DT_PROF_BEGIN(t0);
            st = depthwise_backward(&g, dt_f32(x), dt_f32(w), dt_f32(dy), dx, dw);
            DT_PROF_END(DT_PROF_CONV_BWD_DATA, t0);
        } else {
            if (dw) {
                DT_PROF_BEGIN(t0);
                st = batch_backward_weight(&g, dt_f32(x), dt_f32(dy), dw);
                DT_PROF_END(DT_PROF_CONV_BWD_WEIGHT, t0);
            }
            if (st == DT_OK && dx) {
                DT_PROF_BEGIN(t0);
                st = batch_backward_data(&g, dt_f32(w), dt_f32(dy), dx);
                DT_PROF_END(DT_PROF_CONV_BWD_DATA, t0);
            }
        }
    }
    if (st == DT_OK && need_b) {
        DT_PROF_BEGIN(t0);
        bias_backward(&g, dt_f32(dy), dt_f32(gi[2]));
        DT_PROF_END(DT_PROF_CONV_BWD_WEIGHT, t0);
    }
    dt_tensor_release(x);
    dt_tensor_release(w);
    dt_tensor_release(dy);
    return st;
}

dt_status dt_f_conv2d(const dt_tensor *x, const dt_tensor *w, const dt_tensor *bias,
                      const int64_t stride[2], const int64_t padding[2],
                      const int64_t dilation[2], int64_t groups, dt_tensor **out)
{
    *out = NULL;
    conv_geom g;
    dt_status st = make_geom(x, w, bias, stride, padding, dilation, groups, &g);
    if (st)
        return st;
    dt_tensor *xc = NULL, *wc = NULL, *bc = NULL, *y = NULL;
    st = dt_contiguous((dt_tensor *)x, &xc);
    if (st == DT_OK)
        st = dt_contiguous((dt_tensor *)w, &wc);
    if (st == DT_OK && bias)
        st = dt_contiguous((dt_tensor *)bias, &bc);
    int64_t shape[4] = {g.N, g.O, g.OH, g.OW};
    if (st == DT_OK)
        st = dt_empty(DT_FLOAT32, 4, shape, &y);
    DT_PROF_BEGIN(t0);
    if (st == DT_OK && g.N > 0 && g.P > 0) {
        const float *bp = bc ? dt_f32(bc) : NULL;
        if (g.depthwise)
            depthwise_forward(&g, dt_f32(xc), dt_f32(wc), bp, dt_f32(y));
        else
            st = batch_forward(&g, dt_f32(xc), dt_f32(wc), bp, dt_f32(y));
    }
    DT_PROF_END(DT_PROF_CONV_FWD, t0);
    dt_tensor_release(xc);
    dt_tensor_release(wc);
    dt_tensor_release(bc);
    dt_node *node = NULL;
    if (st == DT_OK)
        st = dt_record("Conv2dBackward", conv_backward, bias ? 3 : 2,
                       (const dt_tensor *[]){x, w, bias}, 2, (const dt_tensor *[]){x, w}, y, &node);
    if (st) {
        dt_tensor_release(y);
        return st;
    }
    if (node) {
        node->iarg[0] = g.sh, node->iarg[1] = g.sw, node->iarg[2] = g.ph, node->iarg[3] = g.pw;
        node->iarg[4] = g.dh, node->iarg[5] = g.dw, node->iarg[6] = g.groups;
    }
    *out = y;
    return DT_OK;
}

/* ------------------------------------------------- transposed convolution
 *
 * conv_transpose2d is the adjoint of conv2d in its input: with the weight
 * (Cin, Cout/groups, kh, kw) read as a conv2d weight (O = Cin, Cg =
 * Cout/groups), the transposed op's output y (N, Cout, OH, OW) plays the
 * conv2d input and its input x (N, Cin, H, W) the conv2d output. So the
 * forward is conv2d's backward-data, the input gradient is conv2d's forward
 * and the weight gradient is conv2d's backward-weight with x and dy
 * swapped. The geometry is built directly (OH = H given, not derived), so
 * output_padding rows that no window reaches simply stay zero / unused. */

static dt_status make_geom_t(const dt_tensor *x, const dt_tensor *w, const dt_tensor *bias,
                             const int64_t *stride, const int64_t *padding,
                             const int64_t *output_padding, const int64_t *dilation,
                             int64_t groups, conv_geom *g)
{
    if (x->dtype != DT_FLOAT32 || w->dtype != DT_FLOAT32 || (bias && bias->dtype != DT_FLOAT32))
        return dt_fail(DT_ERR_DTYPE, "conv_transpose2d needs float32 tensors");
    if (x->ndim != 4)
        return dt_fail(DT_ERR_SHAPE, "expected a 4-d input (N, C, H, W), got %d-d", x->ndim);
    if (w->ndim != 4)
        return dt_fail(DT_ERR_SHAPE, "expected a 4-d weight (in_channels, out_channels/groups, "
                       "kh, kw), got %d-d", w->ndim);
    if (stride[0] <= 0 || stride[1] <= 0)
        return dt_fail(DT_ERR_ARG, "stride must be positive, got (%lld, %lld)",
                       (long long)stride[0], (long long)stride[1]);
    if (dilation[0] <= 0 || dilation[1] <= 0)
        return dt_fail(DT_ERR_ARG, "dilation must be positive, got (%lld, %lld)",
                       (long long)dilation[0], (long long)dilation[1]);
    if (padding[0] < 0 || padding[1] < 0)
        return dt_fail(DT_ERR_ARG, "padding must be non-negative, got (%lld, %lld)",
                       (long long)padding[0], (long long)padding[1]);
    for (int d = 0; d < 2; d++)
        if (output_padding[d] < 0 ||
            (output_padding[d] >= stride[d] && output_padding[d] >= dilation[d]))
            return dt_fail(DT_ERR_ARG, "output_padding must be non-negative and smaller than "
                           "either stride or dilation, got output_padding (%lld, %lld), stride "
                           "(%lld, %lld), dilation (%lld, %lld)",
                           (long long)output_padding[0], (long long)output_padding[1],
                           (long long)stride[0], (long long)stride[1],
                           (long long)dilation[0], (long long)dilation[1]);
    if (groups <= 0)
        return dt_fail(DT_ERR_ARG, "groups must be positive, got %lld", (long long)groups);
    int64_t cin = x->shape[1];
    if (w->shape[0] != cin)
        return dt_fail(DT_ERR_SHAPE, "input has %lld channels but weight expects %lld",
                       (long long)cin, (long long)w->shape[0]);
    if (cin % groups)
        return dt_fail(DT_ERR_ARG, "input channels (%lld) must be divisible by groups (%lld)",
                       (long long)cin, (long long)groups);
    if (w->shape[2] <= 0 || w->shape[3] <= 0)
        return dt_fail(DT_ERR_SHAPE, "kernel size must be positive");
    int64_t cout = w->shape[1] * groups;
    if (bias && (bias->ndim != 1 || bias->shape[0] != cout))
        return dt_fail(DT_ERR_SHAPE, "bias must be a 1-d tensor of %lld elements",
                       (long long)cout);
    memset(g, 0, sizeof *g);
    g->N = x->shape[0], g->C = cout;
    g->O = cin, g->kh = w->shape[2], g->kw = w->shape[3];
    g->sh = stride[0], g->sw = stride[1], g->ph = padding[0], g->pw = padding[1];
    g->dh = dilation[0], g->dw = dilation[1], g->groups = groups;
    g->OH = x->shape[2], g->OW = x->shape[3];
    g->H = (g->OH - 1) * g->sh - 2 * g->ph + g->dh * (g->kh - 1) + output_padding[0] + 1;
    g->W = (g->OW - 1) * g->sw - 2 * g->pw + g->dw * (g->kw - 1) + output_padding[1] + 1;
    if (g->OH <= 0 || g->OW <= 0 || g->H <= 0 || g->W <= 0)
        return dt_fail(DT_ERR_SHAPE, "input %lld x %lld gives a non-positive output size "
                       "%lld x %lld", (long long)g->OH, (long long)g->OW, (long long)g->H,
                       (long long)g->W);
    g->Cg = g->C / groups;
    g->Og = g->O / groups;
    g->K = g->Cg * g->kh * g->kw;
    g->P = g->OH * g->OW;
    g->direct = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 &&
                g->pw == 0 && g->H == g->OH && g->W == g->OW;
    g->depthwise = false;   /* the general paths handle every grouping */
    return DT_OK;
}

/* Bias gradient of the transposed op: per output channel (C), sums over
 * images and output planes (H x W). */
static void bias_backward_t(const conv_geom *g, const float *dy, float *db)
{
    int64_t hw = g->H * g->W;
    #pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < g->C; c++) {
        double s = 0.0;
        for (int64_t n = 0; n < g->N; n++) {
            const float *row = dy + (n * g->C + c) * hw;
            float part = 0.0f;
            for (int64_t p = 0; p < hw; p++)
                part += row[p];
            s += part;
        }
        db[c] = (float)s;
    }
}

static dt_status conv_transpose_backward(dt_node *node, const dt_tensor *grad_out,
                                         dt_tensor **gi)
{
    dt_tensor *xs, *ws, *x = NULL, *w = NULL, *dy = NULL;
    dt_status st = dt_node_saved(node, 0, &xs);
    if (st == DT_OK)
        st = dt_node_saved(node, 1, &ws);
    if (st)
        return st;
    conv_geom g;
    st = make_geom_t(xs, ws, NULL, &node->iarg[0], &node->iarg[2], &node->iarg[4],
                     &node->iarg[6], node->iarg[8], &g);
    if (st == DT_OK)
        st = dt_contiguous(xs, &x);
    if (st == DT_OK)
        st = dt_contiguous(ws, &w);
    if (st == DT_OK)
        st = dt_contiguous((dt_tensor *)grad_out, &dy);
    bool need_x = node->needs_grad[0], need_w = node->needs_grad[1];
    bool need_b = node->ninputs > 2 && node->needs_grad[2];
    if (st == DT_OK && need_x)
        st = dt_zeros(DT_FLOAT32, 4, xs->shape, &gi[0]);
    if (st == DT_OK && need_w)
        st = dt_zeros(DT_FLOAT32, 4, ws->shape, &gi[1]);
    if (st == DT_OK && need_b)
        st = dt_empty(DT_FLOAT32, 1, &g.C, &gi[2]);
    bool work = g.N > 0 && g.O > 0 && g.C > 0;
    if (st == DT_OK && work && need_w) {
        DT_PROF_BEGIN(t0);
        st = batch_backward_weight(&g, dt_f32(dy), dt_f32(x), dt_f32(gi[1]));
        DT_PROF_END(DT_PROF_CONV_BWD_WEIGHT, t0);
    }
    if (st == DT_OK && work && need_x) {
        DT_PROF_BEGIN(t0);
        st = batch_forward(&g, dt_f32(dy), dt_f32(w), NULL, dt_f32(gi[0]));
        DT_PROF_END(DT_PROF_CONV_BWD_DATA, t0);
    }
    if (st == DT_OK && need_b) {
        DT_PROF_BEGIN(t0);
        bias_backward_t(&g, dt_f32(dy), dt_f32(gi[2]));
        DT_PROF_END(DT_PROF_CONV_BWD_WEIGHT, t0);
    }
    dt_tensor_release(x);
    dt_tensor_release(w);
    dt_tensor_release(dy);
    return st;
}

dt_status dt_f_conv_transpose2d(const dt_tensor *x, const dt_tensor *w, const dt_tensor *bias,
                                const int64_t stride[2], const int64_t padding[2],
                                const int64_t output_padding[2], const int64_t dilation[2],
                                int64_t groups, dt_tensor **out)
{
    *out = NULL;
    conv_geom g;
    dt_status st = make_geom_t(x, w, bias, stride, padding, output_padding, dilation, groups, &g);
    if (st)
        return st;
    dt_tensor *xc = NULL, *wc = NULL, *bc = NULL, *y = NULL;
    st = dt_contiguous((dt_tensor *)x, &xc);
    if (st == DT_OK)
        st = dt_contiguous((dt_tensor *)w, &wc);
    if (st == DT_OK && bias)
        st = dt_contiguous((dt_tensor *)bias, &bc);
    int64_t shape[4] = {g.N, g.C, g.H, g.W};
    if (st == DT_OK)
        st = dt_zeros(DT_FLOAT32, 4, shape, &y);
    DT_PROF_BEGIN(t0);
    if (st == DT_OK && g.N > 0 && g.C > 0) {
        float *yp = dt_f32(y);
        if (g.O > 0)
            st = batch_backward_data(&g, dt_f32(wc), dt_f32(xc), yp);
        if (st == DT_OK && bc) {
            const float *bp = dt_f32(bc);
            int64_t hw = g.H * g.W, planes = g.N * g.C;
            #pragma omp parallel for schedule(static)
            for (int64_t q = 0; q < planes; q++) {
                float *row = yp + q * hw, bv = bp[q % g.C];
                for (int64_t p = 0; p < hw; p++)
                    row[p] += bv;
            }
        }
    }
    DT_PROF_END(DT_PROF_CONV_FWD, t0);
    dt_tensor_release(xc);
    dt_tensor_release(wc);
    dt_tensor_release(bc);
    dt_node *node = NULL;
    if (st == DT_OK)
        st = dt_record("ConvTranspose2dBackward", conv_transpose_backward, bias ? 3 : 2,
                       (const dt_tensor *[]){x, w, bias}, 2, (const dt_tensor *[]){x, w}, y,
                       &node);
    if (st) {
        dt_tensor_release(y);
        return st;
    }
    if (node) {
        node->iarg[0] = g.sh, node->iarg[1] = g.sw, node->iarg[2] = g.ph, node->iarg[3] = g.pw;
        node->iarg[4] = output_padding[0], node->iarg[5] = output_padding[1];
        node->iarg[6] = g.dh, node->iarg[7] = g.dw, node->iarg[8] = g.groups;
    }
    *out = y;
    return DT_OK;
}
