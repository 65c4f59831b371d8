/* table_avx512.c - the AVX-512 table (cpu.h). */
#define DT_ISA avx512
#define DT_GEMM_MR 8
#define DT_GEMM_NR 32
#define DT_GEMM_NARROW_NR 16
#define DT_GEMM_NARROW dt_cpu_gemm_narrow_avx512
#define DT_FMA_LANES 16
#include "cpu.h"
void dt_cpu_gemm_narrow_avx512(const dt_cpu_tile *t);
#include "table.h"
