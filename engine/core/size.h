/* size.h - overflow-checked size arithmetic (internal to the engine).
 *
 * Sizes, strides, offsets and geometry (padding, dilation, kernel extents)
 * come from users and files, so any product or sum of them may leave
 * int64_t, which C leaves undefined and which in practice wraps into a
 * small or negative size that then passes range checks. Every such
 * computation goes through dt_size_mul / dt_size_add: they return the
 * exact result, or 0 and set *overflow (sticky, so a whole expression is
 * checked once at its end, where the caller reports the function and the
 * sizes it was given).
 *
 * Tensors themselves never hold such sizes: every header is checked when
 * it is made (tensor.c) so that the product of its non-zero sizes is at
 * most DT_MAX_NUMEL and every element lies inside the storage. Products of
 * the dims of one existing tensor therefore need no check. */
#ifndef DISTILL_CORE_SIZE_H
#define DISTILL_CORE_SIZE_H

#include "distill.h"

/* The most elements one tensor may have: its byte size (at most 8 bytes an
 * element) and small multiples of it still fit in int64_t. */
#define DT_MAX_NUMEL (INT64_MAX / 16)

static inline int64_t dt_size_mul(int64_t a, int64_t b, bool *overflow)
{
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r)) {
        *overflow = true;
        return 0;
    }
    return r;
}

static inline int64_t dt_size_add(int64_t a, int64_t b, bool *overflow)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) {
        *overflow = true;
        return 0;
    }
    return r;
}

/* The number of elements of a shape, or an error naming `what` and the
 * shape when the product of its non-zero sizes exceeds DT_MAX_NUMEL (a
 * zero size does not excuse the others: strides of the same shape
 * multiply them too). Negative sizes (a -1 still to be inferred) are left
 * out of the product. */
dt_status dt_shape_numel(const char *what, int ndim, const int64_t *shape, int64_t *numel);

#endif
