/* grad_formula.h - the temporaries of backward formulas written as
 * compositions of the plain (non-recording) ops (elementwise_grad.c,
 * reduce_grad.c; internal). Each helper takes a `tmp` collecting its
 * result for release and stops at the first failure, so a formula reads
 * like maths and is error-checked once at the end (done()). */
#ifndef DISTILL_MATH_GRAD_FORMULA_H
#define DISTILL_MATH_GRAD_FORMULA_H

#include "autograd/op.h"
#include "elementwise_fused.h"

#include <string.h>

#define TMP_MAX 24

typedef struct tmp {
    dt_status st;
    int n;
    dt_tensor *t[TMP_MAX];
} tmp;

/* Keep r, a new reference, for release by done(). */
static inline dt_tensor *hold(tmp *s, dt_tensor *r)
{
    if (s->n == TMP_MAX) {
        dt_tensor_release(r);
        s->st = dt_fail(DT_ERR_STATE, "internal error: too many temporaries in a backward");
        return NULL;
    }
    s->t[s->n++] = r;
    return r;
}

/* Unless something already failed, run `call` (which sets r) and keep r;
 * NULL on failure. The conditional operator sequences the call before r is
 * read (function arguments would be evaluated in an unspecified order). */
#define KEEP(s, r, call) ((s)->st ? NULL : ((s)->st = (call)) ? NULL : hold((s), (r)))

static inline dt_tensor *bin(tmp *s, dt_binop op, const dt_tensor *a, const dt_tensor *b)
{
    dt_tensor *r = NULL;
    return KEEP(s, r, dt_binary(op, a, b, &r));
}

/* a op v */
static inline dt_tensor *bin_s(tmp *s, dt_binop op, const dt_tensor *a, double v)
{
    dt_tensor *r = NULL;
    return KEEP(s, r, dt_binary_scalar(op, a, v, false, &r));
}

/* v op a */
static inline dt_tensor *s_bin(tmp *s, dt_binop op, double v, const dt_tensor *a)
{
    dt_tensor *r = NULL;
    return KEEP(s, r, dt_scalar_binary(op, v, false, a, &r));
}

static inline dt_tensor *un(tmp *s, dt_unop op, const dt_tensor *a)
{
    dt_tensor *r = NULL;
    return KEEP(s, r, dt_unary(op, a, &r));
}

static inline dt_tensor *sel(tmp *s, const dt_tensor *cond, const dt_tensor *a, const dt_tensor *b)
{
    dt_tensor *r = NULL;
    return KEEP(s, r, dt_where(cond, a, b, &r));
}

static inline dt_tensor *relu_grad(tmp *s, const dt_tensor *out, const dt_tensor *g)
{
    dt_tensor *r = NULL;
    return KEEP(s, r, dt_relu_grad(out, g, &r));
}

static inline dt_tensor *zero(tmp *s)
{
    dt_tensor *r = NULL;
    return KEEP(s, r, dt_scalar(DT_FLOAT32, 0.0, &r));
}

/* A uint8 mask as 0.0 / 1.0. */
static inline dt_tensor *as_float(tmp *s, const dt_tensor *a)
{
    dt_tensor *r = NULL;
    return KEEP(s, r, dt_to_dtype(a, DT_FLOAT32, &r));
}

static inline dt_tensor *saved(tmp *s, dt_node *n, int i)
{
    dt_tensor *r = NULL;
    if (!s->st)
        s->st = dt_node_saved(n, i, &r);
    return r;
}

/* gi[i] = r summed to input i's shape (broadcasting undone). */
static inline void give(tmp *s, dt_node *n, int i, dt_tensor *r, dt_tensor **gi)
{
    if (s->st || !r || !n->needs_grad[i])
        return;
    bool same = r->ndim == n->input_ndims[i] &&
                memcmp(r->shape, n->input_shapes[i], sizeof(int64_t) * r->ndim) == 0;
    if (same && r->dtype == DT_FLOAT32) {
        dt_tensor_retain(r);
        gi[i] = r;
    } else {
        s->st = dt_sum_to_shape(r, n->input_ndims[i], n->input_shapes[i], &gi[i]);
    }
}

static inline dt_status done(tmp *s)
{
    for (int i = 0; i < s->n; i++)
        dt_tensor_release(s->t[i]);
    return s->st;
}

#endif
