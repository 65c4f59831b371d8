/* kernel_util.h - internal helpers shared by the float32 kernels of
 * activation.c, distance.c and loss.c: contiguous copies of inputs,
 * fresh gradients shaped like an input, the common preamble of backward
 * functions, lane geometry around one dim, and recording boilerplate.
 * Not part of the public API (distill.h). */
#ifndef DISTILL_KERNEL_UTIL_H
#define DISTILL_KERNEL_UTIL_H

#include "autograd/op.h"

/* A row-major view of t's values: t itself (retained) or a copy. */
static inline dt_status ku_dense(const dt_tensor *t, dt_tensor **out)
{
    return dt_contiguous((dt_tensor *)t, out);
}

/* Row-major views of a and b, in that order, stopping at the first
 * failure (*ac and *bc must start NULL; the caller releases both). */
static inline dt_status ku_dense2(const dt_tensor *a, const dt_tensor *b, dt_tensor **ac,
                                  dt_tensor **bc)
{
    dt_status st = ku_dense(a, ac);
    if (st == DT_OK)
        st = ku_dense(b, bc);
    return st;
}

/* A new contiguous float32 tensor shaped like input i of node n. */
static inline dt_status ku_grad_like_input(const dt_node *n, int i, dt_tensor **out)
{
    return dt_empty(DT_FLOAT32, n->input_ndims[i], n->input_shapes[i], out);
}

/* What a backward function works from: the node's saved tensors
 * (borrowed), row-major views of the first few of them and of grad_out. */
typedef struct ku_backward {
    dt_tensor *saved[3];
    dt_tensor *dense[3];
    dt_tensor *grad;
} ku_backward;

/* The usual start of a backward: fetch saved tensors 0..nsaved-1, make
 * row-major views of saved 0..ndense-1 and of grad_out, then a fresh
 * gradient gi[i] for each of the first ninputs inputs that needs one, in
 * that order, stopping at the first failure. Call ku_backward_end after,
 * whether this failed or not. */
static inline dt_status ku_backward_begin(dt_node *n, const dt_tensor *grad_out,
                                          dt_tensor **gi, int nsaved, int ndense,
                                          int ninputs, ku_backward *b)
{
    *b = (ku_backward){{NULL, NULL, NULL}, {NULL, NULL, NULL}, NULL};
    dt_status st = DT_OK;
    for (int i = 0; i < nsaved && st == DT_OK; i++)
        st = dt_node_saved(n, i, &b->saved[i]);
    for (int i = 0; i < ndense && st == DT_OK; i++)
        st = ku_dense(b->saved[i], &b->dense[i]);
    if (st == DT_OK)
        st = ku_dense(grad_out, &b->grad);
    for (int i = 0; i < ninputs && st == DT_OK; i++)
        if (n->needs_grad[i])
            st = ku_grad_like_input(n, i, &gi[i]);
    return st;
}

/* Releases the views ku_backward_begin made. */
static inline void ku_backward_end(ku_backward *b)
{
    for (int i = 0; i < 3; i++)
        dt_tensor_release(b->dense[i]);
    dt_tensor_release(b->grad);
}

/* A contiguous float32 copy xc of x and a new contiguous float32 tensor y
 * of x's shape; on failure neither is left behind. */
static inline dt_status ku_dense_and_like(const dt_tensor *x, dt_tensor **xc, dt_tensor **y)
{
    dt_status st = ku_dense(x, xc);
    if (st)
        return st;
    st = dt_empty(DT_FLOAT32, x->ndim, x->shape, y);
    if (st)
        dt_tensor_release(*xc);
    return st;
}

/* Record a one-input op whose backward needs `saved`; drops y on failure. */
static inline dt_status ku_record1(const char *name, dt_backward_fn fn, const dt_tensor *x,
                                   const dt_tensor *saved, dt_tensor *y, dt_node **node)
{
    dt_status st = dt_record(name, fn, 1, (const dt_tensor *[]){x}, 1,
                             (const dt_tensor *[]){saved}, y, node);
    if (st)
        dt_tensor_release(y);
    return st;
}

/* Record a two-input op that saves both inputs and, with save_out, its
 * output y too; y is left to the caller (see ku_finish). */
static inline dt_status ku_record2(const char *name, dt_backward_fn fn, const dt_tensor *a,
                                   const dt_tensor *b, bool save_out, dt_tensor *y,
                                   dt_node **node)
{
    return dt_record(name, fn, 2, (const dt_tensor *[]){a, b}, save_out ? 3 : 2,
                     (const dt_tensor *[]){a, b, y}, y, node);
}

/* The end of a forward: release the ntemp temporaries in temps (NULL
 * entries allowed), then on failure drop y and return st, else hand y
 * out. */
static inline dt_status ku_finish(dt_status st, dt_tensor *y, dt_tensor **out, int ntemp,
                                  dt_tensor *const *temps)
{
    for (int i = 0; i < ntemp; i++)
        dt_tensor_release(temps[i]);
    if (st) {
        dt_tensor_release(y);
        return st;
    }
    *out = y;
    return DT_OK;
}

/* A contiguous tensor seen as outer x n x inner around one dim: lane
 * (o, i) holds the n elements o*n*inner + i + k*inner. */
typedef struct ku_lanes {
    int64_t outer, n, inner;
} ku_lanes;

static inline ku_lanes ku_lanes_of(const dt_tensor *t, int dim)
{
    ku_lanes l = {1, 1, 1};
    for (int d = 0; d < t->ndim; d++) {
        if (d < dim)
            l.outer *= t->shape[d];
        else if (d == dim)
            l.n = t->shape[d];
        else
            l.inner *= t->shape[d];
    }
    return l;
}

/* Offset of the first element of lane number `lane` (in outer, inner
 * order). */
static inline int64_t ku_lane_base(const ku_lanes *l, int64_t lane)
{
    return (lane / l->inner) * l->n * l->inner + lane % l->inner;
}

#endif
