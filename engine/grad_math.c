/* grad_math.c - elementwise maths and reductions on the tape.
 *
 * Each dt_f_* op runs the plain kernel (elementwise.c, reduce.c) and
 * records a node whose backward is written next to it. Backward formulas
 * are compositions of the plain (non-recording) ops; the `tmp` helpers
 * below collect their temporaries and stop at the first failure, so a
 * formula reads like maths and is error-checked once at the end.
 *
 * Gradients of broadcast operands are summed back to their shapes. Results
 * that are not float32 (comparisons, integer maths, argmax) never record. */
#include "distill.h"
#include "elementwise_fused.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------ temporaries */

#define TMP_MAX 24

typedef struct tmp {
    dt_status st;
    int n;
    dt_tensor *t[TMP_MAX];
} tmp;

/* Keep r, a new reference, for release by done(). */
static dt_tensor *hold(tmp *s, dt_tensor *r)
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

static dt_tensor *bin(tmp *s, dt_binop op, const dt_tensor *a, const dt_tensor *b)
{
    dt_tensor *r = NULL;
    return KEEP(s, r, dt_binary(op, a, b, &r));
}

/* a op v */
static dt_tensor *bin_s(tmp *s, dt_binop op, const dt_tensor *a, double v)
{
    dt_tensor *r = NULL;
    return KEEP(s, r, dt_binary_scalar(op, a, v, false, &r));
}

/* v op a */
static dt_tensor *s_bin(tmp *s, dt_binop op, double v, const dt_tensor *a)
{
    dt_tensor *r = NULL;
    return KEEP(s, r, dt_scalar_binary(op, v, false, a, &r));
}

static dt_tensor *un(tmp *s, dt_unop op, const dt_tensor *a)
{
    dt_tensor *r = NULL;
    return KEEP(s, r, dt_unary(op, a, &r));
}

static dt_tensor *sel(tmp *s, const dt_tensor *cond, const dt_tensor *a, const dt_tensor *b)
{
    dt_tensor *r = NULL;
    return KEEP(s, r, dt_where(cond, a, b, &r));
}

static dt_tensor *relu_grad(tmp *s, const dt_tensor *out, const dt_tensor *g)
{
    dt_tensor *r = NULL;
    return KEEP(s, r, dt_relu_grad(out, g, &r));
}

static dt_tensor *zero(tmp *s)
{
    dt_tensor *r = NULL;
    return KEEP(s, r, dt_scalar(DT_FLOAT32, 0.0, &r));
}

/* A uint8 mask as 0.0 / 1.0. */
static dt_tensor *as_float(tmp *s, const dt_tensor *a)
{
    dt_tensor *r = NULL;
    return KEEP(s, r, dt_to_dtype(a, DT_FLOAT32, &r));
}

static dt_tensor *saved(tmp *s, dt_node *n, int i)
{
    dt_tensor *r = NULL;
    if (!s->st)
        s->st = dt_node_saved(n, i, &r);
    return r;
}

/* gi[i] = r summed to input i's shape (broadcasting undone). */
static void give(tmp *s, dt_node *n, int i, dt_tensor *r, dt_tensor **gi)
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

static dt_status done(tmp *s)
{
    for (int i = 0; i < s->n; i++)
        dt_tensor_release(s->t[i]);
    return s->st;
}

/* Record a node; on failure drop the result. */
static dt_status record(const char *name, dt_backward_fn fn, int ninputs,
                        const dt_tensor *const *inputs, int nsave, const dt_tensor *const *save,
                        dt_tensor **out, dt_node **node)
{
    dt_status st = dt_record(name, fn, ninputs, inputs, nsave, save, *out, node);
    if (st) {
        dt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

/* ------------------------------------------------------------------ binary */

/* The share of the gradient that goes to the first operand of maximum
 * (is_max) or minimum: 1 where it was chosen, 1/2 on ties (torch). */
static dt_tensor *choice_weight(tmp *s, const dt_tensor *a, const dt_tensor *b, bool is_max)
{
    dt_tensor *won = as_float(s, bin(s, is_max ? DT_GT : DT_LT, a, b));
    dt_tensor *tie = as_float(s, bin(s, DT_EQ, a, b));
    return bin(s, DT_ADD, won, bin_s(s, DT_MUL, tie, 0.5));
}

/* pow's gradient to the base: g * e * a^(e-1), 0 where e == 0 (so that
 * 0^0 does not give 0 * inf). */
static dt_tensor *pow_base_grad(tmp *s, const dt_tensor *g, const dt_tensor *a,
                                const dt_tensor *e)
{
    dt_tensor *d = bin(s, DT_MUL, e, bin(s, DT_POW, a, bin_s(s, DT_SUB, e, 1.0)));
    return sel(s, bin_s(s, DT_EQ, e, 0.0), zero(s), bin(s, DT_MUL, g, d));
}

/* pow's gradient to the exponent: g * a^e * log(a) where a > 0, else 0. */
static dt_tensor *pow_exp_grad(tmp *s, const dt_tensor *g, const dt_tensor *a,
                               const dt_tensor *out)
{
    dt_tensor *d = bin(s, DT_MUL, g, bin(s, DT_MUL, out, un(s, DT_LOG, a)));
    return sel(s, bin_s(s, DT_GT, a, 0.0), d, zero(s));
}

/* iarg[0] = op; saved: a, b (mul, div, pow, maximum, minimum), out (pow). */
static dt_status binary_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    tmp s = {0};
    dt_binop op = (dt_binop)n->iarg[0];
    dt_tensor *a = n->nsaved > 0 ? saved(&s, n, 0) : NULL;
    dt_tensor *b = n->nsaved > 1 ? saved(&s, n, 1) : NULL;
    dt_tensor *gc = (dt_tensor *)g;
    switch (op) {
    case DT_ADD:
        give(&s, n, 0, gc, gi);
        give(&s, n, 1, gc, gi);
        break;
    case DT_SUB:
        give(&s, n, 0, gc, gi);
        if (n->needs_grad[1])
            give(&s, n, 1, un(&s, DT_NEG, g), gi);
        break;
    case DT_MUL:
        if (n->needs_grad[0])
            give(&s, n, 0, bin(&s, DT_MUL, g, b), gi);
        if (n->needs_grad[1])
            give(&s, n, 1, bin(&s, DT_MUL, g, a), gi);
        break;
    case DT_DIV:   /* d(a/b) = da / b - a db / b^2 */
        if (n->needs_grad[0])
            give(&s, n, 0, bin(&s, DT_DIV, g, b), gi);
        if (n->needs_grad[1]) {
            dt_tensor *q = bin(&s, DT_DIV, bin(&s, DT_MUL, g, a), bin(&s, DT_MUL, b, b));
            give(&s, n, 1, un(&s, DT_NEG, q), gi);
        }
        break;
    case DT_POW:
        if (n->needs_grad[0])
            give(&s, n, 0, pow_base_grad(&s, g, a, b), gi);
        if (n->needs_grad[1])
            give(&s, n, 1, pow_exp_grad(&s, g, a, saved(&s, n, 2)), gi);
        break;
    case DT_MAXIMUM:
    case DT_MINIMUM:
        if (n->needs_grad[0])
            give(&s, n, 0, bin(&s, DT_MUL, g, choice_weight(&s, a, b, op == DT_MAXIMUM)), gi);
        if (n->needs_grad[1])
            give(&s, n, 1, bin(&s, DT_MUL, g, choice_weight(&s, b, a, op == DT_MAXIMUM)), gi);
        break;
    default:
        s.st = dt_fail(DT_ERR_STATE, "internal error: no gradient for binary op %d", (int)op);
    }
    return done(&s);
}

static bool is_comparison(dt_binop op) { return op >= DT_EQ && op <= DT_GE; }

static const char *binary_name(dt_binop op)
{
    static const char *names[] = {"AddBackward", "SubBackward", "MulBackward", "DivBackward",
                                  "PowBackward", "MaximumBackward", "MinimumBackward"};
    return names[op];
}

dt_status dt_f_binary(dt_binop op, const dt_tensor *a, const dt_tensor *b, dt_tensor **out)
{
    dt_status st = dt_binary(op, a, b, out);
    if (st || is_comparison(op) || (*out)->dtype != DT_FLOAT32)
        return st;
    const dt_tensor *inputs[2] = {a, b};
    const dt_tensor *save[3] = {a, b, *out};
    int nsave = op == DT_ADD || op == DT_SUB ? 0 : op == DT_POW ? 3 : 2;
    dt_node *n;
    st = record(binary_name(op), binary_backward, 2, inputs, nsave, save, out, &n);
    if (st == DT_OK && n)
        n->iarg[0] = op;
    return st;
}

/* ---------------------------------------------------- tensor op scalar */

/* out = a op s (iarg[1] == 0) or s op a (iarg[1] == 1); iarg[0] = op,
 * darg[0] = s; saved[0] = a where the formula needs it, saved[1] = out
 * for s ^ a. */
static dt_status scalar_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    tmp s = {0};
    dt_binop op = (dt_binop)n->iarg[0];
    bool scalar_first = n->iarg[1] != 0;
    double v = n->darg[0];
    dt_tensor *a = n->nsaved > 0 ? saved(&s, n, 0) : NULL;
    dt_tensor *r = NULL, *sv = NULL;
    switch (op) {
    case DT_ADD:
        r = (dt_tensor *)g;
        break;
    case DT_SUB:
        r = scalar_first ? un(&s, DT_NEG, g) : (dt_tensor *)g;
        break;
    case DT_MUL:
        r = bin_s(&s, DT_MUL, g, v);
        break;
    case DT_DIV:   /* a / v, or v / a with derivative -v / a^2 */
        r = !scalar_first ? bin_s(&s, DT_DIV, g, v)
                          : bin(&s, DT_MUL, g, s_bin(&s, DT_DIV, -v, bin(&s, DT_MUL, a, a)));
        break;
    case DT_POW:
        if (!scalar_first) {
            sv = KEEP(&s, sv, dt_scalar(DT_FLOAT32, v, &sv));
            r = pow_base_grad(&s, g, a, sv);
        } else {   /* v^a: g * v^a * log(v), 0 unless v > 0 */
            r = v > 0 ? bin(&s, DT_MUL, g, bin_s(&s, DT_MUL, saved(&s, n, 1), log(v)))
                      : NULL;
        }
        break;
    case DT_MAXIMUM:
    case DT_MINIMUM:
        sv = KEEP(&s, sv, dt_scalar(DT_FLOAT32, v, &sv));
        r = bin(&s, DT_MUL, g, choice_weight(&s, a, sv, op == DT_MAXIMUM));
        break;
    default:
        s.st = dt_fail(DT_ERR_STATE, "internal error: no gradient for scalar op %d", (int)op);
    }
    give(&s, n, 0, r, gi);
    return done(&s);
}

static dt_status record_scalar(dt_binop op, const dt_tensor *a, double v, bool scalar_first,
                               dt_tensor **out)
{
    if (is_comparison(op) || (*out)->dtype != DT_FLOAT32)
        return DT_OK;
    bool needs_a = (op == DT_DIV && scalar_first) || (op == DT_POW && !scalar_first) ||
                   op == DT_MAXIMUM || op == DT_MINIMUM;
    bool needs_out = op == DT_POW && scalar_first;
    const dt_tensor *save[2] = {a, *out};
    dt_node *n;
    dt_status st = record(binary_name(op), scalar_backward, 1, &a,
                          needs_out ? 2 : needs_a ? 1 : 0, save, out, &n);
    if (st == DT_OK && n) {
        n->iarg[0] = op;
        n->iarg[1] = scalar_first;
        n->darg[0] = v;
    }
    return st;
}

dt_status dt_f_binary_scalar(dt_binop op, const dt_tensor *a, double s, bool scalar_is_int,
                             dt_tensor **out)
{
    dt_status st = dt_binary_scalar(op, a, s, scalar_is_int, out);
    return st ? st : record_scalar(op, a, s, false, out);
}

dt_status dt_f_scalar_binary(dt_binop op, double s, bool scalar_is_int, const dt_tensor *a,
                             dt_tensor **out)
{
    dt_status st = dt_scalar_binary(op, s, scalar_is_int, a, out);
    return st ? st : record_scalar(op, a, s, true, out);
}

/* ------------------------------------------------------------------- unary */

/* iarg[0] = op; saved[0] = the input (abs, log) or the output (exp, sqrt,
 * rsqrt, relu, sigmoid, tanh), whichever gives the derivative cheaply. */
static dt_status unary_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    tmp s = {0};
    dt_unop op = (dt_unop)n->iarg[0];
    dt_tensor *t = n->nsaved > 0 ? saved(&s, n, 0) : NULL, *r = NULL;
    switch (op) {
    case DT_NEG: r = un(&s, DT_NEG, g); break;
    case DT_ABS: r = bin(&s, DT_MUL, g, un(&s, DT_SIGN, t)); break;
    case DT_SIGN: r = NULL; break;   /* piecewise constant: zero gradient */
    case DT_EXP: r = bin(&s, DT_MUL, g, t); break;
    case DT_LOG: r = bin(&s, DT_DIV, g, t); break;
    case DT_SQRT: r = bin(&s, DT_DIV, g, bin_s(&s, DT_MUL, t, 2.0)); break;
    case DT_RSQRT:   /* d x^-1/2 = -1/2 x^-3/2 = -1/2 out^3 */
        r = bin(&s, DT_MUL, g, bin_s(&s, DT_MUL, bin(&s, DT_MUL, t, bin(&s, DT_MUL, t, t)), -0.5));
        break;
    case DT_RELU: r = relu_grad(&s, t, g); break;
    case DT_SIGMOID:
        r = bin(&s, DT_MUL, g, bin(&s, DT_MUL, t, s_bin(&s, DT_SUB, 1.0, t)));
        break;
    case DT_TANH:
        r = bin(&s, DT_MUL, g, s_bin(&s, DT_SUB, 1.0, bin(&s, DT_MUL, t, t)));
        break;
    default:
        s.st = dt_fail(DT_ERR_STATE, "internal error: no gradient for unary op %d", (int)op);
    }
    give(&s, n, 0, r, gi);
    return done(&s);
}

dt_status dt_f_unary(dt_unop op, const dt_tensor *a, dt_tensor **out)
{
    static const char *names[] = {"NegBackward", "AbsBackward", "SignBackward", "ExpBackward",
                                  "LogBackward", "SqrtBackward", "RsqrtBackward", "ReluBackward",
                                  "SigmoidBackward", "TanhBackward"};
    dt_status st = dt_unary(op, a, out);
    if (st || (*out)->dtype != DT_FLOAT32)
        return st;
    const dt_tensor *save = NULL;
    if (op == DT_ABS || op == DT_LOG)
        save = a;
    else if (op != DT_NEG && op != DT_SIGN)
        save = *out;
    dt_node *n;
    st = record(names[op], unary_backward, 1, &a, save ? 1 : 0, &save, out, &n);
    if (st == DT_OK && n)
        n->iarg[0] = op;
    return st;
}

/* ------------------------------------------------------------ clamp, where */

/* Gradient passes where lo <= x <= hi. saved[0] = x; darg = lo, hi. */
static dt_status clamp_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    tmp s = {0};
    dt_tensor *x = saved(&s, n, 0);
    dt_tensor *inside = bin(&s, DT_MUL, bin_s(&s, DT_GE, x, n->darg[0]),
                            bin_s(&s, DT_LE, x, n->darg[1]));
    give(&s, n, 0, sel(&s, inside, g, zero(&s)), gi);
    return done(&s);
}

dt_status dt_f_clamp(const dt_tensor *a, double lo, double hi, dt_tensor **out)
{
    dt_status st = dt_clamp(a, lo, hi, out);
    if (st || (*out)->dtype != DT_FLOAT32)
        return st;
    dt_node *n;
    st = record("ClampBackward", clamp_backward, 1, &a, 1, &a, out, &n);
    if (st == DT_OK && n) {
        n->darg[0] = lo;
        n->darg[1] = hi;
    }
    return st;
}

/* saved[0] = cond; inputs a, b. */
static dt_status where_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    tmp s = {0};
    dt_tensor *cond = saved(&s, n, 0);
    if (n->needs_grad[0])
        give(&s, n, 0, sel(&s, cond, g, zero(&s)), gi);
    if (n->needs_grad[1])
        give(&s, n, 1, sel(&s, cond, zero(&s), g), gi);
    return done(&s);
}

dt_status dt_f_where(const dt_tensor *cond, const dt_tensor *a, const dt_tensor *b,
                     dt_tensor **out)
{
    dt_status st = dt_where(cond, a, b, out);
    if (st || (*out)->dtype != DT_FLOAT32)
        return st;
    const dt_tensor *inputs[2] = {a, b};
    return record("WhereBackward", where_backward, 2, inputs, 1, &cond, out, NULL);
}

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
    st = record(names[op], reduce_backward, 1, &a, nsave, save, out, &n);
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
