/* v16.h - 16 floats as one GCC vector-extension value: plain arithmetic
 * that compiles to one zmm register on AVX-512, two ymm on AVX2 and four
 * xmm on SSE2 or NEON. Loads and stores go through memcpy, so any
 * alignment is fine. */
#ifndef DISTILL_CPU_V16_H
#define DISTILL_CPU_V16_H

#include <string.h>

typedef float dt_v16 __attribute__((vector_size(64)));

static inline dt_v16 dt_v16_load(const float *p)
{
    dt_v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void dt_v16_store(float *p, dt_v16 v) { memcpy(p, &v, sizeof v); }

#endif
