/* init.c - what the engine sets up once per process (dt_engine_init). */
#include "distill.h"

#include <cblas.h>

dt_status dt_engine_init(void)
{
    openblas_set_num_threads(1);   /* OpenMP's threads are the only pool: linalg.c */
    return dt_isa_init();
}
