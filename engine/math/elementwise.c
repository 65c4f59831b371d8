/* elementwise.c - binary/unary maths, clamp and where, with NumPy broadcasting.
 *
 * Every op follows one plan: pick the compute dtype (type promotion),
 * convert operands whose dtype differs (rare: mixed-dtype maths), expand
 * them to the broadcast shape as stride-0 views, then run a typed "run
 * kernel" over the runs of a dt_iter. The run kernels are the CPU layer's
 * (cpu/ew_runs.h, compiled for each ISA; cpu.h): one gets the first
 * element of a run of each tensor and their element strides.
 *
 * Large tensors are split into fixed pieces of runs (or of one long run)
 * that OpenMP threads take; each element is computed independently, so the
 * result is bitwise the same for any number of threads.
 */
#include "distill.h"
#include "autograd/op.h"
#include "core/overlap.h"
#include "elementwise_fused.h"
#include "cpu/cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PARALLEL_MIN 32768   /* elements below which threads cost more than they save */
#define PIECE 16384          /* elements per parallel work item */

/* ------------------------------------------------------------------ driver */

/* Put `it` at run number `run` (0-based, in iteration order). */
static void iter_seek(dt_iter *it, int64_t run, int64_t nruns)
{
    for (int j = 0; j < it->ntensors; j++)
        it->offset[j] = 0;
    for (int i = 0; i < it->ndim; i++) {
        int64_t c = run % it->shape[i];
        run /= it->shape[i];
        it->counter[i] = c;
        for (int j = 0; j < it->ntensors; j++)
            it->offset[j] += c * it->strides[j][i];
    }
    it->started = false;   /* the next dt_iter_next returns this run */
    it->remaining = nruns;
}

static void call_run(const dt_iter *it, char *const *base, const size_t *esize, int64_t k0,
                     int64_t n, dt_cpu_run_fn fn, const void *ctx)
{
    char *p[4];
    for (int j = 0; j < it->ntensors; j++)
        p[j] = base[j] + (it->offset[j] + k0 * it->inner_stride[j]) * (int64_t)esize[j];
    fn(n, p, it->inner_stride, ctx);
}

/* Apply fn to every element of ts[0..nt) (all of one shape). */
static void for_each(int nt, const dt_tensor *const *ts, dt_cpu_run_fn fn, const void *ctx)
{
    int64_t numel = dt_numel(ts[0]);
    if (numel == 0)
        return;
    dt_iter it;
    dt_iter_init(&it, nt, ts);
    char *base[4];
    size_t esize[4];
    for (int j = 0; j < nt; j++) {
        base[j] = (char *)dt_data(ts[j]);
        esize[j] = dt_dtype_size(ts[j]->dtype);
    }
    int64_t runs = it.remaining, inner = it.inner;
    if (numel < PARALLEL_MIN) {
        while (dt_iter_next(&it))
            call_run(&it, base, esize, 0, inner, fn, ctx);
    } else if (inner >= PIECE) {
        /* Long runs: cut each into pieces. */
        int64_t per_run = (inner + PIECE - 1) / PIECE, items = runs * per_run;
#pragma omp parallel for schedule(static)
        for (int64_t q = 0; q < items; q++) {
            dt_iter local = it;
            iter_seek(&local, q / per_run, 1);
            int64_t k0 = (q % per_run) * PIECE;
            int64_t n = inner - k0 < PIECE ? inner - k0 : PIECE;
            call_run(&local, base, esize, k0, n, fn, ctx);
        }
    } else {
        /* Many short runs: group them. */
        int64_t per_item = PIECE / inner, items = (runs + per_item - 1) / per_item;
#pragma omp parallel for schedule(static)
        for (int64_t q = 0; q < items; q++) {
            dt_iter local = it;
            int64_t first = q * per_item;
            iter_seek(&local, first, runs - first < per_item ? runs - first : per_item);
            while (dt_iter_next(&local))
                call_run(&local, base, esize, 0, inner, fn, ctx);
        }
    }
}

/* ------------------------------------------------------------ type rules */

static bool is_comparison(dt_binop op) { return op >= DT_EQ && op <= DT_GE; }

static dt_dtype promote(dt_dtype a, dt_dtype b)
{
    if (a == DT_FLOAT32 || b == DT_FLOAT32)
        return DT_FLOAT32;
    if (a == DT_INT64 || b == DT_INT64)
        return DT_INT64;
    return DT_UINT8;
}

dt_dtype dt_result_dtype(dt_binop op, dt_dtype a, dt_dtype b)
{
    if (is_comparison(op))
        return DT_UINT8;
    if (op == DT_DIV)
        return DT_FLOAT32;
    return promote(a, b);
}

/* The dtype the arithmetic happens in (comparisons compare in the promoted
 * type; division is always true division in float32). */
static dt_dtype compute_dtype(dt_binop op, dt_dtype a, dt_dtype b)
{
    return op == DT_DIV ? DT_FLOAT32 : promote(a, b);
}

static dt_status check_binop(dt_binop op)
{
    if ((int)op < 0 || (int)op >= DT_NUM_BINOPS)
        return dt_fail(DT_ERR_ARG, "unknown binary op %d", (int)op);
    return DT_OK;
}

/* t itself (retained) when it already has `dtype`, else a converted copy. */
static dt_status as_dtype(const dt_tensor *t, dt_dtype dtype, dt_tensor **out)
{
    if (t->dtype == dtype) {
        dt_tensor_retain((dt_tensor *)t);
        *out = (dt_tensor *)t;
        return DT_OK;
    }
    return dt_to_dtype(t, dtype, out);
}

/* Integer pow: a negative exponent has no integer result. */
static dt_status check_int_exponent(const dt_tensor *e)
{
    if (e->dtype != DT_INT64)
        return DT_OK;
    dt_iter it;
    const dt_tensor *ts[1] = {e};
    dt_iter_init(&it, 1, ts);
    const int64_t *p = dt_i64(e);
    bool negative = false;
    while (dt_iter_next(&it))
        for (int64_t k = 0; k < it.inner; k++)
            negative |= p[it.offset[0] + k * it.inner_stride[0]] < 0;
    if (negative)
        return dt_fail(DT_ERR_ARG, "integers to negative integer powers are not allowed "
                       "(convert to float first)");
    return DT_OK;
}

/* ----------------------------------------------------------- binary entry */

/* out <- a op b, where out already has the broadcast shape and the result
 * dtype; a and b are converted to the compute dtype and expanded. */
static dt_status binary_into(dt_binop op, const dt_tensor *a, const dt_tensor *b, dt_tensor *out)
{
    dt_dtype ct = compute_dtype(op, a->dtype, b->dtype);
    dt_tensor *ac = NULL, *bc = NULL, *ae = NULL, *be = NULL;
    dt_status st = as_dtype(a, ct, &ac);
    if (st == DT_OK)
        st = as_dtype(b, ct, &bc);
    if (st == DT_OK && op == DT_POW)
        st = check_int_exponent(bc);
    if (st == DT_OK)
        st = dt_expand(ac, out->ndim, out->shape, &ae);
    if (st == DT_OK)
        st = dt_expand(bc, out->ndim, out->shape, &be);
    if (st == DT_OK) {
        const dt_tensor *ts[3] = {out, ae, be};
        for_each(3, ts, dt_cpu()->ew.binary[op][ct], NULL);
    }
    dt_tensor_release(ac);
    dt_tensor_release(bc);
    dt_tensor_release(ae);
    dt_tensor_release(be);
    return st;
}

dt_status dt_binary(dt_binop op, const dt_tensor *a, const dt_tensor *b, dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_ELEMENTWISE);
    *out = NULL;
    dt_status st = check_binop(op);
    int nd;
    int64_t shape[DT_MAX_DIMS];
    if (st == DT_OK)
        st = dt_broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, &nd, shape);
    if (st)
        return st;
    dt_tensor *r;
    st = dt_empty(dt_result_dtype(op, a->dtype, b->dtype), nd, shape, &r);
    if (st == DT_OK)
        st = binary_into(op, a, b, r);
    if (st) {
        dt_tensor_release(r);
        return st;
    }
    *out = r;
    return DT_OK;
}

/* The dtype a Lua number takes next to a tensor of dtype t: an integer keeps
 * the tensor's dtype, a float makes the op float32. Comparing a uint8
 * tensor with an integer outside 0..255 happens in int64, so x < 300 is
 * true rather than a comparison with 300 wrapped to 44. */
static dt_dtype scalar_dtype(dt_binop op, dt_dtype t, double s, bool is_int)
{
    if (!is_int)
        return DT_FLOAT32;
    if (t == DT_UINT8 && (s < 0 || s > 255) &&
        (is_comparison(op) || op == DT_MAXIMUM || op == DT_MINIMUM))
        return DT_INT64;
    return t;
}

static dt_status scalar_op(dt_binop op, const dt_tensor *a, double s, bool is_int, bool scalar_first,
                           dt_tensor **out)
{
    *out = NULL;
    dt_tensor *sc;
    dt_status st = dt_scalar(scalar_dtype(op, a->dtype, s, is_int), s, &sc);
    if (st)
        return st;
    st = scalar_first ? dt_binary(op, sc, a, out) : dt_binary(op, a, sc, out);
    if (st == DT_OK && scalar_dtype(op, a->dtype, s, is_int) != a->dtype &&
        (op == DT_MAXIMUM || op == DT_MINIMUM) && is_int) {
        /* maximum(uint8, 300) computed in int64: an integer scalar keeps the
         * tensor's dtype, so convert back. */
        dt_tensor *c;
        st = dt_to_dtype(*out, a->dtype, &c);
        dt_tensor_release(*out);
        *out = st == DT_OK ? c : NULL;
    }
    dt_tensor_release(sc);
    return st;
}

dt_status dt_binary_scalar(dt_binop op, const dt_tensor *a, double s, bool scalar_is_int,
                           dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_ELEMENTWISE);
    return scalar_op(op, a, s, scalar_is_int, false, out);
}

dt_status dt_scalar_binary(dt_binop op, double s, bool scalar_is_int, const dt_tensor *a,
                           dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_ELEMENTWISE);
    return scalar_op(op, a, s, scalar_is_int, true, out);
}

dt_status dt_binary_(dt_binop op, dt_tensor *a, const dt_tensor *b)
{
    DT_PROF_SCOPE(DT_PROF_ELEMENTWISE);
    dt_status st = check_binop(op);
    if (st == DT_OK)
        st = dt_check_writable(a);
    int nd;
    int64_t shape[DT_MAX_DIMS];
    if (st == DT_OK)
        st = dt_broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, &nd, shape);
    if (st)
        return st;
    bool fits = nd == a->ndim;
    for (int d = 0; d < nd && fits; d++)
        fits = shape[d] == a->shape[d];
    if (!fits) {
        char x[128], y[128];
        return dt_fail(DT_ERR_SHAPE, "in-place: the operand of shape %s cannot be broadcast to "
                       "the target's shape %s", dt_shape_str(b->shape, b->ndim, x, sizeof x),
                       dt_shape_str(a->shape, a->ndim, y, sizeof y));
    }
    dt_tensor *tmp = NULL;
    if (dt_result_dtype(op, a->dtype, b->dtype) != a->dtype ||
        compute_dtype(op, a->dtype, b->dtype) != a->dtype) {
        /* The result needs another dtype: compute it, then cast into a. */
        st = dt_binary(op, a, b, &tmp);
        if (st == DT_OK)
            st = dt_copy_(a, tmp);
        dt_tensor_release(tmp);
        return st;
    }
    /* An operand that views a's memory differently would be read after
     * parts of it were overwritten: work from a copy. */
    const dt_tensor *bsrc;
    st = dt_source_for_write(a, b, &bsrc, &tmp);
    if (st)
        return st;
    st = binary_into(op, a, bsrc, a);
    dt_tensor_release(tmp);
    a->storage->version++;
    return st;
}

dt_status dt_binary_scalar_(dt_binop op, dt_tensor *a, double s)
{
    DT_PROF_SCOPE(DT_PROF_ELEMENTWISE);
    /* No Lua type to go by: an integral value on an integer tensor stays
     * integer maths; anything else computes in float32 and casts back. */
    bool is_int = a->dtype != DT_FLOAT32 && s == floor(s) && fabs(s) < 9.2e18;
    dt_tensor *sc;
    dt_status st = dt_scalar(is_int ? a->dtype : DT_FLOAT32, s, &sc);
    if (st)
        return st;
    if (is_int && a->dtype == DT_UINT8 && (s < 0 || s > 255) &&
        (is_comparison(op) || op == DT_MAXIMUM || op == DT_MINIMUM)) {
        dt_tensor_release(sc);
        st = dt_scalar(DT_INT64, s, &sc);
        if (st)
            return st;
    }
    st = dt_binary_(op, a, sc);
    dt_tensor_release(sc);
    return st;
}

static dt_status check_unop(dt_unop op)
{
    if ((int)op < 0 || (int)op >= DT_NUM_UNOPS)
        return dt_fail(DT_ERR_ARG, "unknown unary op %d", (int)op);
    return DT_OK;
}

static dt_dtype unary_dtype(dt_unop op, dt_dtype in)
{
    return dt_cpu()->ew.unary[op][in] ? in : DT_FLOAT32;
}

/* out <- op(a); out has a's shape and unary_dtype's dtype. */
static dt_status unary_into(dt_unop op, const dt_tensor *a, dt_tensor *out)
{
    dt_dtype ct = unary_dtype(op, a->dtype);
    dt_tensor *ac;
    dt_status st = as_dtype(a, ct, &ac);
    if (st)
        return st;
    const dt_tensor *ts[2] = {out, ac};
    for_each(2, ts, dt_cpu()->ew.unary[op][ct], NULL);
    dt_tensor_release(ac);
    return DT_OK;
}

dt_status dt_unary(dt_unop op, const dt_tensor *a, dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_ELEMENTWISE);
    *out = NULL;
    dt_status st = check_unop(op);
    if (st)
        return st;
    dt_tensor *r;
    st = dt_empty(unary_dtype(op, a->dtype), a->ndim, a->shape, &r);
    if (st == DT_OK)
        st = unary_into(op, a, r);
    if (st) {
        dt_tensor_release(r);
        return st;
    }
    *out = r;
    return DT_OK;
}

dt_status dt_unary_(dt_unop op, dt_tensor *a)
{
    DT_PROF_SCOPE(DT_PROF_ELEMENTWISE);
    dt_status st = check_unop(op);
    if (st == DT_OK)
        st = dt_check_writable(a);
    if (st)
        return st;
    if (unary_dtype(op, a->dtype) != a->dtype) {
        /* e.g. exp_ on an int64 tensor: compute in float, truncate back. */
        dt_tensor *tmp;
        st = dt_unary(op, a, &tmp);
        if (st == DT_OK)
            st = dt_copy_(a, tmp);
        dt_tensor_release(tmp);
        return st;
    }
    st = unary_into(op, a, a);
    a->storage->version++;
    return st;
}

/* Integer bounds: the smallest integer >= lo and the largest <= hi,
 * saturated to the dtype's range. */
static int64_t int_bound(double v, bool lower, dt_dtype dtype)
{
    double lo_lim = dtype == DT_UINT8 ? 0 : -9.2233720368547758e18;
    double hi_lim = dtype == DT_UINT8 ? 255 : 9.2233720368547748e18;
    v = lower ? ceil(v) : floor(v);
    if (v <= lo_lim)
        return dtype == DT_UINT8 ? 0 : INT64_MIN;
    if (v >= hi_lim)
        return dtype == DT_UINT8 ? 255 : INT64_MAX;
    return (int64_t)v;
}

static dt_status clamp_into(const dt_tensor *a, double lo, double hi, dt_tensor *out)
{
    if (lo != lo || hi != hi)
        return dt_fail(DT_ERR_ARG, "clamp bounds must not be NaN");
    dt_cpu_clamp_ctx c = {(float)lo, (float)hi, int_bound(lo, true, a->dtype),
                   int_bound(hi, false, a->dtype)};
    /* An integer range with lo > hi after rounding: everything becomes hi, as
     * max-then-min gives for floats. */
    const dt_tensor *ts[2] = {out, a};
    for_each(2, ts, dt_cpu()->ew.clamp[a->dtype], &c);
    return DT_OK;
}

dt_status dt_clamp(const dt_tensor *a, double lo, double hi, dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_ELEMENTWISE);
    *out = NULL;
    dt_tensor *r;
    dt_status st = dt_empty(a->dtype, a->ndim, a->shape, &r);
    if (st == DT_OK)
        st = clamp_into(a, lo, hi, r);
    if (st) {
        dt_tensor_release(r);
        return st;
    }
    *out = r;
    return DT_OK;
}

dt_status dt_clamp_(dt_tensor *a, double lo, double hi)
{
    DT_PROF_SCOPE(DT_PROF_ELEMENTWISE);
    dt_status st = dt_check_writable(a);
    if (st == DT_OK)
        st = clamp_into(a, lo, hi, a);
    if (st == DT_OK)
        a->storage->version++;
    return st;
}

dt_status dt_where(const dt_tensor *cond, const dt_tensor *a, const dt_tensor *b, dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_ELEMENTWISE);
    *out = NULL;
    if (cond->dtype != DT_UINT8)
        return dt_fail(DT_ERR_DTYPE, "condition must be a uint8 tensor (e.g. a comparison "
                       "result), got %s", dt_dtype_name(cond->dtype));
    int n1, nd;
    int64_t s1[DT_MAX_DIMS], shape[DT_MAX_DIMS];
    dt_status st = dt_broadcast_shape(cond->ndim, cond->shape, a->ndim, a->shape, &n1, s1);
    if (st == DT_OK)
        st = dt_broadcast_shape(n1, s1, b->ndim, b->shape, &nd, shape);
    if (st)
        return st;
    dt_dtype dtype = promote(a->dtype, b->dtype);
    dt_tensor *r = NULL, *ac = NULL, *bc = NULL, *ce = NULL, *ae = NULL, *be = NULL;
    st = dt_empty(dtype, nd, shape, &r);
    if (st == DT_OK)
        st = as_dtype(a, dtype, &ac);
    if (st == DT_OK)
        st = as_dtype(b, dtype, &bc);
    if (st == DT_OK)
        st = dt_expand((dt_tensor *)cond, nd, shape, &ce);
    if (st == DT_OK)
        st = dt_expand(ac, nd, shape, &ae);
    if (st == DT_OK)
        st = dt_expand(bc, nd, shape, &be);
    if (st == DT_OK) {
        const dt_tensor *ts[4] = {r, ce, ae, be};
        for_each(4, ts, dt_cpu()->ew.where[dtype], NULL);
    }
    dt_tensor_release(ac);
    dt_tensor_release(bc);
    dt_tensor_release(ce);
    dt_tensor_release(ae);
    dt_tensor_release(be);
    if (st) {
        dt_tensor_release(r);
        return st;
    }
    *out = r;
    return DT_OK;
}

/* --------------------------------------------------------- fused kernels */

dt_status dt_relu_grad(const dt_tensor *out, const dt_tensor *grad, dt_tensor **dx)
{
    DT_PROF_SCOPE(DT_PROF_ELEMENTWISE);
    *dx = NULL;
    if (out->dtype != DT_FLOAT32 || grad->dtype != DT_FLOAT32)
        return dt_fail(DT_ERR_DTYPE, "relu_grad: expected float32 tensors, got %s and %s",
                       dt_dtype_name(out->dtype), dt_dtype_name(grad->dtype));
    if (!dt_same_shape(out, grad))
        return dt_fail(DT_ERR_SHAPE, "relu_grad: output and gradient shapes differ");
    dt_tensor *r;
    dt_status st = dt_empty(DT_FLOAT32, out->ndim, out->shape, &r);
    if (st)
        return st;
    const dt_tensor *ts[3] = {r, out, grad};
    for_each(3, ts, dt_cpu()->ew.relu_grad, NULL);
    *dx = r;
    return DT_OK;
}
