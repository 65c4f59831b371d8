/* bn_avx2.c - batch norm's lane sums with AVX2 (cpu.h, bn_blocks.h): 64
 * float lanes in 8 ymm; the 32 double lanes of a sum pair take 16 ymm, so
 * they go in two halves of 16 lanes (lanes 0-15, then 16-31), each half
 * summing its own elements in order. */
#define DT_ISA avx2
#include "cpu.h"

#include <immintrin.h>

static int64_t sum_vec(float *restrict a, const float *restrict r, int64_t n)
{
    if (n < DT_BN_LANES)
        return 0;
    __m256 v[8];
    for (int j = 0; j < 8; j++)
        v[j] = _mm256_loadu_ps(a + 8 * j);
    int64_t k = 0;
    for (; k + DT_BN_LANES <= n; k += DT_BN_LANES)
        for (int j = 0; j < 8; j++)
            v[j] = _mm256_add_ps(v[j], _mm256_loadu_ps(r + k + 8 * j));
    for (int j = 0; j < 8; j++)
        _mm256_storeu_ps(a + 8 * j, v[j]);
    return k;
}

static inline __m256d widen(const float *p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }

static int64_t centred_vec(double *restrict a, double *restrict q, const float *restrict x,
                           int64_t n, double m)
{
    if (n < DT_BN_GLANES)
        return 0;
    __m256d vm = _mm256_set1_pd(m);
    int64_t k = 0;
    for (int h = 0; h < 2; h++) {
        __m256d va[4], vq[4];
        for (int j = 0; j < 4; j++) {
            va[j] = _mm256_loadu_pd(a + 16 * h + 4 * j);
            vq[j] = _mm256_loadu_pd(q + 16 * h + 4 * j);
        }
        for (k = 0; k + DT_BN_GLANES <= n; k += DT_BN_GLANES)
            for (int j = 0; j < 4; j++) {
                __m256d d = _mm256_sub_pd(widen(x + k + 16 * h + 4 * j), vm);
                va[j] = _mm256_add_pd(va[j], d);
                vq[j] = _mm256_fmadd_pd(d, d, vq[j]);
            }
        for (int j = 0; j < 4; j++) {
            _mm256_storeu_pd(a + 16 * h + 4 * j, va[j]);
            _mm256_storeu_pd(q + 16 * h + 4 * j, vq[j]);
        }
    }
    return k;
}

static int64_t grad_vec(double *restrict g, double *restrict p, const float *restrict dy,
                        const float *restrict x, int64_t n, double m)
{
    if (n < DT_BN_GLANES)
        return 0;
    __m256d vm = _mm256_set1_pd(m);
    int64_t k = 0;
    for (int h = 0; h < 2; h++) {
        __m256d vg[4], vp[4];
        for (int j = 0; j < 4; j++) {
            vg[j] = _mm256_loadu_pd(g + 16 * h + 4 * j);
            vp[j] = _mm256_loadu_pd(p + 16 * h + 4 * j);
        }
        for (k = 0; k + DT_BN_GLANES <= n; k += DT_BN_GLANES)
            for (int j = 0; j < 4; j++) {
                int64_t e = k + 16 * h + 4 * j;
                __m256d d = widen(dy + e);
                vg[j] = _mm256_add_pd(vg[j], d);
                vp[j] = _mm256_fmadd_pd(d, _mm256_sub_pd(widen(x + e), vm), vp[j]);
            }
        for (int j = 0; j < 4; j++) {
            _mm256_storeu_pd(g + 16 * h + 4 * j, vg[j]);
            _mm256_storeu_pd(p + 16 * h + 4 * j, vp[j]);
        }
    }
    return k;
}

#include "bn_blocks.h"
