/* reduce_grad.c - reductions on the tape: the dt_f_ version of reduce.c's
 * dt_reduce, its backward written next to it as a composition of the plain
 * ops (grad_formula.h). argmax/argmin results are int64 and never record. */
#include "distill.h"
#include "autograd/op.h"
#include "grad_formula.h"

#include <math.h>
#include <string.h>

/* -------------------------------------------------------------- reductions */

/* Node arguments of a reduction. */
enum {
    R_OP,        /* dt_reduce_op */
    R_MASK,      /* bit d set: input dim d was reduced */
    R_ONE_DIM,   /* 1 + the dim when exactly one dim was given, else 0 */
    R_CORR       /* var/std correction */
};

static bool reduced_dim(const dt_node *n, int d) { return (n->iarg[R_MASK] >> d) & 1; }

/* Options reducing the node's reduced dims with keepdim (sum/mean of
 * intermediate tensors in backward). */
static dt_reduce_opts keep_opts(const dt_node *n)
{
    dt_reduce_opts o;
    dt_reduce_opts_init(&o);
    o.keepdim = true;
    for (int d = 0; d < n->input_ndims[0]; d++)
        if (reduced_dim(n, d))
            o.dims[o.ndims++] = d;
    return o;
}

/* t (output-shaped, keepdim or not) as the keepdim shape: reduced dims 1,
 * ready to broadcast against the input. */
static dt_tensor *keep(tmp *s, const dt_node *n, const dt_tensor *t)
{
    int64_t shape[DT_MAX_DIMS];
    int nd = n->input_ndims[0];
    for (int d = 0; d < nd; d++)
        shape[d] = reduced_dim(n, d) ? 1 : n->input_shapes[0][d];
    dt_tensor *r = NULL;
    return KEEP(s, r, dt_reshape((dt_tensor *)t, nd, shape, &r));
}

/* t broadcast to the input shape, as a new contiguous tensor. */
static dt_tensor *spread(tmp *s, const dt_node *n, const dt_tensor *t)
{
    dt_tensor *e = NULL, *r = NULL;
    if (s->st)
        return NULL;
    e = KEEP(s, e, dt_expand((dt_tensor *)t, n->input_ndims[0], n->input_shapes[0], &e));
    return e ? KEEP(s, r, dt_clone(e, &r)) : NULL;
}

static dt_tensor *reduce_keep(tmp *s, const dt_node *n, dt_reduce_op op, const dt_tensor *t)
{
    dt_reduce_opts o = keep_opts(n);
    dt_tensor *r = NULL;
    return KEEP(s, r, dt_reduce(op, t, &o, &r));
}

/* Elements per output. */
static double reduced_count(const dt_node *n)
{
    double c = 1;
    for (int d = 0; d < n->input_ndims[0]; d++)
        if (reduced_dim(n, d))
            c *= (double)n->input_shapes[0][d];
    return c;
}

/* max/min over one dim: the whole gradient to the position argmax chose. */
static dt_tensor *extreme_dim_grad(tmp *s, const dt_node *n, const dt_tensor *x,
                                   const dt_tensor *gk, bool is_max)
{
    int dim = (int)n->iarg[R_ONE_DIM] - 1;
    dt_reduce_opts o;
    dt_reduce_opts_init(&o);
    o.ndims = 1;
    o.dims[0] = dim;
    o.keepdim = true;
    dt_tensor *idx = NULL, *acc = NULL;
    if (s->st)
        return NULL;
    idx = KEEP(s, idx, dt_reduce(is_max ? DT_RED_ARGMAX : DT_RED_ARGMIN, x, &o, &idx));
    acc = KEEP(s, acc, dt_zeros(DT_FLOAT32, n->input_ndims[0], n->input_shapes[0], &acc));
    if (acc)
        s->st = dt_scatter_add_(acc, dim, idx, gk);
    return s->st ? NULL : acc;
}

/* max/min over all (or several) dims: split evenly among the tied
 * extremes, as torch 1.13. */
static dt_tensor *extreme_all_grad(tmp *s, const dt_node *n, const dt_tensor *x,
                                   const dt_tensor *outk, const dt_tensor *gk)
{
    dt_tensor *hit = as_float(s, bin(s, DT_EQ, x, outk));
    return bin(s, DT_MUL, hit, bin(s, DT_DIV, gk, reduce_keep(s, n, DT_RED_SUM, hit)));
}

/* x - mean(x) over the reduced dims (var, std). */
static dt_tensor *deviation(tmp *s, const dt_node *n, const dt_tensor *x)
{
    return bin(s, DT_SUB, x, reduce_keep(s, n, DT_RED_MEAN, x));
}

/* p-norm gradient g * sign(x) (|x| / norm)^(p-1) for finite p > 0, and 0
 * where the norm (or x, for p < 1) is 0 instead of NaN. All four tensors
 * have the input's shape (norm and g broadcast). */
static void norm_grad_kernel(dt_tensor *r, const dt_tensor *x, const dt_tensor *nrm,
                             const dt_tensor *g, double p)
{
    dt_iter it;
    const dt_tensor *ts[4] = {r, x, nrm, g};
    dt_iter_init(&it, 4, ts);
    float *rp = dt_f32(r);
    const float *xp = dt_f32(x), *np = dt_f32(nrm), *gp = dt_f32(g);
    while (dt_iter_next(&it)) {
        for (int64_t k = 0; k < it.inner; k++) {
            double xv = xp[it.offset[1] + k * it.inner_stride[1]];
            double nv = np[it.offset[2] + k * it.inner_stride[2]];
            double gv = gp[it.offset[3] + k * it.inner_stride[3]];
            double v;
            if (nv == 0 || xv == 0)
                v = 0;
            else if (p == 2)
                v = gv * xv / nv;
            else if (p == 1)
                v = xv > 0 ? gv : -gv;
            else
                v = (xv > 0 ? gv : -gv) * pow(fabs(xv) / nv, p - 1);
            rp[it.offset[0] + k * it.inner_stride[0]] = (float)v;
        }
    }
}

static dt_tensor *norm_grad(tmp *s, const dt_node *n, const dt_tensor *x, const dt_tensor *outk,
                            const dt_tensor *gk)
{
    double p = n->darg[0];
    if (p == 0)   /* counts nonzeros: piecewise constant */
        return NULL;
    if (isinf(p)) {   /* |x| == norm gets the gradient, ties split evenly */
        dt_tensor *hit = as_float(s, bin(s, DT_EQ, un(s, DT_ABS, x), outk));
        dt_tensor *share = bin(s, DT_DIV, gk, reduce_keep(s, n, DT_RED_SUM, hit));
        return bin(s, DT_MUL, un(s, DT_SIGN, x), bin(s, DT_MUL, hit, share));
    }
    dt_tensor *ne = NULL, *ge = NULL, *r = NULL;
    if (s->st)
        return NULL;
    ne = KEEP(s, ne, dt_expand((dt_tensor *)outk, x->ndim, x->shape, &ne));
    ge = KEEP(s, ge, dt_expand((dt_tensor *)gk, x->ndim, x->shape, &ge));
    r = KEEP(s, r, dt_zeros(DT_FLOAT32, x->ndim, x->shape, &r));
    if (r)
        norm_grad_kernel(r, x, ne, ge, p);
    return r;
}

/* prod, exact with zeros: with z the zeros of a slice, d prod / d x_i is
 * prod(others) = prod(nonzeros) / x_i when z = 0; prod(nonzeros) at the
 * zero when z = 1; and 0 everywhere when z >= 2. */
static dt_tensor *prod_grad(tmp *s, const dt_node *n, const dt_tensor *x, const dt_tensor *gk)
{
    dt_tensor *is_zero = bin_s(s, DT_EQ, x, 0.0);
    dt_tensor *zf = as_float(s, is_zero);
    dt_tensor *nz = reduce_keep(s, n, DT_RED_SUM, zf);
    dt_tensor *x1 = sel(s, is_zero, zf, x);   /* zeros -> 1 */
    dt_tensor *others = bin(s, DT_DIV, reduce_keep(s, n, DT_RED_PROD, x1), x1);
    dt_tensor *none = as_float(s, bin_s(s, DT_EQ, nz, 0.0));
    dt_tensor *one = bin(s, DT_MUL, as_float(s, bin_s(s, DT_EQ, nz, 1.0)), zf);
    dt_tensor *w = bin(s, DT_ADD, none, one);
    return bin(s, DT_MUL, bin(s, DT_MUL, others, w), gk);
}

/* saved[0] = x (all but sum/mean), saved[1] = out (max/min over all, std,
 * norm, logsumexp). */
static dt_status reduce_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    tmp s = {0};
    dt_reduce_op op = (dt_reduce_op)n->iarg[R_OP];
    dt_tensor *x = n->nsaved > 0 ? saved(&s, n, 0) : NULL;
    dt_tensor *outk = n->nsaved > 1 ? keep(&s, n, saved(&s, n, 1)) : NULL;
    dt_tensor *gk = keep(&s, n, g), *r = NULL;
    double denom = reduced_count(n) - (double)n->iarg[R_CORR];
    if (denom < 0)
        denom = 0;
    switch (op) {
    case DT_RED_SUM: r = spread(&s, n, gk); break;
    case DT_RED_MEAN: r = spread(&s, n, bin_s(&s, DT_DIV, gk, reduced_count(n))); break;
    case DT_RED_MAX:
    case DT_RED_MIN:
        r = n->iarg[R_ONE_DIM] ? extreme_dim_grad(&s, n, x, gk, op == DT_RED_MAX)
                               : extreme_all_grad(&s, n, x, outk, gk);
        break;
    case DT_RED_VAR:   /* 2 (x - mean) / (R - correction) */
        r = bin(&s, DT_MUL, deviation(&s, n, x), bin_s(&s, DT_MUL, gk, 2.0 / denom));
        break;
    case DT_RED_STD:   /* (x - mean) / ((R - correction) std) */
        r = bin(&s, DT_MUL, deviation(&s, n, x),
                bin(&s, DT_DIV, gk, bin_s(&s, DT_MUL, outk, denom)));
        break;
    case DT_RED_NORM: r = norm_grad(&s, n, x, outk, gk); break;
    case DT_RED_LOGSUMEXP:   /* the softmax weights exp(x - lse) */
        r = bin(&s, DT_MUL, gk, un(&s, DT_EXP, bin(&s, DT_SUB, x, outk)));
        break;
    case DT_RED_PROD: r = prod_grad(&s, n, x, gk); break;
    default:
        s.st = dt_fail(DT_ERR_STATE, "internal error: no gradient for reduction %d", (int)op);
    }
    give(&s, n, 0, r, gi);
    return done(&s);
}

dt_status dt_f_reduce(dt_reduce_op op, const dt_tensor *a, const dt_reduce_opts *opts,
                      dt_tensor **out)
{
    static const char *names[] = {"SumBackward", "MeanBackward", "MaxBackward", "MinBackward",
                                  "ArgmaxBackward", "ArgminBackward", "VarBackward",
                                  "StdBackward", "NormBackward", "LogsumexpBackward",
                                  "ProdBackward"};
    dt_reduce_opts defaults;
    if (!opts) {
        dt_reduce_opts_init(&defaults);
        opts = &defaults;
    }
    dt_status st = dt_reduce(op, a, opts, out);
    if (st || op == DT_RED_ARGMAX || op == DT_RED_ARGMIN || (*out)->dtype != DT_FLOAT32)
        return st;
    bool save_out = op == DT_RED_STD || op == DT_RED_NORM || op == DT_RED_LOGSUMEXP ||
                    ((op == DT_RED_MAX || op == DT_RED_MIN) && (opts->ndims != 1 || a->ndim == 0));
    int nsave = op == DT_RED_SUM || op == DT_RED_MEAN ? 0 : save_out ? 2 : 1;
    const dt_tensor *save[2] = {a, *out};
    dt_node *n;
    st = dt_record_or_drop(names[op], reduce_backward, 1, &a, nsave, save, out, &n);
    if (st || !n)
        return st;
    /* dims as dt_reduce resolved them (it already validated them) */
    int64_t mask = 0;
    for (int d = 0; d < a->ndim; d++)
        if (opts->ndims == 0)
            mask |= (int64_t)1 << d;
    for (int i = 0; i < opts->ndims && a->ndim > 0; i++) {
        int d = opts->dims[i];
        dt_normalize_dim(&d, a->ndim);
        mask |= (int64_t)1 << d;
    }
    n->iarg[R_OP] = op;
    n->iarg[R_MASK] = mask;
    n->iarg[R_ONE_DIM] = 0;
    if (opts->ndims == 1 && a->ndim > 0) {
        int d = opts->dims[0];
        dt_normalize_dim(&d, a->ndim);
        n->iarg[R_ONE_DIM] = d + 1;
    }
    n->iarg[R_CORR] = opts->correction;
    n->darg[0] = opts->p;
    return DT_OK;
}
