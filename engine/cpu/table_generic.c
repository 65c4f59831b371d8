/* table_generic.c - the generic table: plain C for any CPU (cpu.h). */
#define DT_ISA generic
#define DT_GEMM_MR 4
#define DT_GEMM_NR 16
#define DT_GEMM_NARROW_NR 16
#define DT_GEMM_NARROW dt_cpu_gemm_strided_generic
#define DT_FMA_LANES 4
#include "table.h"
