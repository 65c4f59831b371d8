/* moves_generic.c - transposes and stride-2 rows in plain C (cpu.h): the
 * definitions the vector versions follow. */
#include "cpu.h"

void dt_cpu_transpose16_generic(const float *s, int64_t lds, float *d, int64_t ldd, int64_t rows,
                                int64_t cols, bool fill)
{
    for (int64_t c = 0; c < cols; c++)
        for (int64_t r = 0; r < (fill ? 16 : rows); r++)
            d[c * ldd + r] = r < rows ? s[r * lds + c] : 0.0f;
}

void dt_cpu_gather_even_generic(float *dst, const float *src, int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        dst[k] = src[2 * k];
}

void dt_cpu_scatter_add_even_generic(float *dst, const float *src, int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        dst[2 * k] += src[k];
}
