/* cpu.h - the engine's CPU-specific kernels: one table per instruction set,
 * the best one the CPU runs picked once at start-up (internal, not part of
 * distill.h).
 *
 * The algorithm files (gemm.c, conv_*.c, winograd.c, batchnorm.c,
 * elementwise.c) hold no ISA-specific code: they call the few primitives
 * whose speed depends on the vector unit through dt_cpu(), the table in
 * use. Each primitive exists for every ISA:
 *
 *   generic   plain C for any CPU; compiled for the baseline of the target
 *             (x86-64: SSE2), written so compilers vectorise it
 *   avx2      x86-64-v3 (AVX2 + FMA), 16 ymm registers
 *   avx512    x86-64-v4 (AVX-512 F/BW/DQ/VL), 32 zmm registers
 *
 * Files: cpu/<concern>_<isa>.c are written for one ISA and compiled with its
 * target flags (CMakeLists.txt sets them by the file name's suffix);
 * cpu/ew_runs.h and cpu/wino_tiles.h are written once, as plain loops and
 * GCC vector extensions, and compiled once per ISA by cpu/table_<isa>.c,
 * which also fills that ISA's table. isa.c detects the CPU and chooses.
 *
 * Reproducibility: every kernel sums in an order fixed by its arguments,
 * never by the ISA. Kernels that multiply-add do so with fused
 * multiply-adds on avx2 and avx512 (bitwise the same results) and with a
 * multiply and an add on generic (results differ by rounding only); the
 * lane loops (batch norm, elementwise) and the Winograd transforms compute
 * the same operations on every ISA. */
#ifndef DISTILL_CPU_H
#define DISTILL_CPU_H

#include "../distill.h"

/* Instruction sets, in order of preference. */
typedef enum dt_isa { DT_ISA_GENERIC, DT_ISA_AVX2, DT_ISA_AVX512, DT_ISA_COUNT } dt_isa;

/* ------------------------------------------------------------------ GEMM
 *
 * One column of tiles of a product, C = alpha * A B + beta * C over
 * rows x cols (cols <= the kernel's tile width, rows any), in tiles of mr
 * rows from the top:
 *
 *   A element (i, k) at a[i * a_row + k * a_k], i < rows, k < kc
 *     (packed A: panels of mr rows, kc * mr floats apart, each k x mr
 *     row-major: the kernel knows that layout; a_row and a_k are unused)
 *   B element (k, j) at b[k * ldb + j],         j < cols
 *   C element (i, j) at c[i * ldc + j]
 *
 * beta == 0: C is only written. A kernel reads no row of A beyond `rows`
 * and no column of B beyond `cols`, and writes only the rows x cols part
 * of C. Each element is summed over k in increasing order. One call per B
 * panel keeps the per-tile work inside the kernel's file. */
typedef struct dt_cpu_tile {
    int64_t kc;
    const float *a;
    int64_t a_row, a_k;
    const float *b;
    int64_t ldb;
    float *c;
    int64_t ldc;
    float alpha, beta;
    int64_t rows, cols;
} dt_cpu_tile;

typedef void (*dt_cpu_tile_fn)(const dt_cpu_tile *t);

typedef struct dt_cpu_gemm {
    int mr, nr;              /* the tile: rows of A per panel, columns of B per panel */
    int narrow_nr;           /* columns of the narrow tile (products 16 columns wide) */
    dt_cpu_tile_fn packed;   /* A from packed panels */
    dt_cpu_tile_fn strided;  /* any a_row, a_k; up to nr columns */
    dt_cpu_tile_fn narrow;   /* any a_row, a_k; up to narrow_nr columns */
} dt_cpu_gemm;

/* ------------------------------------------------------- moving floats */

typedef struct dt_cpu_moves {
    /* A transpose of up to 16 x 16 floats:
     *   d[c * ldd + r] = s[r * lds + c]   for r < rows, c < cols (<= 16 each)
     *   d[c * ldd + r] = 0                for rows <= r < 16, when fill
     * Only the rows x cols block of s is read; with fill, cols whole rows of
     * 16 values are written, without only the rows x cols transpose. */
    void (*transpose16)(const float *s, int64_t lds, float *d, int64_t ldd, int64_t rows,
                        int64_t cols, bool fill);
    /* dst[k] = src[2k] for k < n (src[2n - 1] is not read): a stride-2
     * im2col row. */
    void (*gather_even)(float *dst, const float *src, int64_t n);
    /* dst[2k] += src[k] for k < n: a stride-2 col2im row (dst[2n - 1] is
     * not touched). */
    void (*scatter_add_even)(float *dst, const float *src, int64_t n);
} dt_cpu_moves;

/* ------------------------------------------- Winograd F(4x4, 3x3) tiles
 *
 * Vectors of 16 channels (64 bytes); see winograd.c for the transforms. */
typedef struct dt_cpu_wino {
    /* V = B^T d B for one tile: the 6 x 6 vectors at src (rows ld floats
     * apart, columns 16 apart) -> 36 vectors `stride` floats apart. */
    void (*input_tile)(const float *src, int64_t ld, float *v, int64_t stride);
    /* A g A^T, the weight gradient's transform of dy: 4 x 4 vectors at src
     * (rows ld apart) -> 36 vectors `stride` apart. */
    void (*grad_tile)(const float *src, int64_t ld, float *v, int64_t stride);
    /* Y = A^T m A + bias for one tile: 36 vectors `stride` apart -> the
     * 4 x 4 block, position (i, j) at out + i * out_row + j * 16. bias
     * points at 16 floats. */
    void (*output_tile)(const float *m, int64_t stride, const float *bias, float *out,
                        int64_t out_row);
} dt_cpu_wino;

/* -------------------------------------------------------- batch norm
 *
 * The passes of batchnorm.c over a block of its data: `rows` images of
 * `nc` neighbouring channels, S floats each; channel i's row n starts at
 * base + n * row_stride + i * S (the same offsets in every operand). Rows
 * are visited image by image, channels within. The lane sums give lane j
 * of channel i the elements k of each of its rows with k % lanes == j
 * (DT_BN_LANES float lanes, DT_BN_GLANES double lanes; lanes arrays are
 * nc x lanes), so every ISA adds the same values in the same order. */
#define DT_BN_LANES 64
#define DT_BN_GLANES 32

typedef struct dt_cpu_bn_block {
    int64_t rows, nc, S, row_stride;
} dt_cpu_bn_block;

/* dx = a * (dy - mdy) - b * (x - m) of one channel, in double. */
typedef struct dt_cpu_bn_dx {
    double a, mdy, b, m;
} dt_cpu_bn_dx;

typedef struct dt_cpu_bn {
    /* lanes[i][k % LANES] += x */
    void (*sum)(const dt_cpu_bn_block *b, const float *x, float *lanes);
    /* d = x - m[i] in double: a[i][k % GLANES] += d, q[i][k % GLANES] += d * d */
    void (*centred)(const dt_cpu_bn_block *b, const float *x, const float *m, double *a,
                    double *q);
    /* g[i][k % GLANES] += dy, p[i][k % GLANES] += dy * (x - m[i]), in double */
    void (*grad)(const dt_cpu_bn_block *b, const float *dy, const float *x, const double *m,
                 double *g, double *p);
    /* y = x * scale[i] + shift[i] */
    void (*affine)(const dt_cpu_bn_block *b, const float *x, float *y, const float *scale,
                   const float *shift);
    /* dx from coef[i] */
    void (*dx)(const dt_cpu_bn_block *b, const float *dy, const float *x, float *dx,
               const dt_cpu_bn_dx *coef);
} dt_cpu_bn;

/* --------------------------------------------------------- elementwise
 *
 * A run kernel computes one run of elements: p[j] points at the run's
 * first element of tensor j (tensor 0 is the output), s[j] is its stride
 * in elements, ctx an op's parameters. elementwise.c drives them. */
typedef void (*dt_cpu_run_fn)(int64_t n, char *const *p, const int64_t *s, const void *ctx);

#define DT_NUM_BINOPS (DT_GE + 1)
#define DT_NUM_UNOPS (DT_TANH + 1)

/* The parameters of a clamp run: bounds for float and for integer dtypes. */
typedef struct dt_cpu_clamp_ctx {
    float flo, fhi;
    int64_t llo, lhi;
} dt_cpu_clamp_ctx;

typedef struct dt_cpu_elementwise {
    /* [op][compute dtype]; NULL: the op computes in another dtype */
    const dt_cpu_run_fn (*binary)[DT_NUM_DTYPES];
    const dt_cpu_run_fn (*unary)[DT_NUM_DTYPES];
    const dt_cpu_run_fn *clamp;   /* [dtype], ctx a dt_cpu_clamp_ctx */
    const dt_cpu_run_fn *where;   /* [dtype]: p = {out, uint8 condition, a, b} */
    dt_cpu_run_fn relu_grad;      /* p = {dx, relu output, grad} */
} dt_cpu_elementwise;

/* ------------------------------------------------------------ the table */

typedef struct dt_cpu_kernels {
    const char *name;   /* "generic", "avx2", "avx512" */
    dt_cpu_gemm gemm;
    dt_cpu_moves moves;
    dt_cpu_wino wino;
    dt_cpu_bn bn;
    dt_cpu_elementwise ew;
    /* `iters` rounds of independent fused multiply-adds over a few
     * registers (12 * lanes * 2 flops each), to measure the FMA peak
     * (engine/bench/bench_gemm.c). */
    void (*fma_loop)(int64_t iters, float *sink);
    int fma_lanes;      /* floats per vector register */
} dt_cpu_kernels;

/* The table in use. Until dt_cpu_init has run, the generic one. */
const dt_cpu_kernels *dt_cpu(void);

/* The table of one ISA, or NULL when this build or this CPU lacks it. */
const dt_cpu_kernels *dt_cpu_table(dt_isa isa);

/* The tables compiled into this build (isa.c declares the x86 ones only
 * where they exist). */
extern const dt_cpu_kernels dt_cpu_generic;
extern const dt_cpu_kernels dt_cpu_avx2;
extern const dt_cpu_kernels dt_cpu_avx512;

#endif
