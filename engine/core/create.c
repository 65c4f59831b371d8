/* create.c - ranges and identity matrices. */
#include "distill.h"

#include <math.h>

dt_status dt_arange(dt_dtype dtype, double start, double end, double step, dt_tensor **out)
{
    *out = NULL;
    if (step == 0 || !isfinite(step) || !isfinite(start) || !isfinite(end))
        return dt_fail(DT_ERR_ARG, "arange needs finite start, end and a non-zero step");
    if ((step > 0 && end < start) || (step < 0 && end > start))
        return dt_fail(DT_ERR_ARG, "arange: step %g goes away from the end %g (start %g)", step,
                       end, start);
    double count = ceil((end - start) / step);
    if (!(count <= 9.0e18))   /* converting a larger double to int64_t is undefined */
        return dt_fail(DT_ERR_ARG, "arange from %g to %g by %g has too many elements (%g)",
                       start, end, step, count);
    int64_t n = (int64_t)count;
    dt_status st = dt_zeros(dtype, 1, &n, out);
    if (st)
        return st;
    for (int64_t i = 0; i < n; i++)
        dt_set_flat(*out, i, start + (double)i * step);
    return DT_OK;
}

dt_status dt_linspace(double start, double end, int64_t steps, dt_tensor **out)
{
    *out = NULL;
    if (steps < 0)
        return dt_fail(DT_ERR_ARG, "linspace: number of steps must be >= 0, got %lld",
                       (long long)steps);
    dt_status st = dt_zeros(DT_FLOAT32, 1, &steps, out);
    if (st)
        return st;
    float *p = dt_f32(*out);
    double step = steps > 1 ? (end - start) / (double)(steps - 1) : 0;
    /* Fill from both ends, as PyTorch does, so the last value is exactly `end`. */
    int64_t half = steps == 1 ? 1 : steps / 2;   /* a single step is `start`, as torch */
    for (int64_t i = 0; i < steps; i++)
        p[i] = (float)(i < half ? start + step * (double)i : end - step * (double)(steps - 1 - i));
    return DT_OK;
}

dt_status dt_eye(dt_dtype dtype, int64_t n, int64_t m, dt_tensor **out)
{
    int64_t shape[2] = {n, m};
    dt_status st = dt_zeros(dtype, 2, shape, out);
    if (st)
        return st;
    for (int64_t i = 0; i < n && i < m; i++)
        dt_set_flat(*out, i * m + i, 1);
    return DT_OK;
}
