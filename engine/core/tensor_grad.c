/* tensor_grad.c - views and copies on the tape: each op's forward is the
 * view itself (tensor.c) and its backward routes the gradient back to the
 * input's geometry. */
#include "distill.h"
#include "autograd/op.h"

#include <string.h>

/* --------------------------------------------------------- shared helpers */

static const int64_t *input_shape(const dt_node *n, int i) { return n->input_shapes[i]; }

/* A zero gradient of input i's shape. */
static dt_status zeros_for_input(const dt_node *n, int i, dt_tensor **out)
{
    return dt_zeros(DT_FLOAT32, n->input_ndims[i], input_shape(n, i), out);
}

dt_status dt_sum_to_shape(const dt_tensor *grad, int ndim, const int64_t *shape, dt_tensor **out)
{
    *out = NULL;
    if (grad->ndim < ndim)
        return dt_fail(DT_ERR_SHAPE, "cannot reduce a %d-d gradient to %d dims", grad->ndim, ndim);
    dt_tensor *acc, *acc_b;
    dt_status st = dt_zeros(DT_FLOAT32, ndim, shape, &acc);
    if (st)
        return st;
    /* Summing through a broadcast (stride-0) view of the result adds every
     * gradient element into the cell it was broadcast from. */
    st = dt_expand(acc, grad->ndim, grad->shape, &acc_b);
    if (st == DT_OK) {
        st = dt_grad_add_into(acc_b, grad);
        dt_tensor_release(acc_b);
    }
    if (st) {
        dt_tensor_release(acc);
        return st;
    }
    *out = acc;
    return DT_OK;
}

/* Record a one-input view op; on failure drop the result. */
static dt_status record_view(const char *name, dt_backward_fn fn, dt_tensor *input, dt_tensor **out,
                             dt_node **node)
{
    return dt_record_or_drop(name, fn, 1, (const dt_tensor *[]){input}, 0, NULL, out, node);
}

/* ------------------------------------------- reshape-like: back to shape */

static dt_status reshape_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    return dt_reshape((dt_tensor *)g, n->input_ndims[0], input_shape(n, 0), &gi[0]);
}

dt_status dt_f_view(dt_tensor *t, int ndim, const int64_t *shape, dt_tensor **out)
{
    dt_status st = dt_view(t, ndim, shape, out);
    return st ? st : record_view("ViewBackward", reshape_backward, t, out, NULL);
}

dt_status dt_f_reshape(dt_tensor *t, int ndim, const int64_t *shape, dt_tensor **out)
{
    dt_status st = dt_reshape(t, ndim, shape, out);
    return st ? st : record_view("ReshapeBackward", reshape_backward, t, out, NULL);
}

dt_status dt_f_squeeze(dt_tensor *t, int dim, dt_tensor **out)
{
    dt_status st = dt_squeeze(t, dim, out);
    return st ? st : record_view("SqueezeBackward", reshape_backward, t, out, NULL);
}

dt_status dt_f_unsqueeze(dt_tensor *t, int dim, dt_tensor **out)
{
    dt_status st = dt_unsqueeze(t, dim, out);
    return st ? st : record_view("UnsqueezeBackward", reshape_backward, t, out, NULL);
}

dt_status dt_f_flatten(dt_tensor *t, int start_dim, int end_dim, dt_tensor **out)
{
    dt_status st = dt_flatten(t, start_dim, end_dim, out);
    return st ? st : record_view("FlattenBackward", reshape_backward, t, out, NULL);
}

/* --------------------------------------------- identity-like: pass through */

static dt_status identity_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    (void)n;
    dt_tensor_retain((dt_tensor *)g);
    gi[0] = (dt_tensor *)g;
    return DT_OK;
}

dt_status dt_f_alias(dt_tensor *t, dt_tensor **out)
{
    dt_status st = dt_alias(t, out);
    return st ? st : record_view("AliasBackward", identity_backward, t, out, NULL);
}

dt_status dt_f_contiguous(dt_tensor *t, dt_tensor **out)
{
    /* An already contiguous tensor is returned as itself, as torch does. */
    if (dt_is_contiguous(t)) {
        dt_tensor_retain(t);
        *out = t;
        return DT_OK;
    }
    dt_status st = dt_clone(t, out);
    return st ? st : record_view("ContiguousBackward", identity_backward, t, out, NULL);
}

dt_status dt_f_clone(dt_tensor *t, dt_tensor **out)
{
    dt_status st = dt_clone(t, out);
    return st ? st : record_view("CloneBackward", identity_backward, t, out, NULL);
}

/* Only float -> float keeps the graph; conversions to integers leave it. */
dt_status dt_f_to_dtype(dt_tensor *t, dt_dtype dtype, dt_tensor **out)
{
    dt_status st = dt_to_dtype(t, dtype, out);
    if (st || dtype != DT_FLOAT32 || t->dtype != DT_FLOAT32)
        return st;
    return record_view("ToBackward", identity_backward, t, out, NULL);
}

/* ------------------------------------------------------ narrow and select */

static dt_status narrow_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    dt_tensor *full, *window;
    dt_status st = zeros_for_input(n, 0, &full);
    if (st)
        return st;
    st = dt_narrow(full, (int)n->iarg[0], n->iarg[1], n->iarg[2], &window);
    if (st == DT_OK) {
        st = dt_copy_(window, g);
        dt_tensor_release(window);
    }
    if (st) {
        dt_tensor_release(full);
        return st;
    }
    gi[0] = full;
    return DT_OK;
}

dt_status dt_f_narrow(dt_tensor *t, int dim, int64_t start, int64_t length, dt_tensor **out)
{
    dt_node *n;
    dt_status st = dt_narrow(t, dim, start, length, out);
    if (st == DT_OK)
        st = record_view("NarrowBackward", narrow_backward, t, out, &n);
    if (st == DT_OK && n) {
        dt_normalize_dim(&dim, t->ndim);
        n->iarg[0] = dim;
        n->iarg[1] = start;
        n->iarg[2] = length;
    }
    return st;
}

static dt_status select_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    dt_tensor *full, *slice;
    dt_status st = zeros_for_input(n, 0, &full);
    if (st)
        return st;
    st = dt_select(full, (int)n->iarg[0], n->iarg[1], &slice);
    if (st == DT_OK) {
        st = dt_copy_(slice, g);
        dt_tensor_release(slice);
    }
    if (st) {
        dt_tensor_release(full);
        return st;
    }
    gi[0] = full;
    return DT_OK;
}

dt_status dt_f_select(dt_tensor *t, int dim, int64_t index, dt_tensor **out)
{
    dt_node *n;
    dt_status st = dt_select(t, dim, index, out);
    if (st == DT_OK)
        st = record_view("SelectBackward", select_backward, t, out, &n);
    if (st == DT_OK && n) {
        dt_normalize_dim(&dim, t->ndim);
        n->iarg[0] = dim;
        n->iarg[1] = index < 0 ? index + t->shape[dim] : index;
    }
    return st;
}

/* --------------------------------------------------- transpose and permute */

static dt_status transpose_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    return dt_transpose((dt_tensor *)g, (int)n->iarg[0], (int)n->iarg[1], &gi[0]);
}

dt_status dt_f_transpose(dt_tensor *t, int dim0, int dim1, dt_tensor **out)
{
    dt_node *n;
    dt_status st = dt_transpose(t, dim0, dim1, out);
    if (st == DT_OK)
        st = record_view("TransposeBackward", transpose_backward, t, out, &n);
    if (st == DT_OK && n) {
        n->iarg[0] = dim0;
        n->iarg[1] = dim1;
    }
    return st;
}

static dt_status permute_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    int inverse[DT_MAX_DIMS];
    for (int i = 0; i < n->input_ndims[0]; i++)
        inverse[n->iarg[i]] = i;
    return dt_permute((dt_tensor *)g, inverse, &gi[0]);
}

dt_status dt_f_permute(dt_tensor *t, const int *dims, dt_tensor **out)
{
    dt_node *n;
    dt_status st = dt_permute(t, dims, out);
    if (st == DT_OK)
        st = record_view("PermuteBackward", permute_backward, t, out, &n);
    if (st == DT_OK && n) {
        for (int i = 0; i < t->ndim; i++) {
            int d = dims[i];
            dt_normalize_dim(&d, t->ndim);
            n->iarg[i] = d;
        }
    }
    return st;
}

/* ------------------------------------------------------------------ expand */

static dt_status expand_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    return dt_sum_to_shape(g, n->input_ndims[0], input_shape(n, 0), &gi[0]);
}

dt_status dt_f_expand(dt_tensor *t, int ndim, const int64_t *shape, dt_tensor **out)
{
    dt_status st = dt_expand(t, ndim, shape, out);
    return st ? st : record_view("ExpandBackward", expand_backward, t, out, NULL);
}
