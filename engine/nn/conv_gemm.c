/* conv_gemm.c - convolution by im2col + GEMM (conv.h): per image and per
 * group, the input patch matrix (K = Cg*kh*kw rows by P = OH*OW columns) is
 * multiplied by the group's weight matrix (Og x K) with the engine's GEMM
 * (gemm.c), the weights packed once per call for all images; or with
 * single-threaded OpenBLAS under DISTILL_CONV_BLAS=1 (conv_algo.c). 1x1
 * stride-1 unpadded kernels use the input planes as the patch matrix
 * directly.
 *
 * Threading: images are spread over OpenMP threads, each with its own patch
 * buffer (kept per thread across calls), and each GEMM runs single-threaded
 * inside that region (OpenBLAS is single-threaded throughout, linalg.c). A
 * batch of one image runs each product with its columns split over the
 * threads. (One large multi-threaded GEMM over a whole-batch patch matrix
 * was measured slower at ResNet shapes: it needs a batch-sized patch buffer
 * and an extra pass to reorder the O x N*P result into NCHW.) With
 * OpenBLAS, when the batch is smaller than the thread count, images run
 * serially and dt_sgemm splits each product instead.
 *
 * The weight gradient is accumulated per fixed chunk of images (chunk
 * boundaries depend only on N), then the chunk partials are added in chunk
 * order, so the result does not depend on the number of threads. */
#include "conv.h"
#include "math/gemm.h"
#include "cpu/cpu.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static void note_failure(dt_status *shared, dt_status st);

/* ------------------------------------------------------------- products */

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
    if (dt_conv_use_blas()) {
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

/* ------------------------------------------------------------- patches */

/* Patch matrix of one group of one image: Cg planes (H x W) -> K x P,
 * rows `ld` floats apart (ld = P unless patches of images sit side by side). */
static void im2col_ld(const dt_conv_geom *g, const float *x, float *col, int64_t ld)
{
    const dt_cpu_moves *mv = &dt_cpu()->moves;
    for (int64_t c = 0; c < g->Cg; c++)
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++) {
                float *row = col + ((c * g->kh + i) * g->kw + j) * ld;
                int64_t lo, hi;
                dt_conv_valid_cols(g, j, &lo, &hi);
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

static void im2col(const dt_conv_geom *g, const float *x, float *col)
{
    im2col_ld(g, x, col, g->P);
}

/* The adjoint of im2col: dx (Cg planes, already zeroed) += scatter of col. */
static void col2im(const dt_conv_geom *g, const float *col, float *dx)
{
    const dt_cpu_moves *mv = &dt_cpu()->moves;
    for (int64_t c = 0; c < g->Cg; c++)
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++) {
                const float *row = col + ((c * g->kh + i) * g->kw + j) * g->P;
                int64_t lo, hi;
                dt_conv_valid_cols(g, j, &lo, &hi);
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

/* ------------------------------------------------------------ threading */

/* Whether a loop over `items` images or chunks runs on the OpenMP threads:
 * each product inside then runs single-threaded. On the OpenBLAS path a
 * batch smaller than the thread count runs serially instead, each
 * dt_sgemm splitting its columns over the threads. */
static bool batch_parallel(int64_t items)
{
    bool enough = dt_conv_use_blas() ? items >= omp_get_max_threads() : true;
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
static dt_status pack_weights(const dt_conv_geom *g, const float *w, bool transpose, float **packed,
                              size_t *per)
{
    *packed = NULL;
    *per = transpose ? dt_gemm_packed_a_size(g->K, g->Og) : dt_gemm_packed_a_size(g->Og, g->K);
    if (dt_conv_use_blas() || *per == 0)
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

/* -------------------------------------------------------------- forward */

/* One image: every group's product, then the bias. */
static dt_status image_forward(const dt_conv_geom *g, const float *x, const float *w,
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

dt_status dt_conv_gemm_forward(const dt_conv_geom *g, const float *x, const float *w,
                               const float *bias, float *out)
{
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

/* ------------------------------------------------------------- backward */

/* Images are cut into fixed chunks for grad_weight partials. */
#define WGRAD_CHUNKS 8

/* grad_weight of images [n0, n1) into one chunk's partial (O x K), one
 * GEMM per image and group; the first image's product overwrites the
 * partial (beta = 0), so it needs no zeroing. (Stacking several images
 * side by side into one deeper GEMM when P is small gains nothing: the
 * partial stays in cache across the chunk anyway.) */
static dt_status chunk_weight(const dt_conv_geom *g, const float *x, const float *dy, int64_t n0,
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
dt_status dt_conv_gemm_weight_grad(const dt_conv_geom *g, const float *x, const float *dy,
                                   float *dw)
{
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
dt_status dt_conv_gemm_input_grad(const dt_conv_geom *g, const float *w, const float *dy,
                                  float *dx)
{
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
