/* overlap.c - in-place writes against overlapping memory (overlap.h). */
#include "overlap.h"
#include "size.h"

bool dt_extent(int ndim, const int64_t *shape, const int64_t *stride, int64_t offset,
               int64_t *lo, int64_t *hi)
{
    bool overflow = false;
    *lo = *hi = offset;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 0)
            return false;
        int64_t span = dt_size_mul(shape[d] - 1, stride[d], &overflow);
        if (span < 0)
            *lo = dt_size_add(*lo, span, &overflow);
        else
            *hi = dt_size_add(*hi, span, &overflow);
    }
    return !overflow;
}

dt_status dt_check_writable(const dt_tensor *t)
{
    for (int d = 0; d < t->ndim; d++)
        if (t->stride[d] == 0 && t->shape[d] > 1)
            return dt_fail(DT_ERR_ARG, "the tensor written in place has overlapping elements "
                           "(an expanded view: dim %d repeats one element); clone() it first",
                           d + 1);
    return DT_OK;
}

bool dt_same_view(const dt_tensor *a, const dt_tensor *b)
{
    if (a->storage != b->storage || a->offset != b->offset || !dt_same_shape(a, b))
        return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] > 1 && a->stride[d] != b->stride[d])
            return false;
    return true;
}

bool dt_share_memory(const dt_tensor *a, const dt_tensor *b)
{
    int64_t alo, ahi, blo, bhi;
    return a->storage == b->storage &&
           dt_extent(a->ndim, a->shape, a->stride, a->offset, &alo, &ahi) &&
           dt_extent(b->ndim, b->shape, b->stride, b->offset, &blo, &bhi) && alo <= bhi &&
           blo <= ahi;
}

dt_status dt_source_for_write(const dt_tensor *dst, const dt_tensor *src, const dt_tensor **use,
                              dt_tensor **tmp)
{
    *tmp = NULL;
    *use = src;
    if (!dt_share_memory(dst, src) || dt_same_view(dst, src))
        return DT_OK;
    dt_status st = dt_clone(src, tmp);
    if (st == DT_OK)
        *use = *tmp;
    return st;
}
