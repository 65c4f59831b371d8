/* table.h - one ISA's kernel table (cpu.h). table_<isa>.c defines
 *
 *   DT_ISA            the ISA's name as a bare word (the symbols' suffix)
 *   DT_GEMM_MR/NR     its GEMM tile, DT_GEMM_NARROW_NR its narrow width,
 *   DT_GEMM_NARROW    the narrow tile kernel,
 *   DT_FMA_LANES      floats per vector register,
 *
 * then includes this file, which compiles the write-once kernels (Winograd
 * tiles, elementwise runs) with that file's target flags and fills the
 * table from them and from the ISA's own files (gemm_<isa>.c,
 * moves_<isa>.c, bn_<isa>.c). */
#include "cpu.h"
#include "ew_runs.h"
#include "wino_tiles.h"

#define DT_JOIN_(a, b) a##_##b
#define DT_JOIN(a, b) DT_JOIN_(a, b)
#define DT_OWN(name) DT_JOIN(name, DT_ISA)
#define DT_STR_(x) #x
#define DT_STR(x) DT_STR_(x)

void DT_OWN(dt_cpu_gemm_packed)(const dt_cpu_tile *t);
void DT_OWN(dt_cpu_gemm_strided)(const dt_cpu_tile *t);
void DT_OWN(dt_cpu_fma_loop)(int64_t iters, float *sink);
void DT_OWN(dt_cpu_transpose16)(const float *s, int64_t lds, float *d, int64_t ldd, int64_t rows,
                                int64_t cols, bool fill);
void DT_OWN(dt_cpu_gather_even)(float *dst, const float *src, int64_t n);
void DT_OWN(dt_cpu_scatter_add_even)(float *dst, const float *src, int64_t n);
void DT_OWN(dt_cpu_bn_sum)(const dt_cpu_bn_block *b, const float *x, float *lanes);
void DT_OWN(dt_cpu_bn_centred)(const dt_cpu_bn_block *b, const float *x, const float *m,
                               double *a, double *q);
void DT_OWN(dt_cpu_bn_grad)(const dt_cpu_bn_block *b, const float *dy, const float *x,
                            const double *m, double *g, double *p);
void DT_OWN(dt_cpu_bn_affine)(const dt_cpu_bn_block *b, const float *x, float *y,
                              const float *scale, const float *shift);
void DT_OWN(dt_cpu_bn_dx)(const dt_cpu_bn_block *b, const float *dy, const float *x, float *dx,
                          const dt_cpu_bn_dx *coef);

const dt_cpu_kernels DT_OWN(dt_cpu) = {
    .name = DT_STR(DT_ISA),
    .gemm = {DT_GEMM_MR, DT_GEMM_NR, DT_GEMM_NARROW_NR, DT_OWN(dt_cpu_gemm_packed),
             DT_OWN(dt_cpu_gemm_strided), DT_GEMM_NARROW},
    .moves = {DT_OWN(dt_cpu_transpose16), DT_OWN(dt_cpu_gather_even),
              DT_OWN(dt_cpu_scatter_add_even)},
    .wino = {wino_input_tile, wino_grad_tile, wino_output_tile},
    .bn = {DT_OWN(dt_cpu_bn_sum), DT_OWN(dt_cpu_bn_centred), DT_OWN(dt_cpu_bn_grad),
           DT_OWN(dt_cpu_bn_affine), DT_OWN(dt_cpu_bn_dx)},
    .ew = {ew_binary, ew_unary, ew_clamp, ew_where, f_relu_grad},
    .fma_loop = DT_OWN(dt_cpu_fma_loop),
    .fma_lanes = DT_FMA_LANES,
};
