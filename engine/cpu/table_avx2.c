/* table_avx2.c - the AVX2 + FMA table (cpu.h). */
#define DT_ISA avx2
#define DT_GEMM_MR 6
#define DT_GEMM_NR 16
#define DT_GEMM_NARROW_NR 16
#define DT_GEMM_NARROW dt_cpu_gemm_strided_avx2
#define DT_FMA_LANES 8
#include "table.h"
