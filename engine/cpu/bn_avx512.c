/* bn_avx512.c - batch norm's lane sums with AVX-512 (cpu.h, bn_blocks.h):
 * 64 float lanes in 4 zmm, 32 double lanes in 4 zmm per sum, each row's
 * floats widened 8 at a time. */
#define DT_ISA avx512
#include "cpu.h"

#include <immintrin.h>

static int64_t sum_vec(float *restrict a, const float *restrict r, int64_t n)
{
    if (n < DT_BN_LANES)
        return 0;
    __m512 v[4];
    for (int j = 0; j < 4; j++)
        v[j] = _mm512_loadu_ps(a + 16 * j);
    int64_t k = 0;
    for (; k + DT_BN_LANES <= n; k += DT_BN_LANES)
        for (int j = 0; j < 4; j++)
            v[j] = _mm512_add_ps(v[j], _mm512_loadu_ps(r + k + 16 * j));
    for (int j = 0; j < 4; j++)
        _mm512_storeu_ps(a + 16 * j, v[j]);
    return k;
}

static inline __m512d widen(const float *p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }

static int64_t centred_vec(double *restrict a, double *restrict q, const float *restrict x,
                           int64_t n, double m)
{
    if (n < DT_BN_GLANES)
        return 0;
    __m512d vm = _mm512_set1_pd(m), va[4], vq[4];
    for (int j = 0; j < 4; j++) {
        va[j] = _mm512_loadu_pd(a + 8 * j);
        vq[j] = _mm512_loadu_pd(q + 8 * j);
    }
    int64_t k = 0;
    for (; k + DT_BN_GLANES <= n; k += DT_BN_GLANES)
        for (int j = 0; j < 4; j++) {
            __m512d d = _mm512_sub_pd(widen(x + k + 8 * j), vm);
            va[j] = _mm512_add_pd(va[j], d);
            vq[j] = _mm512_fmadd_pd(d, d, vq[j]);
        }
    for (int j = 0; j < 4; j++) {
        _mm512_storeu_pd(a + 8 * j, va[j]);
        _mm512_storeu_pd(q + 8 * j, vq[j]);
    }
    return k;
}

static int64_t grad_vec(double *restrict g, double *restrict p, const float *restrict dy,
                        const float *restrict x, int64_t n, double m)
{
    if (n < DT_BN_GLANES)
        return 0;
    __m512d vm = _mm512_set1_pd(m), vg[4], vp[4];
    for (int j = 0; j < 4; j++) {
        vg[j] = _mm512_loadu_pd(g + 8 * j);
        vp[j] = _mm512_loadu_pd(p + 8 * j);
    }
    int64_t k = 0;
    for (; k + DT_BN_GLANES <= n; k += DT_BN_GLANES)
        for (int j = 0; j < 4; j++) {
            __m512d d = widen(dy + k + 8 * j);
            vg[j] = _mm512_add_pd(vg[j], d);
            vp[j] = _mm512_fmadd_pd(d, _mm512_sub_pd(widen(x + k + 8 * j), vm), vp[j]);
        }
    for (int j = 0; j < 4; j++) {
        _mm512_storeu_pd(g + 8 * j, vg[j]);
        _mm512_storeu_pd(p + 8 * j, vp[j]);
    }
    return k;
}

#include "bn_blocks.h"
