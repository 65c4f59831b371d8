/* tensor.c - tensor headers, reference counts, element access, iteration. */
#include "distill.h"
#include "autograd/op.h"
#include "core/overlap.h"
#include "core/size.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dt_tensor_retain(dt_tensor *t) { t->refcount++; }

void dt_tensor_release(dt_tensor *t)
{
    if (!t || --t->refcount > 0)
        return;
    dt_storage_release(t->storage);
    dt_tensor_release(t->grad);
    dt_node_release(t->grad_fn);
    free(t);
}

int64_t dt_numel(const dt_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= t->shape[d];
    return n;
}

bool dt_is_contiguous(const dt_tensor *t)
{
    int64_t expected = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] == 1)
            continue;
        if (t->stride[d] != expected)
            return false;
        expected *= t->shape[d];
    }
    return true;
}

void *dt_data(const dt_tensor *t)
{
    return (char *)t->storage->data + (size_t)t->offset * dt_dtype_size(t->dtype);
}

size_t dt_nbytes(const dt_tensor *t) { return (size_t)dt_numel(t) * dt_dtype_size(t->dtype); }

bool dt_same_shape(const dt_tensor *a, const dt_tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return false;
    return true;
}

bool dt_equal(const dt_tensor *a, const dt_tensor *b)
{
    bool equal = dt_same_shape(a, b);
    int64_t n = dt_numel(a);
    for (int64_t i = 0; i < n && equal; i++)
        equal = dt_get_flat(a, i) == dt_get_flat(b, i);
    return equal;
}

char *dt_shape_str(const int64_t *shape, int ndim, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < ndim && used < len; d++)
        used += (size_t)snprintf(buf + used, len - used, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (used < len)
        snprintf(buf + used, len - used, "]");
    return buf;
}

dt_status dt_normalize_dim(int *dim, int ndim)
{
    int n = ndim > 0 ? ndim : 1;
    int d = *dim < 0 ? *dim + n : *dim;
    if (d < 0 || d >= n)
        return dt_fail(DT_ERR_INDEX, "dim %d out of range for a %d-d tensor", *dim + 1, ndim);
    *dim = d;
    return DT_OK;
}

/* ---------------------------------------------------------------- creation */

static dt_status check_shape(int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > DT_MAX_DIMS)
        return dt_fail(DT_ERR_ARG, "tensors have 0 to %d dims, got %d", DT_MAX_DIMS, ndim);
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0)
            return dt_fail(DT_ERR_ARG, "size of dim %d must be >= 0, got %lld", d + 1,
                           (long long)shape[d]);
    return DT_OK;
}

/* Every header satisfies what size.h promises: its sizes multiply to at
 * most DT_MAX_NUMEL and every element it addresses lies in its storage.
 * Views check their own arguments with clearer messages; this is the last
 * line, so that no arithmetic slip can make a header that reads or writes
 * outside its storage. */
static dt_status check_geometry(const dt_storage *storage, dt_dtype dtype, int ndim,
                                const int64_t *shape, const int64_t *stride, int64_t offset)
{
    int64_t numel;
    dt_status st = check_shape(ndim, shape);
    if (st == DT_OK)
        st = dt_shape_numel("shape", ndim, shape, &numel);
    if (st || numel == 0)
        return st;
    int64_t lo, hi, capacity = (int64_t)(storage->nbytes / dt_dtype_size(dtype));
    if (!dt_extent(ndim, shape, stride, offset, &lo, &hi) || lo < 0 || hi >= capacity) {
        char a[128], b[128];
        return dt_fail(DT_ERR_INDEX, "a view of shape %s, strides %s and offset %lld reaches "
                       "outside its storage of %lld elements",
                       dt_shape_str(shape, ndim, a, sizeof a),
                       dt_shape_str(stride, ndim, b, sizeof b), (long long)offset,
                       (long long)capacity);
    }
    return DT_OK;
}

/* A header over `storage` (retained) with the given geometry. */
static dt_status new_header(dt_storage *storage, dt_dtype dtype, int ndim, const int64_t *shape,
                            const int64_t *stride, int64_t offset, dt_tensor **out)
{
    dt_status st = check_geometry(storage, dtype, ndim, shape, stride, offset);
    if (st)
        return st;
    dt_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return dt_fail(DT_ERR_NOMEM, "out of memory allocating a tensor header");
    t->storage = storage;
    dt_storage_retain(storage);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        t->stride[d] = stride[d];
    }
    t->offset = offset;
    t->refcount = 1;
    *out = t;
    return DT_OK;
}

/* A contiguous tensor over a new storage: zero-filled or (for outputs the
 * caller overwrites completely) left uninitialised. */
static dt_status new_contiguous(dt_dtype dtype, int ndim, const int64_t *shape, bool zero,
                                dt_tensor **out)
{
    *out = NULL;
    dt_status st = check_shape(ndim, shape);
    if (st)
        return st;
    int64_t numel;
    st = dt_shape_numel("shape", ndim, shape, &numel);
    if (st)
        return st;
    dt_storage *s;
    size_t nbytes = (size_t)numel * dt_dtype_size(dtype);
    st = zero ? dt_storage_new(nbytes, &s) : dt_storage_new_uninit(nbytes, &s);
    if (st)
        return st;
    int64_t stride[DT_MAX_DIMS];
    int64_t step = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        stride[d] = step;
        step *= shape[d] > 0 ? shape[d] : 1;
    }
    st = new_header(s, dtype, ndim, shape, stride, 0, out);
    dt_storage_release(s);
    return st;
}

dt_status dt_zeros(dt_dtype dtype, int ndim, const int64_t *shape, dt_tensor **out)
{
    return new_contiguous(dtype, ndim, shape, true, out);
}

/* Uninitialised contents: only for outputs that are written in full. */
dt_status dt_empty(dt_dtype dtype, int ndim, const int64_t *shape, dt_tensor **out)
{
    return new_contiguous(dtype, ndim, shape, false, out);
}

dt_status dt_full(dt_dtype dtype, int ndim, const int64_t *shape, double value, dt_tensor **out)
{
    dt_status st = dt_zeros(dtype, ndim, shape, out);
    if (st == DT_OK && value != 0)
        dt_fill_(*out, value);
    return st;
}

dt_status dt_empty_like(const dt_tensor *t, dt_tensor **out)
{
    return dt_empty(t->dtype, t->ndim, t->shape, out);
}

dt_status dt_zeros_like(const dt_tensor *t, dt_tensor **out)
{
    return dt_zeros(t->dtype, t->ndim, t->shape, out);
}

dt_status dt_scalar(dt_dtype dtype, double value, dt_tensor **out)
{
    return dt_full(dtype, 0, NULL, value, out);
}

/* ---------------------------------------------------------- element access */

int64_t dt_offset_of(const dt_tensor *t, const int64_t *index)
{
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++)
        off += index[d] * t->stride[d];
    return off;
}

static int64_t flat_to_offset(const dt_tensor *t, int64_t i)
{
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t n = t->shape[d];
        off += (i % n) * t->stride[d];
        i /= n;
    }
    return off;
}

static double load_double(const dt_tensor *t, int64_t off)
{
    switch (t->dtype) {
    case DT_FLOAT32: return dt_f32(t)[off];
    case DT_INT64: return (double)dt_i64(t)[off];
    case DT_UINT8: return dt_u8(t)[off];
    }
    return 0;
}

/* C leaves float-to-integer conversion of out-of-range values undefined;
 * pin it down: NaN becomes 0, the rest saturates to int64, then wraps as
 * two's complement when narrowed (as PyTorch does for uint8). */
static int64_t double_to_i64(double v)
{
    if (v != v)
        return 0;
    if (v >= 9.2233720368547758e18)
        return INT64_MAX;
    if (v <= -9.2233720368547758e18)
        return INT64_MIN;
    return (int64_t)v;
}

static void store_double(dt_tensor *t, int64_t off, double v)
{
    switch (t->dtype) {
    case DT_FLOAT32: dt_f32(t)[off] = (float)v; break;
    case DT_INT64: dt_i64(t)[off] = double_to_i64(v); break;
    case DT_UINT8: dt_u8(t)[off] = (uint8_t)double_to_i64(v); break;
    }
}

double dt_get_flat(const dt_tensor *t, int64_t i) { return load_double(t, flat_to_offset(t, i)); }

void dt_set_flat(dt_tensor *t, int64_t i, double v)
{
    store_double(t, flat_to_offset(t, i), v);
    t->storage->version++;
}

int64_t dt_get_flat_i64(const dt_tensor *t, int64_t i)
{
    int64_t off = flat_to_offset(t, i);
    if (t->dtype == DT_INT64)
        return dt_i64(t)[off];
    if (t->dtype == DT_UINT8)
        return dt_u8(t)[off];
    return double_to_i64(dt_f32(t)[off]);
}

void dt_set_flat_i64(dt_tensor *t, int64_t i, int64_t v)
{
    int64_t off = flat_to_offset(t, i);
    if (t->dtype == DT_INT64)
        dt_i64(t)[off] = v;
    else if (t->dtype == DT_UINT8)
        dt_u8(t)[off] = (uint8_t)v;
    else
        dt_f32(t)[off] = (float)v;
    t->storage->version++;
}

/* ---------------------------------------------------------------- iterator */

void dt_iter_init(dt_iter *it, int n, const dt_tensor *const *ts)
{
    memset(it, 0, sizeof *it);
    it->ntensors = n;
    const dt_tensor *t0 = ts[0];
    int64_t numel = dt_numel(t0);

    /* Drop size-1 dims, then merge neighbours that are contiguous with each
     * other in every tensor; cshape[0] ends up the innermost dim. */
    int m = 0;
    int64_t cshape[DT_MAX_DIMS];
    int64_t cstride[4][DT_MAX_DIMS];
    for (int d = t0->ndim - 1; d >= 0; d--) {
        if (t0->shape[d] == 1)
            continue;
        bool mergeable = m > 0;
        for (int j = 0; j < n && mergeable; j++)
            mergeable = ts[j]->stride[d] == cstride[j][m - 1] * cshape[m - 1];
        if (mergeable) {
            cshape[m - 1] *= t0->shape[d];
        } else {
            cshape[m] = t0->shape[d];
            for (int j = 0; j < n; j++)
                cstride[j][m] = ts[j]->stride[d];
            m++;
        }
    }
    it->inner = m > 0 ? cshape[0] : 1;
    for (int j = 0; j < n; j++)
        it->inner_stride[j] = m > 0 ? cstride[j][0] : 0;
    it->ndim = m > 0 ? m - 1 : 0;
    for (int i = 0; i < it->ndim; i++) {
        it->shape[i] = cshape[i + 1];
        for (int j = 0; j < n; j++)
            it->strides[j][i] = cstride[j][i + 1];
    }
    it->remaining = numel == 0 ? 0 : numel / it->inner;
}

bool dt_iter_next(dt_iter *it)
{
    if (it->remaining == 0)
        return false;
    it->remaining--;
    if (!it->started) {
        it->started = true;
        return true;
    }
    for (int i = 0; i < it->ndim; i++) {
        it->counter[i]++;
        for (int j = 0; j < it->ntensors; j++)
            it->offset[j] += it->strides[j][i];
        if (it->counter[i] < it->shape[i])
            break;
        for (int j = 0; j < it->ntensors; j++)
            it->offset[j] -= it->strides[j][i] * it->shape[i];
        it->counter[i] = 0;
    }
    return true;
}

/* ------------------------------------------------------------------- views */

dt_status dt_alias(dt_tensor *t, dt_tensor **out)
{
    return new_header(t->storage, t->dtype, t->ndim, t->shape, t->stride, t->offset, out);
}

/* Resolve one -1 in `shape` against numel; checks the product. */
static dt_status infer_shape(int64_t numel, int ndim, const int64_t *shape, int64_t *resolved)
{
    dt_status st = ndim > DT_MAX_DIMS || ndim < 0
        ? dt_fail(DT_ERR_ARG, "tensors have 0 to %d dims, got %d", DT_MAX_DIMS, ndim)
        : DT_OK;
    if (st)
        return st;
    int infer = -1;
    for (int d = 0; d < ndim; d++) {
        resolved[d] = shape[d];
        if (shape[d] == -1) {
            if (infer >= 0)
                return dt_fail(DT_ERR_ARG, "only one dim can be -1");
            infer = d;
        } else if (shape[d] < 0) {
            return dt_fail(DT_ERR_ARG, "invalid size %lld in dim %d", (long long)shape[d], d + 1);
        }
    }
    int64_t known;
    st = dt_shape_numel("shape", ndim, shape, &known);
    if (st)
        return st;
    if (infer >= 0) {
        if (known == 0 || numel % known != 0)
            return dt_fail(DT_ERR_SHAPE, "cannot infer the -1 dim: %lld elements do not divide "
                           "into blocks of %lld", (long long)numel, (long long)known);
        resolved[infer] = numel / known;
        known *= resolved[infer];
    }
    if (known != numel) {
        char buf[128];
        return dt_fail(DT_ERR_SHAPE, "shape %s has %lld elements but the tensor has %lld",
                       dt_shape_str(resolved, ndim, buf, sizeof buf), (long long)known,
                       (long long)numel);
    }
    return DT_OK;
}

/* Strides for viewing t as `shape` without copying, if possible (the
 * algorithm of PyTorch's computeStride: old dims are grouped into chunks that
 * are contiguous among themselves, and each chunk must map onto new dims). */
static bool view_strides(const dt_tensor *t, int ndim, const int64_t *shape, int64_t *stride)
{
    if (dt_numel(t) == 0 || t->ndim == 0 || dt_is_contiguous(t)) {
        int64_t step = 1;
        for (int d = ndim - 1; d >= 0; d--) {
            stride[d] = step;
            step *= shape[d] > 0 ? shape[d] : 1;
        }
        return true;
    }
    int view_d = ndim - 1;
    int64_t chunk_base = t->stride[t->ndim - 1];
    int64_t tensor_numel = 1, view_numel = 1;
    bool overflow = false;
    for (int td = t->ndim - 1; td >= 0; td--) {
        tensor_numel *= t->shape[td];
        if (td == 0 || (t->shape[td - 1] != 1 &&
                        t->stride[td - 1] != dt_size_mul(tensor_numel, chunk_base, &overflow))) {
            while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
                stride[view_d] = dt_size_mul(view_numel, chunk_base, &overflow);
                view_numel *= shape[view_d];
                view_d--;
            }
            if (overflow)
                return false;
            if (view_numel != tensor_numel)
                return false;
            if (td > 0) {
                chunk_base = t->stride[td - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    return view_d == -1;
}

dt_status dt_view(dt_tensor *t, int ndim, const int64_t *shape, dt_tensor **out)
{
    *out = NULL;
    int64_t resolved[DT_MAX_DIMS], stride[DT_MAX_DIMS];
    dt_status st = infer_shape(dt_numel(t), ndim, shape, resolved);
    if (st)
        return st;
    if (!view_strides(t, ndim, resolved, stride))
        return dt_fail(DT_ERR_SHAPE, "view is not compatible with the tensor's strides "
                       "(call contiguous() first, or use reshape)");
    return new_header(t->storage, t->dtype, ndim, resolved, stride, t->offset, out);
}

dt_status dt_reshape(dt_tensor *t, int ndim, const int64_t *shape, dt_tensor **out)
{
    *out = NULL;
    int64_t resolved[DT_MAX_DIMS], stride[DT_MAX_DIMS];
    dt_status st = infer_shape(dt_numel(t), ndim, shape, resolved);
    if (st)
        return st;
    if (view_strides(t, ndim, resolved, stride))
        return new_header(t->storage, t->dtype, ndim, resolved, stride, t->offset, out);
    dt_tensor *c;
    st = dt_clone(t, &c);
    if (st)
        return st;
    st = dt_view(c, ndim, resolved, out);
    dt_tensor_release(c);
    return st;
}

dt_status dt_narrow(dt_tensor *t, int dim, int64_t start, int64_t length, dt_tensor **out)
{
    *out = NULL;
    dt_status st = t->ndim == 0 ? dt_fail(DT_ERR_INDEX, "cannot narrow a 0-d tensor")
                                : dt_normalize_dim(&dim, t->ndim);
    if (st)
        return st;
    if (start < 0 || length < 0 || start > t->shape[dim] || length > t->shape[dim] - start)
        return dt_fail(DT_ERR_INDEX, "narrow of %lld elements from position %lld is out of "
                       "range for dim %d of size %lld", (long long)length, (long long)start + 1,
                       dim + 1, (long long)t->shape[dim]);
    int64_t shape[DT_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[dim] = length;
    return new_header(t->storage, t->dtype, t->ndim, shape, t->stride,
                      t->offset + start * t->stride[dim], out);
}

dt_status dt_select(dt_tensor *t, int dim, int64_t index, dt_tensor **out)
{
    *out = NULL;
    dt_status st = t->ndim == 0 ? dt_fail(DT_ERR_INDEX, "cannot select from a 0-d tensor")
                                : dt_normalize_dim(&dim, t->ndim);
    if (st)
        return st;
    if (index < 0)
        index += t->shape[dim];
    if (index < 0 || index >= t->shape[dim])
        return dt_fail(DT_ERR_INDEX, "index %lld is out of range for dim %d of size %lld",
                       (long long)(index < 0 ? index - t->shape[dim] : index + 1), dim + 1,
                       (long long)t->shape[dim]);
    int64_t shape[DT_MAX_DIMS], stride[DT_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (d == dim)
            continue;
        shape[n] = t->shape[d];
        stride[n] = t->stride[d];
        n++;
    }
    return new_header(t->storage, t->dtype, n, shape, stride, t->offset + index * t->stride[dim],
                      out);
}

dt_status dt_transpose(dt_tensor *t, int dim0, int dim1, dt_tensor **out)
{
    *out = NULL;
    dt_status st = dt_normalize_dim(&dim0, t->ndim);
    if (st == DT_OK)
        st = dt_normalize_dim(&dim1, t->ndim);
    if (st == DT_OK)
        st = dt_alias(t, out);
    if (st || t->ndim == 0)
        return st;
    dt_tensor *r = *out;
    int64_t s = r->shape[dim0], k = r->stride[dim0];
    r->shape[dim0] = r->shape[dim1];
    r->stride[dim0] = r->stride[dim1];
    r->shape[dim1] = s;
    r->stride[dim1] = k;
    return DT_OK;
}

dt_status dt_permute(dt_tensor *t, const int *dims, dt_tensor **out)
{
    *out = NULL;
    bool seen[DT_MAX_DIMS] = {false};
    int resolved[DT_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) {
        int d = dims[i];
        dt_status st = dt_normalize_dim(&d, t->ndim);
        if (st)
            return st;
        if (seen[d])
            return dt_fail(DT_ERR_ARG, "dim %d appears twice in the permutation", d + 1);
        seen[d] = true;
        resolved[i] = d;
    }
    dt_status st = dt_alias(t, out);
    if (st)
        return st;
    for (int i = 0; i < t->ndim; i++) {
        (*out)->shape[i] = t->shape[resolved[i]];
        (*out)->stride[i] = t->stride[resolved[i]];
    }
    return DT_OK;
}

dt_status dt_squeeze(dt_tensor *t, int dim, dt_tensor **out)
{
    *out = NULL;
    bool all = dim == INT32_MIN;
    if (!all) {
        dt_status st = dt_normalize_dim(&dim, t->ndim);
        if (st)
            return st;
    }
    int64_t shape[DT_MAX_DIMS], stride[DT_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] == 1 && (all || d == dim))
            continue;
        shape[n] = t->shape[d];
        stride[n] = t->stride[d];
        n++;
    }
    return new_header(t->storage, t->dtype, n, shape, stride, t->offset, out);
}

dt_status dt_unsqueeze(dt_tensor *t, int dim, dt_tensor **out)
{
    *out = NULL;
    if (t->ndim >= DT_MAX_DIMS)
        return dt_fail(DT_ERR_ARG, "tensors have at most %d dims", DT_MAX_DIMS);
    dt_status st = dt_normalize_dim(&dim, t->ndim + 1);
    if (st)
        return st;
    int64_t shape[DT_MAX_DIMS], stride[DT_MAX_DIMS];
    for (int d = 0, s = 0; d <= t->ndim; d++) {
        if (d == dim) {
            shape[d] = 1;
            stride[d] = s < t->ndim ? t->stride[s] * t->shape[s] : 1;
        } else {
            shape[d] = t->shape[s];
            stride[d] = t->stride[s];
            s++;
        }
    }
    return new_header(t->storage, t->dtype, t->ndim + 1, shape, stride, t->offset, out);
}

dt_status dt_expand(dt_tensor *t, int ndim, const int64_t *shape, dt_tensor **out)
{
    *out = NULL;
    if (ndim < t->ndim || ndim > DT_MAX_DIMS) {
        return dt_fail(DT_ERR_SHAPE, "cannot expand a %d-d tensor to %d dims", t->ndim, ndim);
    }
    int64_t rshape[DT_MAX_DIMS], rstride[DT_MAX_DIMS];
    int lead = ndim - t->ndim;
    for (int d = 0; d < ndim; d++) {
        int s = d - lead;
        int64_t have = s >= 0 ? t->shape[s] : 1;
        int64_t want = shape[d] == -1 ? have : shape[d];
        if (s < 0 && shape[d] == -1)
            return dt_fail(DT_ERR_SHAPE, "-1 is not allowed for a new leading dim %d", d + 1);
        if (have == want) {
            rshape[d] = want;
            rstride[d] = s >= 0 ? t->stride[s] : 0;
        } else if (have == 1 && want >= 0) {
            rshape[d] = want;
            rstride[d] = 0;
        } else {
            char a[128], b[128];
            return dt_fail(DT_ERR_SHAPE, "cannot expand shape %s to %s (dim %d: %lld vs %lld)",
                           dt_shape_str(t->shape, t->ndim, a, sizeof a),
                           dt_shape_str(shape, ndim, b, sizeof b), d + 1, (long long)have,
                           (long long)want);
        }
    }
    return new_header(t->storage, t->dtype, ndim, rshape, rstride, t->offset, out);
}

dt_status dt_flatten(dt_tensor *t, int start_dim, int end_dim, dt_tensor **out)
{
    *out = NULL;
    if (t->ndim == 0) {
        int64_t one = 1;
        return dt_reshape(t, 1, &one, out);
    }
    dt_status st = dt_normalize_dim(&start_dim, t->ndim);
    if (st == DT_OK)
        st = dt_normalize_dim(&end_dim, t->ndim);
    if (st)
        return st;
    if (start_dim > end_dim)
        return dt_fail(DT_ERR_ARG, "flatten: start dim %d is after end dim %d", start_dim + 1,
                       end_dim + 1);
    int64_t shape[DT_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (d > start_dim && d <= end_dim)
            shape[n - 1] *= t->shape[d];
        else
            shape[n++] = t->shape[d];
    }
    return dt_reshape(t, n, shape, out);
}

dt_status dt_broadcast_shape(int na, const int64_t *sa, int nb, const int64_t *sb, int *nout,
                             int64_t *sout)
{
    int n = na > nb ? na : nb;
    for (int d = 0; d < n; d++) {
        int ia = d - (n - na), ib = d - (n - nb);
        int64_t a = ia >= 0 ? sa[ia] : 1, b = ib >= 0 ? sb[ib] : 1;
        if (a != b && a != 1 && b != 1) {
            char x[128], y[128];
            return dt_fail(DT_ERR_SHAPE, "shapes %s and %s cannot be broadcast (dim %d: %lld vs %lld)",
                           dt_shape_str(sa, na, x, sizeof x), dt_shape_str(sb, nb, y, sizeof y),
                           d + 1, (long long)a, (long long)b);
        }
        sout[d] = a == 1 ? b : a;
    }
    *nout = n;
    return DT_OK;
}

/* ------------------------------------------------------------------ copies */

#define COPY_RUN(DST_T, SRC_T, CONVERT)                                               \
    do {                                                                              \
        DST_T *dp = (DST_T *)dt_data(dst);                                            \
        const SRC_T *sp = (const SRC_T *)dt_data(src_b);                              \
        while (dt_iter_next(&it)) {                                                   \
            DST_T *d = dp + it.offset[0];                                             \
            const SRC_T *s = sp + it.offset[1];                                       \
            int64_t ds = it.inner_stride[0], ss = it.inner_stride[1];                 \
            for (int64_t k = 0; k < it.inner; k++)                                    \
                d[k * ds] = CONVERT(s[k * ss]);                                       \
        }                                                                             \
    } while (0)

#define AS_IS(v) (v)
#define F2I(v) double_to_i64((double)(v))
#define F2U8(v) ((uint8_t)double_to_i64((double)(v)))

dt_status dt_copy_(dt_tensor *dst, const dt_tensor *src)
{
    dt_tensor *src_b, *tmp;
    dt_status st = dt_check_writable(dst);
    if (st == DT_OK && dt_same_view(dst, src))
        return DT_OK;
    if (st == DT_OK)
        st = dt_source_for_write(dst, src, &src, &tmp);
    if (st == DT_OK) {
        st = dt_expand((dt_tensor *)src, dst->ndim, dst->shape, &src_b);
        dt_tensor_release(tmp);   /* src_b keeps the copy's storage alive */
    }
    if (st)
        return st;
    dt_iter it;
    const dt_tensor *ts[2] = {dst, src_b};
    dt_iter_init(&it, 2, ts);
    switch (dst->dtype * DT_NUM_DTYPES + src_b->dtype) {
    case DT_FLOAT32 * DT_NUM_DTYPES + DT_FLOAT32: COPY_RUN(float, float, AS_IS); break;
    case DT_FLOAT32 * DT_NUM_DTYPES + DT_INT64: COPY_RUN(float, int64_t, (float)); break;
    case DT_FLOAT32 * DT_NUM_DTYPES + DT_UINT8: COPY_RUN(float, uint8_t, (float)); break;
    case DT_INT64 * DT_NUM_DTYPES + DT_FLOAT32: COPY_RUN(int64_t, float, F2I); break;
    case DT_INT64 * DT_NUM_DTYPES + DT_INT64: COPY_RUN(int64_t, int64_t, AS_IS); break;
    case DT_INT64 * DT_NUM_DTYPES + DT_UINT8: COPY_RUN(int64_t, uint8_t, (int64_t)); break;
    case DT_UINT8 * DT_NUM_DTYPES + DT_FLOAT32: COPY_RUN(uint8_t, float, F2U8); break;
    case DT_UINT8 * DT_NUM_DTYPES + DT_INT64: COPY_RUN(uint8_t, int64_t, (uint8_t)); break;
    case DT_UINT8 * DT_NUM_DTYPES + DT_UINT8: COPY_RUN(uint8_t, uint8_t, AS_IS); break;
    }
    dt_tensor_release(src_b);
    dst->storage->version++;
    return DT_OK;
}

dt_status dt_fill_(dt_tensor *t, double value)
{
    dt_iter it;
    const dt_tensor *ts[1] = {t};
    dt_iter_init(&it, 1, ts);
    while (dt_iter_next(&it)) {
        int64_t s = it.inner_stride[0];
        switch (t->dtype) {
        case DT_FLOAT32: {
            float *p = dt_f32(t) + it.offset[0], v = (float)value;
            for (int64_t k = 0; k < it.inner; k++)
                p[k * s] = v;
            break;
        }
        case DT_INT64: {
            int64_t *p = dt_i64(t) + it.offset[0], v = double_to_i64(value);
            for (int64_t k = 0; k < it.inner; k++)
                p[k * s] = v;
            break;
        }
        case DT_UINT8: {
            uint8_t *p = dt_u8(t) + it.offset[0], v = (uint8_t)double_to_i64(value);
            for (int64_t k = 0; k < it.inner; k++)
                p[k * s] = v;
            break;
        }
        }
    }
    t->storage->version++;
    return DT_OK;
}

dt_status dt_to_dtype(const dt_tensor *t, dt_dtype dtype, dt_tensor **out)
{
    dt_status st = dt_zeros(dtype, t->ndim, t->shape, out);
    if (st)
        return st;
    return dt_copy_(*out, t);
}

dt_status dt_clone(const dt_tensor *t, dt_tensor **out) { return dt_to_dtype(t, t->dtype, out); }

dt_status dt_contiguous(dt_tensor *t, dt_tensor **out)
{
    if (dt_is_contiguous(t)) {
        dt_tensor_retain(t);
        *out = t;
        return DT_OK;
    }
    return dt_clone(t, out);
}
