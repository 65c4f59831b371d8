/* gemm.c - single-precision GEMM for the convolution kernels (gemm.h).
 *
 * Goto/BLIS layout: for each block of kc rows of op(B) (cache blocking over
 * K, so a B micro-panel stays in L1 and the A block in L2), op(B) is packed
 * into panels of NR columns and op(A) into panels of MR rows; an MR x NR
 * microkernel then runs over every (B panel, A panel) pair, keeping its
 * tile of C in registers for the whole kc loop. Edge tiles are packed with
 * zero padding and only their valid part of C is written back (masked
 * stores). When all of M fits one A block (M <= MC, every conv product
 * here), each B panel is packed just before its tiles run, while it is in
 * L1, instead of packing the whole kc x nc block first.
 *
 * When op(B) is a plain row-major matrix (no transpose) and M is small, a
 * packed B panel would be used only ceil(M / MR) times, so packing costs
 * more than it saves: the microkernel then reads full-width panels straight
 * from B (row stride ldb) and only a ragged last panel is packed.
 *
 * The microkernel is written once as plain loops (any compiler / CPU) and
 * once with AVX-512 intrinsics (under __AVX512F__). Both accumulate each
 * C element over k in increasing order within a kc block, and the blocks in
 * increasing order, so results depend only on the shapes and operands.
 *
 * Packing buffers are per thread (_Thread_local), grown on demand and kept
 * for the thread's lifetime: conv calls this once per image per thread. */
#include "gemm.h"
#include "transpose16.h"

#include <stdlib.h>
#include <string.h>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

/* Rows of the microkernel tile. 8 rows x 32 columns = 16 accumulator
 * registers; 8 divides every channel count of the CIFAR ResNets (16..256)
 * and every K = 9 * C, so the conv products have no ragged row tiles.
 * Measured on one Zen 5 core (in cache, M = N = K = 256): 8 x 32 185 GF/s,
 * 12 x 32 180, 14 x 32 164; and 14 x 32 loses on the 16- and 32-channel
 * products (M = 16, N = 1024, K = 144: 88 vs 116 GF/s), where a second
 * 14-row tile is mostly padding. Compile with -DDT_GEMM_MR=n to compare. */
#ifndef DT_GEMM_MR
#define DT_GEMM_MR 8
#endif
#define MR DT_GEMM_MR
#define NR DT_GEMM_NR
/* Cache blocks: kc x NR B panel (32 KiB) in L1, MC x kc A block in L2,
 * kc x NC B block in L2/L3. */
#define KC DT_GEMM_KC
#define MC ((256 / MR) * MR)
#define NC 1024
/* Read B in place (no packing) while M is at most this many rows... */
#ifndef DT_GEMM_DIRECT_MAX_M
#define DT_GEMM_DIRECT_MAX_M 64
#endif
/* ...but only up to this many when B's rows are a multiple of 4 KiB apart:
 * then a panel's kc rows all fall in the same L1 sets and evict each other
 * (M = 64, N = ldb = 1024, K = 576: 126 GF/s in place, 153 packed; at
 * M = 16 in place still wins, 160 vs 120). */
#define DIRECT_MAX_M_ALIASED 32

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

/* ------------------------------------------------------- packing buffers */

static _Thread_local float *tl_buf[2];
static _Thread_local size_t tl_cap[2];

/* This thread's packing buffer `which` (0: A, 1: B), at least n floats. */
static dt_status scratch(int which, size_t n, float **out)
{
    if (tl_cap[which] < n) {
        size_t bytes = round_up((int64_t)(n * sizeof(float)), 64);
        float *p = aligned_alloc(64, bytes);
        if (!p)
            return dt_fail(DT_ERR_NOMEM, "gemm: out of memory for a %zu-byte packing buffer",
                           bytes);
        free(tl_buf[which]);
        tl_buf[which] = p;
        tl_cap[which] = n;
    }
    *out = tl_buf[which];
    return DT_OK;
}

/* ---------------------------------------------------------------- packing */

/* op(A)[i0 .. i0+mc) x [k0 .. k0+kc) -> ceil(mc / MR) panels of kc x MR
 * (row k of panel p at dst + p*kc*MR + k*MR), rows beyond mc zeroed. */
static void pack_a(bool trans, const float *A, int64_t lda, int64_t i0, int64_t mc, int64_t k0,
                   int64_t kc, float *dst)
{
    for (int64_t p = 0; p < mc; p += MR) {
        float *d = dst + p * kc;
        int64_t rows = min64(MR, mc - p);
        if (trans) {   /* op(A)[i][k] = A[k][i]: each k gives `rows` contiguous values */
            for (int64_t k = 0; k < kc; k++) {
                const float *s = A + (k0 + k) * lda + i0 + p;
                for (int64_t r = 0; r < rows; r++)
                    d[k * MR + r] = s[r];
                for (int64_t r = rows; r < MR; r++)
                    d[k * MR + r] = 0.0f;
            }
        } else {
            for (int64_t r = 0; r < rows; r++) {
                const float *s = A + (i0 + p + r) * lda + k0;
                for (int64_t k = 0; k < kc; k++)
                    d[k * MR + r] = s[k];
            }
            for (int64_t r = rows; r < MR; r++)
                for (int64_t k = 0; k < kc; k++)
                    d[k * MR + r] = 0.0f;
        }
    }
}

/* op(B) given as a matrix. */
typedef struct b_matrix {
    const float *B;
    int64_t ldb;
    bool trans;
} b_matrix;


/* Columns [j, j+cols) of op(B) = B^T over rows [k0, k0+kc) into one
 * panel: d[k*NR + c] = B[(j+c)*ldb + k0 + k]. */
static void pack_bt_panel(const float *B, int64_t ldb, int64_t k0, int64_t kc, int64_t j,
                          int64_t cols, float *d)
{
    int64_t c_done = 0;
#ifdef __AVX512F__
    /* whole 16 x 16 blocks by transposes; the k tail and the columns of a
     * ragged panel beyond the last 16 by the loops below */
    int64_t kb = kc / 16 * 16;
    c_done = cols / 16 * 16;
    for (int64_t c0 = 0; c0 < c_done; c0 += 16)
        for (int64_t k = 0; k < kb; k += 16)
            dt_transpose16(B + (j + c0) * ldb + k0 + k, ldb, d + k * NR + c0, NR, 16, 16, true);
    for (int64_t c = 0; c < c_done; c++)
        for (int64_t k = kb; k < kc; k++)
            d[k * NR + c] = B[(j + c) * ldb + k0 + k];
#endif
    for (int64_t c = c_done; c < cols; c++) {
        const float *s = B + (j + c) * ldb + k0;
        for (int64_t k = 0; k < kc; k++)
            d[k * NR + c] = s[k];
    }
    for (int64_t c = cols; c < NR; c++)
        for (int64_t k = 0; k < kc; k++)
            d[k * NR + c] = 0.0f;
}

/* op(B)[k0 .. k0+kc) x [j0 .. j0+nc) into dst as ceil(nc / NR) panels of
 * kc x NR floats (row k of panel p at dst + p*kc*NR + k*NR), columns
 * beyond nc in the last panel zeroed. */
static void pack_b_matrix(const b_matrix *m, int64_t k0, int64_t kc, int64_t j0, int64_t nc,
                          float *dst)
{
    for (int64_t p = 0; p < nc; p += NR) {
        float *d = dst + p * kc;
        int64_t cols = min64(NR, nc - p);
        if (m->trans) {
            pack_bt_panel(m->B, m->ldb, k0, kc, j0 + p, cols, d);
            continue;
        }
        for (int64_t k = 0; k < kc; k++) {
            const float *s = m->B + (k0 + k) * m->ldb + j0 + p;
            memcpy(d + k * NR, s, (size_t)cols * sizeof(float));
            for (int64_t c = cols; c < NR; c++)
                d[k * NR + c] = 0.0f;
        }
    }
}

/* ------------------------------------------------------------ microkernel */

/* One tile of C: for i < rows, j < cols,
 *   C[i][j] = alpha * sum_{k < kc} a[i*a_row + k*a_k] * b[k*ldb + j] + beta * C[i][j]
 * (beta == 0: C is not read). The kernel always reads mr rows of A (the
 * caller keeps them readable: packed panels are zero-padded); B is read
 * only in its first `cols` columns and only the valid part of C is
 * written. Packed A panels are a_row = 1, a_k = MR; winograd.c passes its
 * own layouts through dt_gemm_strided_run. */
typedef struct tile_out {
    float *c;
    int64_t ldc;
    float alpha, beta;
    int64_t mv, nv;
} tile_out;

/* The reference kernel: plain loops (the build without AVX-512 runs it). */
#ifdef __GNUC__
__attribute__((unused))
#endif
static inline void tile_plain(int mr, int ncols, int64_t kc, const float *a, int64_t a_row,
                              int64_t a_k, const float *b, int64_t ldb, const tile_out *t)
{
    float acc[16][32];
    memset(acc, 0, sizeof acc);
    for (int64_t k = 0; k < kc; k++)
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < ncols && j < t->nv; j++)
                acc[i][j] += a[i * a_row + k * a_k] * b[k * ldb + j];
    for (int64_t i = 0; i < t->mv && i < mr; i++) {
        float *c = t->c + i * t->ldc;
        for (int64_t j = 0; j < t->nv && j < ncols; j++)
            c[j] = t->beta == 0.0f ? t->alpha * acc[i][j]
                                   : t->alpha * acc[i][j] + t->beta * c[j];
    }
}

#ifdef __AVX512F__
/* The same tile with mr x nv accumulator registers (nv vectors of 16
 * columns): each k loads the B row as nv vectors and broadcasts mr values
 * of A. Inlined with constant shapes and strides, so every variant is
 * fully unrolled. */
static inline __attribute__((always_inline)) void
tile_avx512(int mr, int nv, int64_t kc, const float *restrict a, int64_t a_row, int64_t a_k,
            const float *restrict b, int64_t ldb, const tile_out *t)
{
    __m512 acc[16][2];
    __mmask16 mask[2];
#pragma GCC unroll 2
    for (int v = 0; v < nv; v++)
        mask[v] = dt_lanes16(t->nv - 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++)
            acc[i][v] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        __m512 bv[2];
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++)
            bv[v] = _mm512_maskz_loadu_ps(mask[v], b + 16 * v);
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            __m512 ai = _mm512_set1_ps(a[i * a_row]);
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++)
                acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
        }
        a += a_k;
        b += ldb;
    }
    __m512 alpha = _mm512_set1_ps(t->alpha), beta = _mm512_set1_ps(t->beta);
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++) {
        if (i >= t->mv)
            break;
        float *c = t->c + i * t->ldc;
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) {
            __m512 r = _mm512_mul_ps(alpha, acc[i][v]);
            if (t->beta != 0.0f)
                r = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(mask[v], c + 16 * v), r);
            _mm512_mask_storeu_ps(c + 16 * v, mask[v], r);
        }
    }
}
#define TILE(mr, nv, kc, a, a_row, a_k, b, ldb, t) tile_avx512(mr, nv, kc, a, a_row, a_k, b, ldb, t)
#else
#define TILE(mr, nv, kc, a, a_row, a_k, b, ldb, t) tile_plain(mr, 16 * (nv), kc, a, a_row, a_k, b, ldb, t)
#endif

/* The packed-panel microkernel of the driver below: MR x NR. */
static void micro(int64_t kc, const float *a, const float *b, int64_t ldbk, const tile_out *t)
{
    TILE(MR, NR / 16, kc, a, 1, MR, b, ldbk, t);
}

#define WIDE_ROWS MR
#define WIDE_COLS NR
#define NARROW_ROWS 8
#define NARROW_COLS 16

void dt_gemm_strided_run(const dt_gemm_strided *p)
{
    int64_t mr = p->narrow ? NARROW_ROWS : WIDE_ROWS, nr = p->narrow ? NARROW_COLS : WIDE_COLS;
    for (int64_t k0 = 0; k0 < p->K; k0 += KC)
        for (int64_t j = 0; j < p->cols; j += nr)
            for (int64_t i = 0; i < p->rows; i += mr) {
                tile_out t = {p->c + i * p->ldc + j, p->ldc, 1.0f,
                              p->accumulate || k0 > 0 ? 1.0f : 0.0f, min64(mr, p->rows - i),
                              min64(nr, p->cols - j)};
                int64_t kc = min64(KC, p->K - k0);
                const float *a = p->a + i * p->a_row + k0 * p->a_k, *b = p->b + k0 * p->ldb + j;
                if (p->narrow)
                    TILE(NARROW_ROWS, NARROW_COLS / 16, kc, a, p->a_row, p->a_k, b, p->ldb, &t);
                else
                    TILE(WIDE_ROWS, WIDE_COLS / 16, kc, a, p->a_row, p->a_k, b, p->ldb, &t);
            }
}

/* ----------------------------------------------------------------- driver */

/* C (M x N) *= beta, without reading C when beta == 0. */
static void scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc)
{
    if (beta == 1.0f)
        return;
    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f)
            memset(c, 0, (size_t)N * sizeof *c);
        else
            for (int64_t j = 0; j < N; j++)
                c[j] *= beta;
    }
}

/* One B panel (kc x NR, rows ldbk apart, its first `cols` columns valid)
 * against every A panel of an mc x kc block: the tiles of C at C[ir][0]. */
static void panel_tiles(const float *pa, const float *b, int64_t ldbk, int64_t mc, int64_t cols,
                        int64_t kc, float alpha, float beta, float *C, int64_t ldc)
{
    tile_out t = {C, ldc, alpha, beta, 0, cols};
    for (int64_t ir = 0; ir < mc; ir += MR) {
        t.c = C + ir * ldc;
        t.mv = min64(MR, mc - ir);
        micro(kc, pa + ir * kc, b, ldbk, &t);
    }
}

/* Packed op(A) layout: for each kc block pc (in order), round_up(M, MR)
 * x kc floats of MR-row panels; the block at rows ic starts ic * kc in. */
static int64_t packed_a_block(int64_t M, int64_t pc, int64_t ic, int64_t kc)
{
    return pc * round_up(M, MR) + ic * kc;
}

size_t dt_gemm_packed_a_size(int64_t M, int64_t K) { return (size_t)(round_up(M, MR) * K); }

void dt_gemm_pack_a(bool trans_a, int64_t M, int64_t K, const float *A, int64_t lda, float *dst)
{
    for (int64_t pc = 0; pc < K; pc += KC) {
        int64_t kc = min64(KC, K - pc);
        pack_a(trans_a, A, lda, 0, M, pc, kc, dst + packed_a_block(M, pc, 0, kc));
    }
}

static dt_status gemm_blocks(const dt_gemm_op *op, const b_matrix *bm)
{
    int64_t M = op->M, N = op->N, K = op->K;
    /* With one M block, each B panel is packed right before the tiles that
     * use it, while it is in L1; otherwise a whole kc x nc block is packed
     * once for all M blocks. */
    bool per_panel = M <= MC;
    bool aliased = bm->ldb % 1024 == 0;
    bool direct = !bm->trans && M <= (aliased ? DIRECT_MAX_M_ALIASED : DT_GEMM_DIRECT_MAX_M);
    int64_t kc_max = min64(K, KC), nc_max = min64(N, NC);
    float *pa = NULL, *pb = NULL;
    dt_status st = DT_OK;
    if (!op->packed_a)
        st = scratch(0, (size_t)(round_up(min64(M, MC), MR) * kc_max), &pa);
    if (st == DT_OK)
        st = scratch(1, (size_t)(round_up(per_panel ? NR : nc_max, NR) * kc_max), &pb);
    if (st)
        return st;
    for (int64_t jc = 0; jc < N; jc += NC) {
        int64_t nc = min64(NC, N - jc);
        for (int64_t pc = 0; pc < K; pc += KC) {
            int64_t kc = min64(KC, K - pc);
            float beta_k = pc == 0 ? op->beta : 1.0f;
            if (!per_panel)
                pack_b_matrix(bm, pc, kc, jc, nc, pb);
            for (int64_t ic = 0; ic < M; ic += MC) {
                int64_t mc = min64(MC, M - ic);
                const float *a = pa;
                if (op->packed_a)
                    a = op->packed_a + packed_a_block(M, pc, ic, kc);
                else
                    pack_a(op->trans_a, op->A, op->lda, ic, mc, pc, kc, pa);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    int64_t cols = min64(NR, nc - jr), ldbk = NR;
                    const float *b = pb + jr * kc;
                    if (direct && cols == NR) {
                        b = bm->B + pc * bm->ldb + jc + jr;
                        ldbk = bm->ldb;
                    } else if (per_panel) {
                        pack_b_matrix(bm, pc, kc, jc + jr, cols, pb);
                        b = pb;
                    }
                    panel_tiles(a, b, ldbk, mc, cols, kc, op->alpha, beta_k,
                                op->C + ic * op->ldc + jc + jr, op->ldc);
                }
            }
        }
    }
    return DT_OK;
}

static dt_status check_op(const dt_gemm_op *op)
{
    if (op->M < 0 || op->N < 0 || op->K < 0)
        return dt_fail(DT_ERR_ARG, "gemm: negative size (M %lld, N %lld, K %lld)",
                       (long long)op->M, (long long)op->N, (long long)op->K);
    int64_t a_cols = op->trans_a ? op->M : op->K, b_cols = op->trans_b ? op->K : op->N;
    if ((!op->packed_a && op->lda < (a_cols > 1 ? a_cols : 1)) ||
        op->ldb < (b_cols > 1 ? b_cols : 1) || op->ldc < (op->N > 1 ? op->N : 1))
        return dt_fail(DT_ERR_ARG, "gemm: leading dimension too small (lda %lld, ldb %lld, "
                       "ldc %lld)", (long long)op->lda, (long long)op->ldb, (long long)op->ldc);
    if (!op->B)
        return dt_fail(DT_ERR_ARG, "gemm: no B operand");
    return DT_OK;
}

dt_status dt_gemm_run(const dt_gemm_op *op)
{
    dt_status st = check_op(op);
    if (st || op->M == 0 || op->N == 0)
        return st;
    if (op->K == 0 || op->alpha == 0.0f) {
        scale_c(op->M, op->N, op->beta, op->C, op->ldc);
        return DT_OK;
    }
    b_matrix bm = {op->B, op->ldb, op->trans_b};
    return gemm_blocks(op, &bm);
}

dt_status dt_gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                      float *C, int64_t ldc)
{
    dt_gemm_op op = {.trans_a = trans_a, .trans_b = trans_b, .M = M, .N = N, .K = K,
                     .alpha = alpha, .A = A, .lda = lda, .B = B, .ldb = ldb, .beta = beta,
                     .C = C, .ldc = ldc};
    return dt_gemm_run(&op);
}
