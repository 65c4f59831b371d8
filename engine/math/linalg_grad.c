/* linalg_grad.c - matrix products on the tape: mm, bmm, matmul, dot, mv,
 * outer and the fused linear layer.
 *
 * Every product is a matmul in disguise, so they share one backward:
 * with the 1-d operands promoted to matrices (a row for a, a column for b)
 * and the gradient g given back the dims the product dropped,
 *     grad_a = g @ b^T,   grad_b = a^T @ g,
 * each summed over the batch dims its operand was broadcast along. */
#include "distill.h"
#include "autograd/op.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------- shared backward */

/* t seen as a matrix operand of matmul: 1-d a -> (1, k), 1-d b -> (k, 1). */
static dt_status promote(const dt_tensor *t, bool is_left, dt_tensor **out)
{
    if (t->ndim == 1)
        return dt_unsqueeze((dt_tensor *)t, is_left ? 0 : 1, out);
    return dt_alias((dt_tensor *)t, out);
}

/* Swap the last two dims (a view). */
static dt_status mT(const dt_tensor *t, dt_tensor **out)
{
    return dt_transpose((dt_tensor *)t, -2, -1, out);
}

/* grad (of the product of the promoted operands) reduced to the shape of
 * operand `i`: summed over broadcast batch dims, then the promoted dim
 * dropped again by a reshape. */
static dt_status to_input_shape(const dt_node *n, int i, dt_tensor *grad, dt_tensor **out)
{
    int nd = n->input_ndims[i];
    const int64_t *shape = n->input_shapes[i];
    int64_t promoted[DT_MAX_DIMS];
    int pnd = nd;
    memcpy(promoted, shape, sizeof promoted);
    if (nd == 1) {   /* (1, k) for a, (k, 1) for b */
        pnd = 2;
        promoted[0] = i == 0 ? 1 : shape[0];
        promoted[1] = i == 0 ? shape[0] : 1;
    }
    dt_tensor *summed = NULL;
    dt_status st;
    bool same = grad->ndim == pnd;
    for (int d = 0; same && d < pnd; d++)
        same = grad->shape[d] == promoted[d];
    if (same) {
        dt_tensor_retain(grad);
        summed = grad;
        st = DT_OK;
    } else {
        st = dt_sum_to_shape(grad, pnd, promoted, &summed);
    }
    if (st == DT_OK)
        st = dt_reshape(summed, nd, shape, out);
    dt_tensor_release(summed);
    return st;
}

/* The gradient of b when b is a plain matrix and a has batch dims: the
 * batch sum of a_i^T g_i is one product of the flattened batches,
 * (B*n, k)^T @ (B*n, m), instead of B products and a reduction. */
static dt_status flat_grad_b(const dt_tensor *a2, const dt_tensor *g2, dt_tensor **out)
{
    int64_t af[2] = {-1, a2->shape[a2->ndim - 1]}, gf[2] = {-1, g2->shape[g2->ndim - 1]};
    dt_tensor *a_flat = NULL, *g_flat = NULL, *at = NULL;
    dt_status st = dt_reshape((dt_tensor *)a2, 2, af, &a_flat);
    if (st == DT_OK)
        st = dt_reshape((dt_tensor *)g2, 2, gf, &g_flat);
    if (st == DT_OK)
        st = mT(a_flat, &at);
    if (st == DT_OK)
        st = dt_mm(at, g_flat, out);
    dt_tensor_release(a_flat);
    dt_tensor_release(g_flat);
    dt_tensor_release(at);
    return st;
}

/* saved[0] = a, saved[1] = b. Serves mm, bmm, matmul, dot and mv. */
static dt_status matmul_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    dt_tensor *a, *b;
    dt_status st = dt_node_saved(n, 0, &a);
    if (st == DT_OK)
        st = dt_node_saved(n, 1, &b);
    if (st)
        return st;
    dt_tensor *a2 = NULL, *b2 = NULL, *g2 = NULL, *t = NULL, *p = NULL;
    st = promote(a, true, &a2);
    if (st == DT_OK)
        st = promote(b, false, &b2);
    /* g with the dropped dims back: the product shape (batch..., n, m). */
    if (st == DT_OK) {
        int nb;
        int64_t shape[DT_MAX_DIMS];
        st = dt_broadcast_shape(a2->ndim - 2, a2->shape, b2->ndim - 2, b2->shape, &nb, shape);
        if (st == DT_OK) {
            shape[nb] = a2->shape[a2->ndim - 2];
            shape[nb + 1] = b2->shape[b2->ndim - 1];
            st = dt_reshape((dt_tensor *)g, nb + 2, shape, &g2);
        }
    }
    if (st == DT_OK && n->needs_grad[0]) {
        st = mT(b2, &t);
        if (st == DT_OK)
            st = dt_matmul(g2, t, &p);
        if (st == DT_OK)
            st = to_input_shape(n, 0, p, &gi[0]);
        dt_tensor_release(t);
        dt_tensor_release(p);
        t = p = NULL;
    }
    if (st == DT_OK && n->needs_grad[1]) {
        if (b2->ndim == 2 && a2->ndim > 2) {
            st = flat_grad_b(a2, g2, &p);
        } else {
            st = mT(a2, &t);
            if (st == DT_OK)
                st = dt_matmul(t, g2, &p);
        }
        if (st == DT_OK)
            st = to_input_shape(n, 1, p, &gi[1]);
        dt_tensor_release(t);
        dt_tensor_release(p);
    }
    dt_tensor_release(a2);
    dt_tensor_release(b2);
    dt_tensor_release(g2);
    return st;
}

/* Record a two-operand product; on failure drop the result. */
static dt_status record_product(const char *name, const dt_tensor *a, const dt_tensor *b,
                                dt_tensor **out)
{
    const dt_tensor *ab[2] = {a, b};
    dt_status st = dt_record(name, matmul_backward, 2, ab, 2, ab, *out, NULL);
    if (st) {
        dt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

static dt_status want_dims(const char *fn, const dt_tensor *a, int da, const dt_tensor *b, int db)
{
    if (a->ndim != da || b->ndim != db) {
        char sa[160], sb[160];
        return dt_fail(DT_ERR_SHAPE, "%s expects a %d-d and a %d-d tensor, got shapes %s and %s",
                       fn, da, db, dt_shape_str(a->shape, a->ndim, sa, sizeof sa),
                       dt_shape_str(b->shape, b->ndim, sb, sizeof sb));
    }
    return DT_OK;
}

dt_status dt_f_mm(const dt_tensor *a, const dt_tensor *b, dt_tensor **out)
{
    dt_status st = dt_mm(a, b, out);
    return st ? st : record_product("MmBackward", a, b, out);
}

dt_status dt_f_bmm(const dt_tensor *a, const dt_tensor *b, dt_tensor **out)
{
    dt_status st = dt_bmm(a, b, out);
    return st ? st : record_product("BmmBackward", a, b, out);
}

dt_status dt_f_matmul(const dt_tensor *a, const dt_tensor *b, dt_tensor **out)
{
    dt_status st = dt_matmul(a, b, out);
    return st ? st : record_product("MatmulBackward", a, b, out);
}

dt_status dt_f_dot(const dt_tensor *a, const dt_tensor *b, dt_tensor **out)
{
    *out = NULL;
    dt_status st = want_dims("dot", a, 1, b, 1);
    if (st == DT_OK)
        st = dt_matmul(a, b, out);
    return st ? st : record_product("DotBackward", a, b, out);
}

dt_status dt_f_mv(const dt_tensor *a, const dt_tensor *b, dt_tensor **out)
{
    *out = NULL;
    dt_status st = want_dims("mv", a, 2, b, 1);
    if (st == DT_OK)
        st = dt_matmul(a, b, out);
    return st ? st : record_product("MvBackward", a, b, out);
}

/* ------------------------------------------------------------------ outer */

/* out = a b^T: grad_a = g @ b, grad_b = g^T @ a (saved[0] = a, [1] = b). */
static dt_status outer_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    dt_tensor *a, *b, *gt = NULL;
    dt_status st = dt_node_saved(n, 0, &a);
    if (st == DT_OK)
        st = dt_node_saved(n, 1, &b);
    if (st == DT_OK && n->needs_grad[0])
        st = dt_matmul(g, b, &gi[0]);
    if (st == DT_OK && n->needs_grad[1]) {
        st = mT(g, &gt);
        if (st == DT_OK)
            st = dt_matmul(gt, a, &gi[1]);
        dt_tensor_release(gt);
    }
    return st;
}

dt_status dt_f_outer(const dt_tensor *a, const dt_tensor *b, dt_tensor **out)
{
    *out = NULL;
    dt_status st = want_dims("outer", a, 1, b, 1);
    if (st)
        return st;
    /* (n, 1) @ (1, m) */
    dt_tensor *col = NULL, *row = NULL;
    st = dt_unsqueeze((dt_tensor *)a, 1, &col);
    if (st == DT_OK)
        st = dt_unsqueeze((dt_tensor *)b, 0, &row);
    if (st == DT_OK)
        st = dt_mm(col, row, out);
    dt_tensor_release(col);
    dt_tensor_release(row);
    if (st)
        return st;
    const dt_tensor *ab[2] = {a, b};
    st = dt_record("OuterBackward", outer_backward, 2, ab, 2, ab, *out, NULL);
    if (st) {
        dt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

/* ----------------------------------------------------------------- linear */

/* How sgemm reads a rows x cols matrix t (2-d) in place: row-major (unit
 * column stride) or as the transpose of a row-major matrix. False when it
 * cannot (the caller copies). */
static bool blas_operand(const dt_tensor *t, bool *trans, int64_t *ld)
{
    int64_t rows = t->shape[0], cols = t->shape[1], rs = t->stride[0], cs = t->stride[1];
    int64_t c1 = cols > 1 ? cols : 1, r1 = rows > 1 ? rows : 1;
    if ((cols <= 1 || cs == 1) && (rows <= 1 || rs >= c1)) {
        *trans = false;
        *ld = rows <= 1 ? c1 : rs;
    } else if ((rows <= 1 || rs == 1) && (cols <= 1 || cs >= r1)) {
        *trans = true;
        *ld = cols <= 1 ? r1 : cs;
    } else {
        return false;
    }
    return *ld <= INT_MAX;
}

/* w itself (retained) when BLAS can read it, else a contiguous copy. */
static dt_status readable_weight(const dt_tensor *w, dt_tensor **out, bool *trans, int64_t *ld)
{
    if (blas_operand(w, trans, ld)) {
        dt_tensor_retain((dt_tensor *)w);
        *out = (dt_tensor *)w;
        return DT_OK;
    }
    dt_status st = dt_clone(w, out);
    if (st == DT_OK)
        blas_operand(*out, trans, ld);
    return st;
}

static dt_status check_linear(const dt_tensor *x, const dt_tensor *w, const dt_tensor *b)
{
    char sx[160], sw[160];
    if (x->dtype != DT_FLOAT32 || w->dtype != DT_FLOAT32 || (b && b->dtype != DT_FLOAT32))
        return dt_fail(DT_ERR_DTYPE, "linear expects float32 tensors (convert with :float())");
    if (w->ndim != 2)
        return dt_fail(DT_ERR_SHAPE, "weight must be 2-d (out_features, in_features), got %s",
                       dt_shape_str(w->shape, w->ndim, sw, sizeof sw));
    if (x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1])
        return dt_fail(DT_ERR_SHAPE, "input %s does not end in in_features = %lld (weight %s)",
                       dt_shape_str(x->shape, x->ndim, sx, sizeof sx), (long long)w->shape[1],
                       dt_shape_str(w->shape, w->ndim, sw, sizeof sw));
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return dt_fail(DT_ERR_SHAPE, "bias must be 1-d of out_features = %lld, got %s",
                       (long long)w->shape[0], dt_shape_str(b->shape, b->ndim, sx, sizeof sx));
    if (dt_numel(x) / (w->shape[1] ? w->shape[1] : 1) > INT_MAX || w->shape[0] > INT_MAX ||
        w->shape[1] > INT_MAX)
        return dt_fail(DT_ERR_ARG, "linear: sizes exceed what BLAS accepts");
    return DT_OK;
}

/* saved[0] = x (contiguous), saved[1] = w; inputs x, w, bias. g is
 * (rows, out) once the leading dims are flattened. */
static dt_status linear_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    dt_tensor *x, *w, *gc = NULL, *wr = NULL;
    dt_status st = dt_node_saved(n, 0, &x);
    if (st == DT_OK)
        st = dt_node_saved(n, 1, &w);
    if (st == DT_OK)
        st = dt_contiguous((dt_tensor *)g, &gc);
    if (st)
        return st;
    int64_t out_f = w->shape[0], in_f = w->shape[1];
    int64_t rows = out_f ? dt_numel(gc) / out_f : dt_numel(x) / (in_f ? in_f : 1);
    const float *gp = dt_f32(gc);
    bool trans = false;
    int64_t ld = 1;

    /* grad_x = g @ W: (rows, out) @ (out, in). */
    if (n->needs_grad[0]) {
        st = dt_zeros(DT_FLOAT32, n->input_ndims[0], n->input_shapes[0], &gi[0]);
        if (st == DT_OK)
            st = readable_weight(w, &wr, &trans, &ld);
        if (st == DT_OK && rows > 0 && in_f > 0 && out_f > 0)
            dt_sgemm(false, trans, rows, in_f, out_f, 1.0f, gp, out_f, dt_f32(wr), ld, 0.0f,
                     dt_f32(gi[0]), in_f);
    }
    /* grad_w = g^T @ x: one product over the flattened batch. */
    if (st == DT_OK && n->needs_grad[1]) {
        st = dt_zeros(DT_FLOAT32, 2, w->shape, &gi[1]);
        if (st == DT_OK && rows > 0 && in_f > 0 && out_f > 0)
            dt_sgemm(true, false, out_f, in_f, rows, 1.0f, gp, out_f, dt_f32(x), in_f, 0.0f,
                     dt_f32(gi[1]), in_f);
    }
    /* grad_b = column sums of g, in double and in row order. */
    if (st == DT_OK && n->ninputs > 2 && n->needs_grad[2]) {
        double *acc = calloc((size_t)(out_f ? out_f : 1), sizeof *acc);
        st = acc ? dt_zeros(DT_FLOAT32, 1, &out_f, &gi[2])
                 : dt_fail(DT_ERR_NOMEM, "out of memory in LinearBackward");
        if (st == DT_OK) {
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = 0; j < out_f; j++)
                    acc[j] += gp[r * out_f + j];
            for (int64_t j = 0; j < out_f; j++)
                dt_f32(gi[2])[j] = (float)acc[j];
        }
        free(acc);
    }
    dt_tensor_release(gc);
    dt_tensor_release(wr);
    return st;
}

dt_status dt_f_linear(const dt_tensor *x, const dt_tensor *w, const dt_tensor *b,
                      dt_tensor **out)
{
    *out = NULL;
    dt_status st = check_linear(x, w, b);
    if (st)
        return st;
    int64_t out_f = w->shape[0], in_f = w->shape[1];
    int64_t shape[DT_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = out_f;
    int64_t rows = in_f ? dt_numel(x) / in_f : 1;
    for (int d = 0; !in_f && d < x->ndim - 1; d++)
        rows *= x->shape[d];

    dt_tensor *xc = NULL, *wr = NULL, *y = NULL;
    bool trans = false;
    int64_t ld = 1;
    st = dt_contiguous((dt_tensor *)x, &xc);
    if (st == DT_OK)
        st = readable_weight(w, &wr, &trans, &ld);
    if (st == DT_OK)
        st = dt_zeros(DT_FLOAT32, x->ndim, shape, &y);
    if (st == DT_OK) {
        /* Every row starts as the bias, and sgemm adds x W^T onto it
         * (beta = 1): the bias costs no second pass over the output. */
        float *yp = dt_f32(y);
        if (b)
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = 0; j < out_f; j++)
                    yp[r * out_f + j] = dt_f32(b)[j * b->stride[0]];
        /* x (rows, in) times W^T: W is (out, in), so "not transposed" for
         * BLAS means W read as (out, in) and transposed in the product. */
        if (rows > 0 && out_f > 0 && in_f > 0)
            dt_sgemm(false, !trans, rows, out_f, in_f, 1.0f, dt_f32(xc), in_f, dt_f32(wr), ld,
                     b ? 1.0f : 0.0f, yp, out_f);
    }
    dt_tensor_release(wr);
    if (st == DT_OK) {
        int nin = b ? 3 : 2;
        const dt_tensor *inputs[3] = {x, w, b};
        const dt_tensor *save[2] = {xc, w};
        st = dt_record("LinearBackward", linear_backward, nin, inputs, 2, save, y, NULL);
    }
    dt_tensor_release(xc);
    if (st) {
        dt_tensor_release(y);
        return st;
    }
    *out = y;
    return DT_OK;
}
