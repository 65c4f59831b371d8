/* index.c - indexing ops: index_select, gather, scatter_add_, masked_fill_,
 * cat, stack, split, repeat.
 *
 * Several ops here work on "stack views": a dt_tensor struct copied by value
 * and given another shape, strides or offset. They are only read by dt_iter
 * and dt_data (never retained or released), which saves allocating a header
 * per slice in loops over indices. */
#include "distill.h"
#include "core/overlap.h"
#include "core/size.h"

#include <string.h>

/* dst <- src elementwise; same shape and dtype, any strides. */
static void copy_same(const dt_tensor *dst, const dt_tensor *src)
{
    dt_iter it;
    const dt_tensor *ts[2] = {dst, src};
    dt_iter_init(&it, 2, ts);
    size_t es = dt_dtype_size(dst->dtype);
    char *dp = dt_data(dst);
    const char *sp = dt_data(src);
    while (dt_iter_next(&it)) {
        char *d = dp + it.offset[0] * (int64_t)es;
        const char *s = sp + it.offset[1] * (int64_t)es;
        int64_t ds = it.inner_stride[0], ss = it.inner_stride[1];
        if (ds == 1 && ss == 1) {
            memcpy(d, s, (size_t)it.inner * es);
            continue;
        }
        switch (es) {
        case 4:
            for (int64_t k = 0; k < it.inner; k++)
                ((uint32_t *)d)[k * ds] = ((const uint32_t *)s)[k * ss];
            break;
        case 8:
            for (int64_t k = 0; k < it.inner; k++)
                ((uint64_t *)d)[k * ds] = ((const uint64_t *)s)[k * ss];
            break;
        default:
            for (int64_t k = 0; k < it.inner; k++)
                ((uint8_t *)d)[k * ds] = ((const uint8_t *)s)[k * ss];
            break;
        }
    }
}

static dt_status check_index_tensor(const dt_tensor *index, const char *what)
{
    if (index->dtype != DT_INT64)
        return dt_fail(DT_ERR_DTYPE, "%s must be an int64 tensor, got %s", what,
                       dt_dtype_name(index->dtype));
    return DT_OK;
}

/* Every entry of index within [0, size); fails naming the first bad one. */
static dt_status check_index_range(const dt_tensor *index, int dim, int64_t size)
{
    dt_iter it;
    const dt_tensor *ts[1] = {index};
    dt_iter_init(&it, 1, ts);
    const int64_t *p = dt_i64(index);
    while (dt_iter_next(&it)) {
        for (int64_t k = 0; k < it.inner; k++) {
            int64_t v = p[it.offset[0] + k * it.inner_stride[0]];
            if (v < 0 || v >= size) {
                if (size == 0)
                    return dt_fail(DT_ERR_INDEX, "index %lld is out of range for dim %d of "
                                   "size 0 (no valid index)", (long long)v, dim + 1);
                return dt_fail(DT_ERR_INDEX, "index %lld is out of range for dim %d of size "
                               "%lld (valid: 0 to %lld)", (long long)v, dim + 1,
                               (long long)size, (long long)(size - 1));
            }
        }
    }
    return DT_OK;
}

/* ------------------------------------------------------------ index_select */

dt_status dt_index_select(const dt_tensor *a, int dim, const dt_tensor *index, dt_tensor **out)
{
    *out = NULL;
    if (a->ndim == 0)
        return dt_fail(DT_ERR_INDEX, "cannot index_select from a 0-d tensor");
    dt_status st = dt_normalize_dim(&dim, a->ndim);
    if (st == DT_OK)
        st = check_index_tensor(index, "index");
    if (st)
        return st;
    if (index->ndim > 1)
        return dt_fail(DT_ERR_SHAPE, "index must be 1-d, got a %d-d tensor", index->ndim);
    if ((st = check_index_range(index, dim, a->shape[dim])))
        return st;

    int64_t n = dt_numel(index);
    int64_t shape[DT_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[dim] = n;
    if ((st = dt_zeros(a->dtype, a->ndim, shape, out)))
        return st;

    /* One slab (dim reduced to size 1) per index entry. */
    dt_tensor src = *a, dst = **out;
    src.shape[dim] = 1;
    dst.shape[dim] = 1;
    int64_t dst_base = dst.offset;
    for (int64_t i = 0; i < n; i++) {
        int64_t v = index->ndim ? dt_i64(index)[i * index->stride[0]] : dt_i64(index)[0];
        src.offset = a->offset + v * a->stride[dim];
        dst.offset = dst_base + i * (*out)->stride[dim];
        copy_same(&dst, &src);
    }
    return DT_OK;
}

/* ------------------------------------------------------- gather / scatter */

/* Shared checks of gather and scatter_add_: index has a's number of dims
 * and, outside `dim`, sizes no larger than a's (and src's when given). */
static dt_status check_gather_shapes(const dt_tensor *a, int dim, const dt_tensor *index,
                                     const dt_tensor *src)
{
    char sa[160], si[160];
    if (index->ndim != a->ndim)
        return dt_fail(DT_ERR_SHAPE, "index must have as many dims as the tensor: index %s, "
                       "tensor %s", dt_shape_str(index->shape, index->ndim, si, sizeof si),
                       dt_shape_str(a->shape, a->ndim, sa, sizeof sa));
    for (int d = 0; d < a->ndim; d++) {
        if (d != dim && index->shape[d] > a->shape[d])
            return dt_fail(DT_ERR_SHAPE, "index %s is larger than the tensor %s in dim %d "
                           "(%lld > %lld)", dt_shape_str(index->shape, index->ndim, si, sizeof si),
                           dt_shape_str(a->shape, a->ndim, sa, sizeof sa), d + 1,
                           (long long)index->shape[d], (long long)a->shape[d]);
        if (src && (src->ndim != a->ndim || index->shape[d] > src->shape[d])) {
            char ss[160];
            return dt_fail(DT_ERR_SHAPE, "src %s must have the index's dims and be at least "
                           "as large as index %s in each",
                           dt_shape_str(src->shape, src->ndim, ss, sizeof ss),
                           dt_shape_str(index->shape, index->ndim, si, sizeof si));
        }
    }
    return DT_OK;
}

/* A stack view of t over index's shape, with stride 0 along dim: iterating
 * it gives the offset of each position's slot before adding the index. */
static dt_tensor base_view(const dt_tensor *t, int dim, const dt_tensor *index)
{
    dt_tensor v = *t;
    for (int d = 0; d < t->ndim; d++)
        v.shape[d] = index->shape[d];
    v.stride[dim] = 0;
    return v;
}

#define GATHER_RUN(T)                                                                    \
    do {                                                                                 \
        T *op = (T *)dt_data(*out);                                                      \
        const T *ap = (const T *)dt_data(&av);                                           \
        const int64_t *ip = dt_i64(index);                                               \
        while (dt_iter_next(&it))                                                        \
            for (int64_t k = 0; k < it.inner; k++)                                       \
                op[it.offset[0] + k * it.inner_stride[0]] =                              \
                    ap[it.offset[2] + k * it.inner_stride[2] +                           \
                       ip[it.offset[1] + k * it.inner_stride[1]] * step];                \
    } while (0)

dt_status dt_gather(const dt_tensor *a, int dim, const dt_tensor *index, dt_tensor **out)
{
    *out = NULL;
    dt_status st = dt_normalize_dim(&dim, a->ndim);
    if (st == DT_OK)
        st = check_index_tensor(index, "index");
    if (st == DT_OK)
        st = check_gather_shapes(a, dim, index, NULL);
    if (st == DT_OK)
        st = check_index_range(index, dim, a->ndim ? a->shape[dim] : 1);
    if (st == DT_OK)
        st = dt_zeros(a->dtype, index->ndim, index->shape, out);
    if (st)
        return st;
    dt_tensor av = base_view(a, dim, index);
    int64_t step = a->ndim ? a->stride[dim] : 0;
    dt_iter it;
    const dt_tensor *ts[3] = {*out, index, &av};
    dt_iter_init(&it, 3, ts);
    switch (a->dtype) {
    case DT_FLOAT32: GATHER_RUN(float); break;
    case DT_INT64: GATHER_RUN(int64_t); break;
    case DT_UINT8: GATHER_RUN(uint8_t); break;
    }
    return DT_OK;
}

#define SCATTER_RUN(T)                                                                   \
    do {                                                                                 \
        T *ap = (T *)dt_data(&av);                                                       \
        const T *sp = (const T *)dt_data(&sv);                                           \
        const int64_t *ip = dt_i64(index);                                               \
        while (dt_iter_next(&it))                                                        \
            for (int64_t k = 0; k < it.inner; k++)                                       \
                ap[it.offset[2] + k * it.inner_stride[2] +                               \
                   ip[it.offset[0] + k * it.inner_stride[0]] * step] +=                  \
                    sp[it.offset[1] + k * it.inner_stride[1]];                           \
    } while (0)

dt_status dt_scatter_add_(dt_tensor *a, int dim, const dt_tensor *index, const dt_tensor *src)
{
    dt_status st = dt_normalize_dim(&dim, a->ndim);
    if (st == DT_OK)
        st = check_index_tensor(index, "index");
    if (st)
        return st;
    if (src->dtype != a->dtype)
        return dt_fail(DT_ERR_DTYPE, "src must have the tensor's dtype %s, got %s",
                       dt_dtype_name(a->dtype), dt_dtype_name(src->dtype));
    if ((st = check_gather_shapes(a, dim, index, src)))
        return st;
    if ((st = check_index_range(index, dim, a->ndim ? a->shape[dim] : 1)))
        return st;
    dt_tensor *itmp = NULL, *stmp = NULL;
    if ((st = dt_check_writable(a)) || (st = dt_source_for_write(a, index, &index, &itmp)) ||
        (st = dt_source_for_write(a, src, &src, &stmp))) {
        dt_tensor_release(itmp);
        return st;
    }
    /* Sequential loop: several entries may hit one slot, and a fixed order
     * keeps float sums reproducible. */
    dt_tensor av = base_view(a, dim, index);
    dt_tensor sv = *src;
    for (int d = 0; d < src->ndim; d++)
        sv.shape[d] = index->shape[d];
    int64_t step = a->ndim ? a->stride[dim] : 0;
    dt_iter it;
    const dt_tensor *ts[3] = {index, &sv, &av};
    dt_iter_init(&it, 3, ts);
    switch (a->dtype) {
    case DT_FLOAT32: SCATTER_RUN(float); break;
    case DT_INT64: SCATTER_RUN(int64_t); break;
    case DT_UINT8: SCATTER_RUN(uint8_t); break;
    }
    dt_tensor_release(itmp);
    dt_tensor_release(stmp);
    a->storage->version++;
    return DT_OK;
}

/* ------------------------------------------------------------ masked_fill_ */

#define MASKED_RUN(T, V)                                                                 \
    do {                                                                                 \
        T *ap = (T *)dt_data(a);                                                         \
        const uint8_t *mp = dt_u8(m);                                                    \
        T v = (V);                                                                       \
        while (dt_iter_next(&it))                                                        \
            for (int64_t k = 0; k < it.inner; k++)                                       \
                if (mp[it.offset[1] + k * it.inner_stride[1]])                           \
                    ap[it.offset[0] + k * it.inner_stride[0]] = v;                       \
    } while (0)

dt_status dt_masked_fill_(dt_tensor *a, const dt_tensor *mask, double value)
{
    if (mask->dtype != DT_UINT8)
        return dt_fail(DT_ERR_DTYPE, "mask must be a uint8 tensor (e.g. a comparison result), "
                       "got %s", dt_dtype_name(mask->dtype));
    dt_tensor *m, *mtmp;
    dt_status st = dt_check_writable(a);
    if (st == DT_OK)
        st = dt_source_for_write(a, mask, &mask, &mtmp);
    if (st)
        return st;
    st = dt_expand((dt_tensor *)mask, a->ndim, a->shape, &m);
    if (st) {
        char sm[160], sa[160];
        st = dt_fail(DT_ERR_SHAPE, "mask of shape %s does not broadcast to the tensor's shape "
                     "%s", dt_shape_str(mask->shape, mask->ndim, sm, sizeof sm),
                     dt_shape_str(a->shape, a->ndim, sa, sizeof sa));
    }
    dt_tensor_release(mtmp);   /* m keeps a copy's storage alive */
    if (st)
        return st;
    /* Convert the value once, with dt_fill_'s rules, via a 0-d tensor. */
    dt_tensor *fill;
    if ((st = dt_scalar(a->dtype, value, &fill))) {
        dt_tensor_release(m);
        return st;
    }
    dt_iter it;
    const dt_tensor *ts[2] = {a, m};
    dt_iter_init(&it, 2, ts);
    switch (a->dtype) {
    case DT_FLOAT32: MASKED_RUN(float, dt_f32(fill)[0]); break;
    case DT_INT64: MASKED_RUN(int64_t, dt_i64(fill)[0]); break;
    case DT_UINT8: MASKED_RUN(uint8_t, dt_u8(fill)[0]); break;
    }
    dt_tensor_release(fill);
    dt_tensor_release(m);
    a->storage->version++;
    return DT_OK;
}

/* ------------------------------------------------------------- cat / stack */

/* torch skips 1-d empty tensors in cat (the legacy "empty list" tensor). */
static bool skipped_in_cat(const dt_tensor *t) { return t->ndim == 1 && t->shape[0] == 0; }

dt_status dt_cat(int n, const dt_tensor *const *ts, int dim, dt_tensor **out)
{
    *out = NULL;
    if (n <= 0)
        return dt_fail(DT_ERR_ARG, "expected a non-empty list of tensors");
    /* The first tensor that is not skipped fixes ndim, dtype and shape. */
    int ref = 0;
    while (ref < n - 1 && skipped_in_cat(ts[ref]))
        ref++;
    const dt_tensor *r = ts[ref];
    if (r->ndim == 0)
        return dt_fail(DT_ERR_SHAPE, "tensor %d is 0-d; 0-d tensors cannot be concatenated "
                       "(use stack)", ref + 1);
    dt_status st = dt_normalize_dim(&dim, r->ndim);
    if (st)
        return st;
    int64_t total = 0;
    bool big = false;
    for (int i = 0; i < n; i++) {
        const dt_tensor *t = ts[i];
        if (i != ref && skipped_in_cat(t))
            continue;
        if (t->dtype != r->dtype)
            return dt_fail(DT_ERR_DTYPE, "all tensors must have the same dtype: tensor %d is "
                           "%s but tensor %d is %s (convert first)", i + 1,
                           dt_dtype_name(t->dtype), ref + 1, dt_dtype_name(r->dtype));
        char s1[160], s2[160];
        if (t->ndim != r->ndim)
            return dt_fail(DT_ERR_SHAPE, "tensor %d has shape %s but tensor %d has %s: all "
                           "need the same number of dims", i + 1,
                           dt_shape_str(t->shape, t->ndim, s1, sizeof s1), ref + 1,
                           dt_shape_str(r->shape, r->ndim, s2, sizeof s2));
        for (int d = 0; d < r->ndim; d++)
            if (d != dim && t->shape[d] != r->shape[d])
                return dt_fail(DT_ERR_SHAPE, "tensor %d has shape %s but tensor %d has %s: "
                               "sizes must match except in dim %d (dim %d: %lld vs %lld)",
                               i + 1, dt_shape_str(t->shape, t->ndim, s1, sizeof s1), ref + 1,
                               dt_shape_str(r->shape, r->ndim, s2, sizeof s2), dim + 1, d + 1,
                               (long long)t->shape[d], (long long)r->shape[d]);
        total = dt_size_add(total, t->shape[dim], &big);
    }
    if (big)
        return dt_fail(DT_ERR_ARG, "the sizes of dim %d of the %d tensors add up past 2^63",
                       dim + 1, n);
    int64_t shape[DT_MAX_DIMS];
    memcpy(shape, r->shape, sizeof shape);
    shape[dim] = total;
    if ((st = dt_zeros(r->dtype, r->ndim, shape, out)))
        return st;
    dt_tensor dst = **out;
    int64_t pos = 0;
    for (int i = 0; i < n; i++) {
        if (i != ref && skipped_in_cat(ts[i]))
            continue;
        dst.shape[dim] = ts[i]->shape[dim];
        dst.offset = (*out)->offset + pos * (*out)->stride[dim];
        copy_same(&dst, ts[i]);
        pos += ts[i]->shape[dim];
    }
    return DT_OK;
}

dt_status dt_stack(int n, const dt_tensor *const *ts, int dim, dt_tensor **out)
{
    *out = NULL;
    if (n <= 0)
        return dt_fail(DT_ERR_ARG, "expected a non-empty list of tensors");
    const dt_tensor *r = ts[0];
    if (r->ndim >= DT_MAX_DIMS)
        return dt_fail(DT_ERR_ARG, "stacking %d-d tensors would exceed %d dims", r->ndim,
                       DT_MAX_DIMS);
    dt_status st = dt_normalize_dim(&dim, r->ndim + 1);
    if (st)
        return st;
    for (int i = 1; i < n; i++) {
        const dt_tensor *t = ts[i];
        if (t->dtype != r->dtype)
            return dt_fail(DT_ERR_DTYPE, "all tensors must have the same dtype: tensor %d is "
                           "%s but tensor 1 is %s (convert first)", i + 1,
                           dt_dtype_name(t->dtype), dt_dtype_name(r->dtype));
        if (!dt_same_shape(t, r)) {
            char s1[160], s2[160];
            return dt_fail(DT_ERR_SHAPE, "all tensors must have the same shape: tensor %d has "
                           "%s but tensor 1 has %s", i + 1,
                           dt_shape_str(t->shape, t->ndim, s1, sizeof s1),
                           dt_shape_str(r->shape, r->ndim, s2, sizeof s2));
        }
    }
    int64_t shape[DT_MAX_DIMS];
    for (int d = 0, s = 0; d <= r->ndim; d++)
        shape[d] = d == dim ? n : r->shape[s++];
    if ((st = dt_zeros(r->dtype, r->ndim + 1, shape, out)))
        return st;
    /* dst: the output with the stacked dim removed, moved along it. */
    dt_tensor dst = **out;
    dst.ndim = r->ndim;
    for (int d = 0, s = 0; d <= r->ndim; d++) {
        if (d == dim)
            continue;
        dst.shape[s] = (*out)->shape[d];
        dst.stride[s] = (*out)->stride[d];
        s++;
    }
    for (int i = 0; i < n; i++) {
        dst.offset = (*out)->offset + i * (*out)->stride[dim];
        copy_same(&dst, ts[i]);
    }
    return DT_OK;
}

/* ------------------------------------------------------------ split/repeat */

dt_status dt_split(dt_tensor *a, int dim, int n, const int64_t *sizes, dt_tensor **outs)
{
    for (int i = 0; i < n; i++)
        outs[i] = NULL;
    if (a->ndim == 0)
        return dt_fail(DT_ERR_INDEX, "cannot split a 0-d tensor");
    dt_status st = dt_normalize_dim(&dim, a->ndim);
    if (st)
        return st;
    int64_t total = 0;
    bool big = false;
    for (int i = 0; i < n; i++) {
        if (sizes[i] < 0)
            return dt_fail(DT_ERR_ARG, "split size %d is negative (%lld)", i + 1,
                           (long long)sizes[i]);
        total = dt_size_add(total, sizes[i], &big);
    }
    if (big)
        return dt_fail(DT_ERR_SHAPE, "split sizes add up past 2^63 but dim %d has size %lld",
                       dim + 1, (long long)a->shape[dim]);
    if (total != a->shape[dim])
        return dt_fail(DT_ERR_SHAPE, "split sizes add up to %lld but dim %d has size %lld",
                       (long long)total, dim + 1, (long long)a->shape[dim]);
    int64_t start = 0;
    for (int i = 0; i < n; i++) {
        if ((st = dt_narrow(a, dim, start, sizes[i], &outs[i]))) {
            for (int j = 0; j < i; j++) {
                dt_tensor_release(outs[j]);
                outs[j] = NULL;
            }
            return st;
        }
        start += sizes[i];
    }
    return DT_OK;
}

dt_status dt_repeat(const dt_tensor *a, int ndim, const int64_t *repeats, dt_tensor **out)
{
    *out = NULL;
    if (ndim < a->ndim)
        return dt_fail(DT_ERR_ARG, "%d repeat counts given for a %d-d tensor (need at least "
                       "one per dim)", ndim, a->ndim);
    if (ndim > DT_MAX_DIMS)
        return dt_fail(DT_ERR_ARG, "tensors have at most %d dims, %d repeat counts given",
                       DT_MAX_DIMS, ndim);
    /* a seen with leading size-1 dims so that it has ndim dims */
    dt_tensor src = *a;
    int lead = ndim - a->ndim;
    src.ndim = ndim;
    int64_t shape[DT_MAX_DIMS];
    bool big = false;
    for (int d = 0; d < ndim; d++) {
        if (repeats[d] < 0)
            return dt_fail(DT_ERR_ARG, "repeat count %d is negative (%lld)", d + 1,
                           (long long)repeats[d]);
        src.shape[d] = d < lead ? 1 : a->shape[d - lead];
        src.stride[d] = d < lead ? 0 : a->stride[d - lead];
        shape[d] = dt_size_mul(src.shape[d], repeats[d], &big);
    }
    if (big) {
        char s1[160], s2[160];
        return dt_fail(DT_ERR_ARG, "repeating shape %s by %s overflows 64 bits",
                       dt_shape_str(a->shape, a->ndim, s1, sizeof s1),
                       dt_shape_str(repeats, ndim, s2, sizeof s2));
    }
    /* every block is a whole copy of a, so nblocks below is at most numel */
    dt_status st = dt_zeros(a->dtype, ndim, shape, out);
    if (st || dt_numel(*out) == 0)
        return st;
    /* One copy of a per block; `block` counts through the repeat grid. */
    dt_tensor dst = **out;
    for (int d = 0; d < ndim; d++)
        dst.shape[d] = src.shape[d];
    int64_t block[DT_MAX_DIMS] = {0};
    int64_t nblocks = 1;
    for (int d = 0; d < ndim; d++)
        nblocks *= repeats[d];
    for (int64_t b = 0; b < nblocks; b++) {
        dst.offset = (*out)->offset;
        for (int d = 0; d < ndim; d++)
            dst.offset += block[d] * src.shape[d] * (*out)->stride[d];
        copy_same(&dst, &src);
        for (int d = ndim - 1; d >= 0; d--) {
            if (++block[d] < repeats[d])
                break;
            block[d] = 0;
        }
    }
    return DT_OK;
}
