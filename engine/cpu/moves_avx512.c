/* moves_avx512.c - transposes and stride-2 rows with AVX-512 (cpu.h). */
#include "cpu.h"

#include <immintrin.h>

static inline __mmask16 lanes16(int64_t n)
{
    return n >= 16 ? 0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}

/* Rows loaded with masks; unpacks pair rows within 128-bit lanes,
 * shuffles make 4 x 4 blocks per lane, then two rounds of lane shuffles
 * gather lane L of the blocks of rows 0-3, 4-7, 8-11, 12-15; stores with
 * masks. */
static inline __attribute__((always_inline)) void transpose(const float *s, int64_t lds, float *d,
                                                            int64_t ldd, int64_t rows,
                                                            int64_t cols, bool fill)
{
    __m512 r[16], t[16];
    __mmask16 in = lanes16(cols), out = fill ? 0xFFFF : lanes16(rows);
    for (int i = 0; i < 16; i++)
        r[i] = i < rows ? _mm512_maskz_loadu_ps(in, s + i * lds) : _mm512_setzero_ps();
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int g = 0; g < 16; g += 4) {
        r[g] = _mm512_shuffle_ps(t[g], t[g + 2], 0x44);
        r[g + 1] = _mm512_shuffle_ps(t[g], t[g + 2], 0xEE);
        r[g + 2] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0x44);
        r[g + 3] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
    }
    for (int m = 0; m < 4; m++) {
        __m512 p = _mm512_shuffle_f32x4(r[m], r[4 + m], 0x44);
        __m512 q = _mm512_shuffle_f32x4(r[m], r[4 + m], 0xEE);
        __m512 u = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0x44);
        __m512 v = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0xEE);
        __m512 col[4] = {_mm512_shuffle_f32x4(p, u, 0x88), _mm512_shuffle_f32x4(p, u, 0xDD),
                         _mm512_shuffle_f32x4(q, v, 0x88), _mm512_shuffle_f32x4(q, v, 0xDD)};
        for (int b = 0; b < 4; b++)
            if (4 * b + m < cols)
                _mm512_mask_storeu_ps(d + (4 * b + m) * ldd, out, col[b]);
    }
}

/* Whole 16 x 16 blocks (most calls) take a copy with constant sizes. */
void dt_cpu_transpose16_avx512(const float *s, int64_t lds, float *d, int64_t ldd, int64_t rows,
                               int64_t cols, bool fill)
{
    if (rows == 16 && cols == 16)
        transpose(s, lds, d, ldd, 16, 16, false);
    else
        transpose(s, lds, d, ldd, rows, cols, fill);
}

/* 16 outputs from 31 inputs: two masked loads (nothing past src[2n - 2]
 * is read) and one two-source permute picking the even lanes. */
void dt_cpu_gather_even_avx512(float *dst, const float *src, int64_t n)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    for (int64_t k = 0; k < n; k += 16) {
        int64_t m = n - k < 16 ? n - k : 16, count = 2 * m - 1;
        __m512 lo = _mm512_maskz_loadu_ps(lanes16(count), src + 2 * k);
        __m512 hi = _mm512_maskz_loadu_ps(lanes16(count - 16), src + 2 * k + 16);
        _mm512_mask_storeu_ps(dst + k, lanes16(m), _mm512_permutex2var_ps(lo, even, hi));
    }
}

/* src spread over the even lanes of two vectors; loads, adds and stores
 * are masked to the even lanes, so the odd elements are not touched. */
void dt_cpu_scatter_add_even_avx512(float *dst, const float *src, int64_t n)
{
    const __m512i lo_idx = _mm512_setr_epi32(0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0);
    const __m512i hi_idx = _mm512_setr_epi32(8, 0, 9, 0, 10, 0, 11, 0, 12, 0, 13, 0, 14, 0, 15,
                                             0);
    for (int64_t k = 0; k < n; k += 16) {
        int64_t m = n - k < 16 ? n - k : 16, count = 2 * m - 1;
        __mmask16 mlo = lanes16(count) & 0x5555, mhi = lanes16(count - 16) & 0x5555;
        __m512 v = _mm512_maskz_loadu_ps(lanes16(m), src + k);
        float *d = dst + 2 * k;
        __m512 a = _mm512_maskz_loadu_ps(mlo, d), b = _mm512_maskz_loadu_ps(mhi, d + 16);
        a = _mm512_mask_add_ps(a, mlo, a, _mm512_permutexvar_ps(lo_idx, v));
        b = _mm512_mask_add_ps(b, mhi, b, _mm512_permutexvar_ps(hi_idx, v));
        _mm512_mask_storeu_ps(d, mlo, a);
        _mm512_mask_storeu_ps(d + 16, mhi, b);
    }
}
