/* gemm.c - single-precision GEMM for the convolution kernels (gemm.h).
 *
 * Goto/BLIS layout: for each block of kc rows of op(B) (cache blocking over
 * K, so a B micro-panel stays in L1 and the A block in L2), op(B) is packed
 * into panels of NR columns and op(A) into panels of MR rows; an MR x NR
 * tile kernel then runs over every (B panel, A panel) pair, keeping its
 * tile of C in registers for the whole kc loop. Edge tiles are packed with
 * zero padding and only their valid part of C is computed and written.
 * When all of M fits one A block (M <= MC, every conv product here), each
 * B panel is packed just before its tiles run, while it is in L1, instead
 * of packing the whole kc x nc block first.
 *
 * When op(B) is a plain row-major matrix (no transpose) and M is small, a
 * packed B panel would be used only ceil(M / MR) times, so packing costs
 * more than it saves: the kernel then reads full-width panels straight
 * from B (row stride ldb) and only a ragged last panel is packed.
 *
 * MR, NR and the tile kernels come from the CPU layer's table (cpu.h):
 * 8 x 32 on AVX-512, 6 x 16 on AVX2, 4 x 16 in plain C. Every kernel sums
 * each C element over k in increasing order within a kc block, and the
 * blocks in increasing order, so results depend only on the shapes and
 * operands.
 *
 * Packing buffers are per thread (_Thread_local), grown on demand and kept
 * for the thread's lifetime: conv calls this once per image per thread. */
#include "gemm.h"
#include "cpu/cpu.h"

#include <stdlib.h>
#include <string.h>

/* Cache blocks: kc x NR B panel in L1, MC x kc A block in L2, kc x NC B
 * block in L2/L3. */
#define KC DT_GEMM_KC
#define NC 1024
/* Read B in place (no packing) while M is at most this many rows... */
#define DIRECT_MAX_M 64
/* ...but only up to this many when B's rows are a multiple of 4 KiB apart:
 * then a panel's kc rows all fall in the same L1 sets and evict each other,
 * and packing pays off sooner. */
#define DIRECT_MAX_M_ALIASED 32

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

/* Rows of an A block: a whole number of panels, about 256. */
static int64_t mc_of(int64_t mr) { return 256 / mr * mr; }

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

/* op(A)[i0 .. i0+mc) x [k0 .. k0+kc) -> ceil(mc / mr) panels of kc x mr
 * (row k of panel p at dst + p*kc*mr + k*mr), rows beyond mc zeroed. */
static void pack_a(int64_t mr, bool trans, const float *A, int64_t lda, int64_t i0, int64_t mc,
                   int64_t k0, int64_t kc, float *dst)
{
    for (int64_t p = 0; p < mc; p += mr) {
        float *d = dst + p * kc;
        int64_t rows = min64(mr, mc - p);
        if (trans) {   /* op(A)[i][k] = A[k][i]: each k gives `rows` contiguous values */
            for (int64_t k = 0; k < kc; k++) {
                const float *s = A + (k0 + k) * lda + i0 + p;
                for (int64_t r = 0; r < rows; r++)
                    d[k * mr + r] = s[r];
                for (int64_t r = rows; r < mr; r++)
                    d[k * mr + r] = 0.0f;
            }
        } else {
            for (int64_t r = 0; r < rows; r++) {
                const float *s = A + (i0 + p + r) * lda + k0;
                for (int64_t k = 0; k < kc; k++)
                    d[k * mr + r] = s[k];
            }
            for (int64_t r = rows; r < mr; r++)
                for (int64_t k = 0; k < kc; k++)
                    d[k * mr + r] = 0.0f;
        }
    }
}

/* op(B) given as a matrix. */
typedef struct b_matrix {
    const float *B;
    int64_t ldb;
    bool trans;
} b_matrix;

/* Columns [j, j+cols) of op(B) = B^T over rows [k0, k0+kc) into one panel
 * nr wide: d[k*nr + c] = B[(j+c)*ldb + k0 + k]. Whole 16 x 16 blocks by
 * transposes; the k tail and the columns of a ragged panel beyond the last
 * 16 by plain loops. */
static void pack_bt_panel(int64_t nr, const float *B, int64_t ldb, int64_t k0, int64_t kc,
                          int64_t j, int64_t cols, float *d)
{
    const dt_cpu_moves *mv = &dt_cpu()->moves;
    int64_t kb = kc / 16 * 16, c_done = cols / 16 * 16;
    for (int64_t c0 = 0; c0 < c_done; c0 += 16)
        for (int64_t k = 0; k < kb; k += 16)
            mv->transpose16(B + (j + c0) * ldb + k0 + k, ldb, d + k * nr + c0, nr, 16, 16, true);
    for (int64_t c = 0; c < c_done; c++)
        for (int64_t k = kb; k < kc; k++)
            d[k * nr + c] = B[(j + c) * ldb + k0 + k];
    for (int64_t c = c_done; c < cols; c++) {
        const float *s = B + (j + c) * ldb + k0;
        for (int64_t k = 0; k < kc; k++)
            d[k * nr + c] = s[k];
    }
    for (int64_t c = cols; c < nr; c++)
        for (int64_t k = 0; k < kc; k++)
            d[k * nr + c] = 0.0f;
}

/* op(B)[k0 .. k0+kc) x [j0 .. j0+nc) into dst as ceil(nc / nr) panels of
 * kc x nr floats (row k of panel p at dst + p*kc*nr + k*nr), columns
 * beyond nc in the last panel zeroed. */
static void pack_b_matrix(int64_t nr, const b_matrix *m, int64_t k0, int64_t kc, int64_t j0,
                          int64_t nc, float *dst)
{
    for (int64_t p = 0; p < nc; p += nr) {
        float *d = dst + p * kc;
        int64_t cols = min64(nr, nc - p);
        if (m->trans) {
            pack_bt_panel(nr, m->B, m->ldb, k0, kc, j0 + p, cols, d);
            continue;
        }
        for (int64_t k = 0; k < kc; k++) {
            const float *s = m->B + (k0 + k) * m->ldb + j0 + p;
            memcpy(d + k * nr, s, (size_t)cols * sizeof(float));
            for (int64_t c = cols; c < nr; c++)
                d[k * nr + c] = 0.0f;
        }
    }
}

/* ----------------------------------------------------------- strided form */

int64_t dt_gemm_panel_width(int64_t cols)
{
    const dt_cpu_gemm *k = &dt_cpu()->gemm;
    return cols % k->nr != 0 && cols % k->narrow_nr == 0 ? k->narrow_nr : k->nr;
}

void dt_gemm_strided_run(const dt_gemm_strided *p)
{
    const dt_cpu_gemm *k = &dt_cpu()->gemm;
    int64_t nr = dt_gemm_panel_width(p->cols);
    dt_cpu_tile_fn fn = nr == k->nr ? k->strided : k->narrow;
    for (int64_t k0 = 0; k0 < p->K; k0 += KC)
        for (int64_t j = 0; j < p->cols; j += nr) {
            dt_cpu_tile t = {.kc = min64(KC, p->K - k0), .a = p->a + k0 * p->a_k,
                             .a_row = p->a_row, .a_k = p->a_k,
                             .b = p->b + k0 * p->ldb + j, .ldb = p->ldb,
                             .c = p->c + j, .ldc = p->ldc,
                             .alpha = 1.0f, .beta = p->accumulate || k0 > 0 ? 1.0f : 0.0f,
                             .rows = p->rows, .cols = min64(nr, p->cols - j)};
            fn(&t);
        }
}

/* ----------------------------------------------------------------- driver */

int64_t dt_gemm_nr(void) { return dt_cpu()->gemm.nr; }

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
 * against every A panel of an mc x kc block: the tiles of C at C[0][0]. */
static void panel_tiles(const dt_cpu_gemm *k, const float *pa, const float *b, int64_t ldbk,
                        int64_t mc, int64_t cols, int64_t kc, float alpha, float beta, float *C,
                        int64_t ldc)
{
    dt_cpu_tile t = {.kc = kc, .a = pa, .a_row = 1, .a_k = k->mr, .b = b, .ldb = ldbk, .c = C,
                     .ldc = ldc, .alpha = alpha, .beta = beta, .rows = mc, .cols = cols};
    k->packed(&t);
}

/* Packed op(A) layout: for each kc block pc (in order), round_up(M, mr)
 * x kc floats of mr-row panels; the block at rows ic starts ic * kc in. */
static int64_t packed_a_block(int64_t mr, int64_t M, int64_t pc, int64_t ic, int64_t kc)
{
    return pc * round_up(M, mr) + ic * kc;
}

size_t dt_gemm_packed_a_size(int64_t M, int64_t K)
{
    return (size_t)(round_up(M, dt_cpu()->gemm.mr) * K);
}

void dt_gemm_pack_a(bool trans_a, int64_t M, int64_t K, const float *A, int64_t lda, float *dst)
{
    int64_t mr = dt_cpu()->gemm.mr;
    for (int64_t pc = 0; pc < K; pc += KC) {
        int64_t kc = min64(KC, K - pc);
        pack_a(mr, trans_a, A, lda, 0, M, pc, kc, dst + packed_a_block(mr, M, pc, 0, kc));
    }
}

static dt_status gemm_blocks(const dt_gemm_op *op, const b_matrix *bm)
{
    const dt_cpu_gemm *k = &dt_cpu()->gemm;
    int64_t M = op->M, N = op->N, K = op->K, mr = k->mr, nr = k->nr, MC = mc_of(mr);
    /* With one M block, each B panel is packed right before the tiles that
     * use it, while it is in L1; otherwise a whole kc x nc block is packed
     * once for all M blocks. */
    bool per_panel = M <= MC;
    bool aliased = bm->ldb % 1024 == 0;
    bool direct = !bm->trans && M <= (aliased ? DIRECT_MAX_M_ALIASED : DIRECT_MAX_M);
    int64_t kc_max = min64(K, KC), nc_max = min64(N, NC);
    float *pa = NULL, *pb = NULL;
    dt_status st = DT_OK;
    if (!op->packed_a)
        st = scratch(0, (size_t)(round_up(min64(M, MC), mr) * kc_max), &pa);
    if (st == DT_OK)
        st = scratch(1, (size_t)(round_up(per_panel ? nr : nc_max, nr) * kc_max), &pb);
    if (st)
        return st;
    for (int64_t jc = 0; jc < N; jc += NC) {
        int64_t nc = min64(NC, N - jc);
        for (int64_t pc = 0; pc < K; pc += KC) {
            int64_t kc = min64(KC, K - pc);
            float beta_k = pc == 0 ? op->beta : 1.0f;
            if (!per_panel)
                pack_b_matrix(nr, bm, pc, kc, jc, nc, pb);
            for (int64_t ic = 0; ic < M; ic += MC) {
                int64_t mc = min64(MC, M - ic);
                const float *a = pa;
                if (op->packed_a)
                    a = op->packed_a + packed_a_block(mr, M, pc, ic, kc);
                else
                    pack_a(mr, op->trans_a, op->A, op->lda, ic, mc, pc, kc, pa);
                for (int64_t jr = 0; jr < nc; jr += nr) {
                    int64_t cols = min64(nr, nc - jr), ldbk = nr;
                    const float *b = pb + jr * kc;
                    if (direct && cols == nr) {
                        b = bm->B + pc * bm->ldb + jc + jr;
                        ldbk = bm->ldb;
                    } else if (per_panel) {
                        pack_b_matrix(nr, bm, pc, kc, jc + jr, cols, pb);
                        b = pb;
                    }
                    panel_tiles(k, a, b, ldbk, mc, cols, kc, op->alpha, beta_k,
                                op->C + ic * op->ldc + jc + jr, op->ldc);
                }
            }
        }
    }
    return DT_OK;
}

/* The operands, checked only once there is a product to compute: an empty
 * A or B (M, N or K zero) may come with no buffer and any leading
 * dimension. */
static dt_status check_operands(const dt_gemm_op *op)
{
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
    if (op->M < 0 || op->N < 0 || op->K < 0)
        return dt_fail(DT_ERR_ARG, "gemm: negative size (M %lld, N %lld, K %lld)",
                       (long long)op->M, (long long)op->N, (long long)op->K);
    if (op->M == 0 || op->N == 0)
        return DT_OK;
    if (op->ldc < (op->N > 1 ? op->N : 1))
        return dt_fail(DT_ERR_ARG, "gemm: leading dimension of C too small (ldc %lld for N %lld)",
                       (long long)op->ldc, (long long)op->N);
    if (op->K == 0 || op->alpha == 0.0f) {
        scale_c(op->M, op->N, op->beta, op->C, op->ldc);
        return DT_OK;
    }
    dt_status st = check_operands(op);
    if (st)
        return st;
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
