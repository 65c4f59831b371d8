/* bn_generic.c - batch norm's block passes in plain C (cpu.h): the plain
 * lane loops of bn_blocks.h do the whole rows. */
#define DT_ISA generic
#include "cpu.h"

static int64_t sum_vec(float *a, const float *r, int64_t n)
{
    (void)a, (void)r, (void)n;
    return 0;
}

static int64_t centred_vec(double *a, double *q, const float *x, int64_t n, double m)
{
    (void)a, (void)q, (void)x, (void)n, (void)m;
    return 0;
}

static int64_t grad_vec(double *g, double *p, const float *dy, const float *x, int64_t n,
                        double m)
{
    (void)g, (void)p, (void)dy, (void)x, (void)n, (void)m;
    return 0;
}

#include "bn_blocks.h"
