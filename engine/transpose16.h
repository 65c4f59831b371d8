/* transpose16.h - 16 x 16 float transposes for the kernels that move data
 * between plane layouts (NCHW rows) and 16-channel interleaved layouts
 * (gemm.c packing, winograd.c staging and output). Internal, not part of
 * distill.h.
 *
 *   dt_transpose16(s, lds, d, ldd, rows, cols, fill):
 *       d[c*ldd + r] = s[r*lds + c]   for r < rows, c < cols (<= 16 each)
 *       d[c*ldd + r] = 0              for rows <= r < 16, when fill
 *
 * Only the rows x cols block of s is read. With fill, cols whole rows of
 * 16 values are written (zeros beyond `rows`: padded channel lanes); without,
 * only the rows x cols transpose is (straight into a destination's rows). The AVX-512 version loads rows with masks,
 * transposes in registers and stores with masks; the plain loops are the
 * definition and run where AVX-512 is absent. */
#ifndef DISTILL_TRANSPOSE16_H
#define DISTILL_TRANSPOSE16_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __AVX512F__
#include <immintrin.h>

static inline __mmask16 dt_lanes16(int64_t n)
{
    return n >= 16 ? 0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}

/* Unpacks pair rows within 128-bit lanes, shuffles make 4 x 4 blocks per
 * lane, then two rounds of lane shuffles gather lane L of the blocks of
 * rows 0-3, 4-7, 8-11, 12-15. */
static inline void dt_transpose16(const float *s, int64_t lds, float *d, int64_t ldd,
                                  int64_t rows, int64_t cols, bool fill)
{
    __m512 r[16], t[16];
    __mmask16 in = dt_lanes16(cols), out = fill ? 0xFFFF : dt_lanes16(rows);
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
#else
static inline void dt_transpose16(const float *s, int64_t lds, float *d, int64_t ldd,
                                  int64_t rows, int64_t cols, bool fill)
{
    for (int64_t c = 0; c < cols; c++)
        for (int64_t r = 0; r < (fill ? 16 : rows); r++)
            d[c * ldd + r] = r < rows ? s[r * lds + c] : 0.0f;
}
#endif

#endif
