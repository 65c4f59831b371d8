/* moves_avx2.c - transposes and stride-2 rows with AVX2 (cpu.h). */
#include "cpu.h"

#include <immintrin.h>

/* Lanes [0, n) of 8 set. */
static inline __m256i lanes8(int64_t n)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int32_t k = n >= 8 ? 8 : n <= 0 ? 0 : (int32_t)n;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), idx);
}

/* r[i][j] -> r[j][i] for an 8 x 8 block: pairs of rows interleaved, then
 * 4 x 4 blocks within 128-bit lanes, then the lanes swapped. */
static inline void transpose8(__m256 r[8])
{
    __m256 t[8], s[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int g = 0; g < 8; g += 4) {
        s[g] = _mm256_shuffle_ps(t[g], t[g + 2], 0x44);
        s[g + 1] = _mm256_shuffle_ps(t[g], t[g + 2], 0xEE);
        s[g + 2] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0x44);
        s[g + 3] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(s[i], s[4 + i], 0x20);
        r[4 + i] = _mm256_permute2f128_ps(s[i], s[4 + i], 0x31);
    }
}

static int64_t clamp8(int64_t n) { return n < 0 ? 0 : n > 8 ? 8 : n; }

/* Four 8 x 8 blocks; masked loads for ragged columns, masked stores for
 * ragged rows unless the zeros beyond them are wanted (fill). */
static inline __attribute__((always_inline)) void transpose(const float *s, int64_t lds, float *d,
                                                            int64_t ldd, int64_t rows,
                                                            int64_t cols, bool fill)
{
    for (int64_t rb = 0; rb < 16; rb += 8) {
        int64_t nr = clamp8(rows - rb);
        if (nr == 0 && !fill)
            break;
        __m256i out = lanes8(nr);
        for (int64_t cb = 0; cb < 16; cb += 8) {
            int64_t nc = clamp8(cols - cb);
            if (nc == 0)
                break;
            __m256i in = lanes8(nc);
            __m256 r[8];
            for (int i = 0; i < 8; i++) {
                const float *p = s + (rb + i) * lds + cb;
                r[i] = i >= nr   ? _mm256_setzero_ps()
                       : nc == 8 ? _mm256_loadu_ps(p)
                                 : _mm256_maskload_ps(p, in);
            }
            transpose8(r);
            for (int c = 0; c < nc; c++) {
                float *q = d + (cb + c) * ldd + rb;
                if (fill || nr == 8)
                    _mm256_storeu_ps(q, r[c]);
                else
                    _mm256_maskstore_ps(q, out, r[c]);
            }
        }
    }
}

/* Whole 16 x 16 blocks (most calls) take a copy with constant sizes. */
void dt_cpu_transpose16_avx2(const float *s, int64_t lds, float *d, int64_t ldd, int64_t rows,
                             int64_t cols, bool fill)
{
    if (rows == 16 && cols == 16)
        transpose(s, lds, d, ldd, 16, 16, false);
    else
        transpose(s, lds, d, ldd, rows, cols, fill);
}

/* 8 outputs from 16 inputs: the even lanes of two vectors, then the
 * 64-bit pairs put in order. Whole blocks while src[2k + 15] is inside
 * the row's 2n - 1 values, then the plain loop. */
void dt_cpu_gather_even_avx2(float *dst, const float *src, int64_t n)
{
    int64_t k = 0;
    for (; k + 9 <= n; k += 8) {
        __m256 even = _mm256_shuffle_ps(_mm256_loadu_ps(src + 2 * k),
                                        _mm256_loadu_ps(src + 2 * k + 8), 0x88);
        _mm256_storeu_ps(dst + k, _mm256_castpd_ps(_mm256_permute4x64_pd(
                                      _mm256_castps_pd(even), 0xD8)));
    }
    for (; k < n; k++)
        dst[k] = src[2 * k];
}

/* src spread over the even lanes (zeros between), added, and blended back
 * so the odd elements are stored exactly as loaded. */
void dt_cpu_scatter_add_even_avx2(float *dst, const float *src, int64_t n)
{
    const __m256 zero = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 9 <= n; k += 8) {
        __m256 v = _mm256_loadu_ps(src + k);
        __m256 ul = _mm256_unpacklo_ps(v, zero), uh = _mm256_unpackhi_ps(v, zero);
        __m256 lo = _mm256_permute2f128_ps(ul, uh, 0x20), hi = _mm256_permute2f128_ps(ul, uh, 0x31);
        float *d = dst + 2 * k;
        __m256 d0 = _mm256_loadu_ps(d), d1 = _mm256_loadu_ps(d + 8);
        _mm256_storeu_ps(d, _mm256_blend_ps(d0, _mm256_add_ps(d0, lo), 0x55));
        _mm256_storeu_ps(d + 8, _mm256_blend_ps(d1, _mm256_add_ps(d1, hi), 0x55));
    }
    for (; k < n; k++)
        dst[2 * k] += src[k];
}
