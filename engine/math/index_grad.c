/* index_grad.c - indexing ops on the tape: index_select, gather,
 * scatter_add, masked_fill, cat, stack, repeat.
 *
 * The forward of each op is the plain kernel of index.c; the backward sits
 * next to it. Gathering ops scatter their gradient back (scatter_add into
 * zeros, which also sums repeated indices); joining ops cut it apart. */
#include "distill.h"
#include "autograd/op.h"

#include <string.h>

/* A zero gradient of input i's shape. */
static dt_status zeros_for_input(const dt_node *n, int i, dt_tensor **out)
{
    return dt_zeros(DT_FLOAT32, n->input_ndims[i], n->input_shapes[i], out);
}

/* Only float32 results carry gradients (indexing keeps the dtype). */
static bool float_result(const dt_tensor *t) { return t->dtype == DT_FLOAT32; }

/* ------------------------------------------------------------ index_select */

/* grad_a = zeros, then grad slab i added into slab index[i] along dim (a
 * scatter_add with the index broadcast over the other dims, so repeated
 * indices accumulate). saved[0] = the 0-based index. */
static dt_status index_select_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    dt_tensor *index, *iv = NULL, *ie = NULL, *acc = NULL;
    dt_status st = dt_node_saved(n, 0, &index);
    if (st)
        return st;
    int dim = (int)n->iarg[0], nd = g->ndim;
    int64_t shape[DT_MAX_DIMS];
    for (int d = 0; d < nd; d++)
        shape[d] = d == dim ? g->shape[d] : 1;
    st = dt_reshape(index, nd, shape, &iv);
    if (st == DT_OK)
        st = dt_expand(iv, nd, g->shape, &ie);
    if (st == DT_OK)
        st = zeros_for_input(n, 0, &acc);
    if (st == DT_OK)
        st = dt_scatter_add_(acc, dim, ie, g);
    dt_tensor_release(iv);
    dt_tensor_release(ie);
    if (st) {
        dt_tensor_release(acc);
        return st;
    }
    gi[0] = acc;
    return DT_OK;
}

dt_status dt_f_index_select(const dt_tensor *a, int dim, const dt_tensor *index, dt_tensor **out)
{
    dt_node *n;
    dt_status st = dt_index_select(a, dim, index, out);
    if (st || !float_result(*out))
        return st;
    st = dt_record_or_drop("IndexSelectBackward", index_select_backward, 1, &a, 1, &index, out, &n);
    if (st == DT_OK && n) {
        dt_normalize_dim(&dim, a->ndim);
        n->iarg[0] = dim;
    }
    return st;
}

/* ------------------------------------------------------- gather / scatter */

/* grad_a = scatter_add(zeros, dim, index, g). saved[0] = index. */
static dt_status gather_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    dt_tensor *index, *acc;
    dt_status st = dt_node_saved(n, 0, &index);
    if (st == DT_OK)
        st = zeros_for_input(n, 0, &acc);
    if (st)
        return st;
    if ((st = dt_scatter_add_(acc, (int)n->iarg[0], index, g))) {
        dt_tensor_release(acc);
        return st;
    }
    gi[0] = acc;
    return DT_OK;
}

dt_status dt_f_gather(const dt_tensor *a, int dim, const dt_tensor *index, dt_tensor **out)
{
    dt_node *n;
    dt_status st = dt_gather(a, dim, index, out);
    if (st || !float_result(*out))
        return st;
    st = dt_record_or_drop("GatherBackward", gather_backward, 1, &a, 1, &index, out, &n);
    if (st == DT_OK && n) {
        if (a->ndim)
            dt_normalize_dim(&dim, a->ndim);
        n->iarg[0] = a->ndim ? dim : 0;
    }
    return st;
}

/* out = a + scatter(src): a's gradient passes through; src's is g read
 * back at the scattered positions (a gather), zero where src reaches
 * beyond the index's extent. saved[0] = index. */
static dt_status scatter_add_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    dt_tensor *index;
    dt_status st = dt_node_saved(n, 0, &index);
    if (st)
        return st;
    if (n->needs_grad[0]) {
        dt_tensor_retain((dt_tensor *)g);
        gi[0] = (dt_tensor *)g;
    }
    if (!n->needs_grad[1])
        return DT_OK;
    dt_tensor *picked, *full = NULL, *window = NULL;
    if ((st = dt_gather(g, (int)n->iarg[0], index, &picked)))
        return st;
    bool same = picked->ndim == n->input_ndims[1] &&
                memcmp(picked->shape, n->input_shapes[1], sizeof(int64_t) * picked->ndim) == 0;
    if (same) {
        gi[1] = picked;
        return DT_OK;
    }
    /* src larger than index: copy into the leading corner of zeros */
    st = zeros_for_input(n, 1, &full);
    dt_tensor *view = full;
    dt_tensor_retain(view);
    for (int d = 0; st == DT_OK && d < picked->ndim; d++) {
        st = dt_narrow(view, d, 0, picked->shape[d], &window);
        dt_tensor_release(view);
        view = st == DT_OK ? window : NULL;
    }
    if (st == DT_OK)
        st = dt_copy_(view, picked);
    dt_tensor_release(view);
    dt_tensor_release(picked);
    if (st) {
        dt_tensor_release(full);
        return st;
    }
    gi[1] = full;
    return DT_OK;
}

dt_status dt_f_scatter_add(const dt_tensor *a, int dim, const dt_tensor *index,
                           const dt_tensor *src, dt_tensor **out)
{
    dt_node *n;
    dt_status st = dt_clone(a, out);
    if (st == DT_OK)
        st = dt_scatter_add_(*out, dim, index, src);
    if (st) {
        dt_tensor_release(*out);
        *out = NULL;
        return st;
    }
    if (!float_result(*out))
        return DT_OK;
    const dt_tensor *inputs[2] = {a, src};
    st = dt_record_or_drop("ScatterAddBackward", scatter_add_backward, 2, inputs, 1, &index, out,
                           &n);
    if (st == DT_OK && n) {
        if (a->ndim)
            dt_normalize_dim(&dim, a->ndim);
        n->iarg[0] = a->ndim ? dim : 0;
    }
    return st;
}

/* ------------------------------------------------------------ masked_fill */

/* The filled positions no longer depend on a. saved[0] = mask. */
static dt_status masked_fill_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    dt_tensor *mask, *r;
    dt_status st = dt_node_saved(n, 0, &mask);
    if (st == DT_OK)
        st = dt_clone(g, &r);
    if (st)
        return st;
    if ((st = dt_masked_fill_(r, mask, 0.0))) {
        dt_tensor_release(r);
        return st;
    }
    gi[0] = r;
    return DT_OK;
}

dt_status dt_f_masked_fill(const dt_tensor *a, const dt_tensor *mask, double value,
                           dt_tensor **out)
{
    dt_status st = dt_clone(a, out);
    if (st == DT_OK)
        st = dt_masked_fill_(*out, mask, value);
    if (st) {
        dt_tensor_release(*out);
        *out = NULL;
        return st;
    }
    if (!float_result(*out))
        return DT_OK;
    return dt_record_or_drop("MaskedFillBackward", masked_fill_backward, 1, &a, 1, &mask, out,
                             NULL);
}

/* ------------------------------------------------------------- cat / stack */

/* Input i's gradient is its window of g along dim. 1-d empty inputs, which
 * cat skips, get none (a zero gradient). iarg[0] = dim. */
static dt_status cat_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    int dim = (int)n->iarg[0];
    int64_t pos = 0;
    for (int i = 0; i < n->ninputs; i++) {
        if (n->input_ndims[i] != g->ndim)   /* a skipped 1-d empty tensor */
            continue;
        int64_t len = n->input_shapes[i][dim];
        if (n->needs_grad[i]) {
            dt_tensor *window;
            dt_status st = dt_narrow((dt_tensor *)g, dim, pos, len, &window);
            if (st)
                return st;
            gi[i] = window;
        }
        pos += len;
    }
    return DT_OK;
}

dt_status dt_f_cat(int n, const dt_tensor *const *ts, int dim, dt_tensor **out)
{
    dt_node *node;
    dt_status st = dt_cat(n, ts, dim, out);
    if (st || !float_result(*out))
        return st;
    st = dt_record_or_drop("CatBackward", cat_backward, n, ts, 0, NULL, out, &node);
    if (st == DT_OK && node) {
        dt_normalize_dim(&dim, (*out)->ndim);
        node->iarg[0] = dim;
    }
    return st;
}

/* Input i's gradient is slice i of g along dim. iarg[0] = dim. */
static dt_status stack_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    for (int i = 0; i < n->ninputs; i++) {
        if (!n->needs_grad[i])
            continue;
        dt_status st = dt_select((dt_tensor *)g, (int)n->iarg[0], i, &gi[i]);
        if (st)
            return st;
    }
    return DT_OK;
}

dt_status dt_f_stack(int n, const dt_tensor *const *ts, int dim, dt_tensor **out)
{
    dt_node *node;
    dt_status st = dt_stack(n, ts, dim, out);
    if (st || !float_result(*out))
        return st;
    st = dt_record_or_drop("StackBackward", stack_backward, n, ts, 0, NULL, out, &node);
    if (st == DT_OK && node) {
        dt_normalize_dim(&dim, (*out)->ndim);
        node->iarg[0] = dim;
    }
    return st;
}

/* ------------------------------------------------------------------ repeat */

/* Sum g (shape (r0*s0, r1*s1, ...), where s is the input's shape with
 * leading 1s) over the copies: viewed as (r0, s0, r1, s1, ...) the copies
 * are the r dims, reduced in one pass. Dims with r == 1 are not split,
 * and when even that needs more than DT_MAX_DIMS dims, the dims are
 * reduced one at a time as (before, r, s * after). iarg = repeats. */
static dt_status repeat_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    int nd = g->ndim, lead = nd - n->input_ndims[0];
    int64_t s[DT_MAX_DIMS], split[DT_MAX_DIMS];
    int ns = 0;
    dt_reduce_opts o;
    dt_reduce_opts_init(&o);
    for (int d = 0; d < nd; d++) {
        s[d] = d < lead ? 1 : n->input_shapes[0][d - lead];
        if (n->iarg[d] != 1)
            ns++;
    }
    dt_tensor *cur = NULL, *next = NULL, *view = NULL;
    dt_status st = DT_OK;
    if (nd + ns <= DT_MAX_DIMS) {
        int k = 0;
        for (int d = 0; d < nd; d++) {
            if (n->iarg[d] != 1) {
                o.dims[o.ndims++] = k;
                split[k++] = n->iarg[d];
            }
            split[k++] = s[d];
        }
        st = dt_reshape((dt_tensor *)g, k, split, &view);
        if (st == DT_OK)
            st = o.ndims ? dt_reduce(DT_RED_SUM, view, &o, &cur) : dt_clone(view, &cur);
        dt_tensor_release(view);
    } else {
        dt_tensor_retain((dt_tensor *)g);
        cur = (dt_tensor *)g;
        for (int d = 0; st == DT_OK && d < nd; d++) {
            if (n->iarg[d] == 1)
                continue;
            /* cur has dims 0..d-1 already reduced to s, dims d.. still r*s */
            int64_t before = 1, after = 1;
            for (int e = 0; e < d; e++)
                before *= s[e];
            for (int e = d + 1; e < nd; e++)
                after *= s[e] * n->iarg[e];
            int64_t shape3[3] = {before, n->iarg[d], s[d] * after};
            o.ndims = 1;
            o.dims[0] = 1;
            st = dt_reshape(cur, 3, shape3, &view);
            if (st == DT_OK)
                st = dt_reduce(DT_RED_SUM, view, &o, &next);
            dt_tensor_release(view);
            dt_tensor_release(cur);
            cur = st == DT_OK ? next : NULL;
        }
    }
    if (st == DT_OK)
        st = dt_reshape(cur, n->input_ndims[0], n->input_shapes[0], &gi[0]);
    dt_tensor_release(cur);
    return st;
}

dt_status dt_f_repeat(const dt_tensor *a, int ndim, const int64_t *repeats, dt_tensor **out)
{
    dt_node *n;
    dt_status st = dt_repeat(a, ndim, repeats, out);
    if (st || !float_result(*out))
        return st;
    st = dt_record_or_drop("RepeatBackward", repeat_backward, 1, &a, 0, NULL, out, &n);
    if (st == DT_OK && n)
        for (int d = 0; d < ndim; d++)
            n->iarg[d] = repeats[d];
    return st;
}
