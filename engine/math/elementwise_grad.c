/* elementwise_grad.c - elementwise maths on the tape: the dt_f_ versions
 * of elementwise.c's ops (binary, tensor-scalar, unary, clamp, where).
 *
 * Each dt_f_* op runs the plain kernel and records a node whose backward
 * is written next to it, as a composition of the plain ops
 * (grad_formula.h). Gradients of broadcast operands are summed back to
 * their shapes. Results that are not float32 (comparisons, integer maths)
 * never record. */
#include "distill.h"
#include "autograd/op.h"
#include "grad_formula.h"

#include <math.h>
#include <string.h>

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
    st = dt_record_or_drop(binary_name(op), binary_backward, 2, inputs, nsave, save, out, &n);
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
    dt_status st = dt_record_or_drop(binary_name(op), scalar_backward, 1, &a,
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
    st = dt_record_or_drop(names[op], unary_backward, 1, &a, save ? 1 : 0, &save, out, &n);
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
    st = dt_record_or_drop("ClampBackward", clamp_backward, 1, &a, 1, &a, out, &n);
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
    return dt_record_or_drop("WhereBackward", where_backward, 2, inputs, 1, &cond, out, NULL);
}
