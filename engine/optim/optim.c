/* optim.c - fused in-place optimizer updates (SGD, Adam, AdamW).
 *
 * Each step is one pass over the elements, following torch.optim's
 * single-tensor formulas in float32. The work is elementwise, so the
 * results are the same for any number of OpenMP threads. Non-contiguous
 * tensors are handled by running the contiguous kernel on packed copies and
 * writing the updated ones back. */
#include "distill.h"
#include "autograd/op.h"
#include "core/overlap.h"

#include <math.h>
#include <stdlib.h>

#define PARALLEL_MIN 32768   /* elements below which threads do not pay off */

/* ------------------------------------------------------------- checking */

static dt_status check_operand(const char *what, const dt_tensor *t,
                               const dt_tensor *param, bool writable)
{
    char a[128], b[128];
    if (!t)
        return dt_fail(DT_ERR_ARG, "%s is missing", what);
    if (t->dtype != DT_FLOAT32)
        return dt_fail(DT_ERR_DTYPE, "%s must be float32, got %s", what,
                       dt_dtype_name(t->dtype));
    if (!dt_same_shape(t, param))
        return dt_fail(DT_ERR_SHAPE, "%s has shape %s but the parameter has shape %s",
                       what, dt_shape_str(t->shape, t->ndim, a, sizeof a),
                       dt_shape_str(param->shape, param->ndim, b, sizeof b));
    if (writable)
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] > 1 && t->stride[d] == 0)
                return dt_fail(DT_ERR_ARG, "%s is an expanded view (several elements share "
                               "memory) and cannot be updated in place", what);
    return DT_OK;
}

/* The operands of one step must be separate tensors: the step reads and
 * writes them element by element, so a buffer that shares memory with
 * another (even exactly) would be read after it was updated. */
static dt_status check_disjoint(int n, dt_tensor *const *ts, const char *const *names)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (ts[i] && ts[j] && dt_share_memory(ts[i], ts[j]))
                return dt_fail(DT_ERR_ARG, "%s and %s share memory; an optimizer step needs "
                               "separate tensors", names[i], names[j]);
    return DT_OK;
}

/* Packed (contiguous) working copies of the operands; `orig` are written
 * back by unpack() for the writable ones. */
typedef struct packed {
    int n;
    dt_tensor *orig[5];
    dt_tensor *work[5];
    bool writable[5];
} packed;

static dt_status pack(packed *p, int n, dt_tensor **ts, const bool *writable)
{
    p->n = n;
    for (int i = 0; i < n; i++) {
        p->orig[i] = ts[i];
        p->work[i] = NULL;
        p->writable[i] = writable[i];
    }
    for (int i = 0; i < n; i++) {
        if (!ts[i])
            continue;
        dt_status st = dt_contiguous(ts[i], &p->work[i]);
        if (st) {
            for (int j = 0; j < i; j++)
                dt_tensor_release(p->work[j]);
            return st;
        }
    }
    return DT_OK;
}

static void unpack(packed *p)
{
    for (int i = 0; i < p->n; i++) {
        if (!p->work[i])
            continue;
        if (p->writable[i]) {
            if (p->work[i] != p->orig[i])
                dt_copy_(p->orig[i], p->work[i]);
            else
                p->orig[i]->storage->version++;
        }
        dt_tensor_release(p->work[i]);
    }
}

/* ------------------------------------------------------------------ SGD */

static void sgd_kernel(float *param, const float *grad, float *buf, int64_t n,
                       const dt_sgd_opts *o, bool fresh)
{
    const float lr = (float)o->lr, mom = (float)o->momentum, wd = (float)o->weight_decay;
    const float damp1 = (float)(1.0 - o->dampening);
    const float sign = o->maximize ? -1.0f : 1.0f;
    const bool use_buf = o->momentum != 0, nesterov = o->nesterov;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        float g = sign * grad[i];
        if (wd != 0)
            g = g + wd * param[i];
        if (use_buf) {
            float b = fresh ? g : mom * buf[i] + damp1 * g;
            buf[i] = b;
            g = nesterov ? g + mom * b : b;
        }
        param[i] = param[i] - lr * g;
    }
}

dt_status dt_sgd_step_(dt_tensor *param, const dt_tensor *grad, dt_tensor *momentum_buf,
                       bool fresh_buffer, const dt_sgd_opts *o)
{
    DT_PROF_SCOPE(DT_PROF_OPTIM);
    dt_status st = check_operand("param", param, param, true);
    if (!st)
        st = check_operand("grad", grad, param, false);
    if (!st && o->momentum != 0)
        st = check_operand("momentum_buffer", momentum_buf, param, true);
    if (st)
        return st;
    if (!(o->lr >= 0) || !(o->momentum >= 0) || !(o->weight_decay >= 0))
        return dt_fail(DT_ERR_ARG, "lr, momentum and weight_decay must be >= 0 (got %g, %g, "
                       "%g)", o->lr, o->momentum, o->weight_decay);
    if (o->nesterov && (o->momentum <= 0 || o->dampening != 0))
        return dt_fail(DT_ERR_ARG, "nesterov momentum requires a momentum and zero "
                       "dampening");
    dt_tensor *ts[3] = {param, (dt_tensor *)grad, o->momentum != 0 ? momentum_buf : NULL};
    if ((st = check_disjoint(3, ts, (const char *const[]){"param", "grad", "momentum_buffer"})))
        return st;
    packed p;
    if ((st = pack(&p, 3, ts, (const bool[]){true, false, true})))
        return st;
    sgd_kernel(dt_f32(p.work[0]), dt_f32(p.work[1]), p.work[2] ? dt_f32(p.work[2]) : NULL,
               dt_numel(param), o, fresh_buffer);
    unpack(&p);
    return DT_OK;
}

/* ----------------------------------------------------------------- Adam */

static void adam_kernel(float *param, const float *grad, float *restrict m,
                        float *restrict v, float *restrict vmax, int64_t n, int64_t step,
                        const dt_adam_opts *o)
{
    const float beta2 = (float)o->beta2;
    const float one_m_b1 = (float)(1.0 - o->beta1), one_m_b2 = (float)(1.0 - o->beta2);
    const float eps = (float)o->eps, wd = (float)o->weight_decay;
    const float sign = o->maximize ? -1.0f : 1.0f;
    const double bc1 = 1.0 - pow(o->beta1, (double)step);
    const double bc2 = 1.0 - pow(o->beta2, (double)step);
    const float step_size = (float)(o->lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float decay = (float)(1.0 - o->lr * o->weight_decay);
    const bool decoupled = o->decoupled, coupled_wd = !o->decoupled && o->weight_decay != 0;
    const bool amsgrad = o->amsgrad;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        float g = sign * grad[i];
        float p = param[i];
        if (decoupled)
            p = p * decay;
        else if (coupled_wd)
            g = g + wd * p;
        float mi = m[i] + one_m_b1 * (g - m[i]);          /* lerp, as torch */
        float vi = beta2 * v[i] + one_m_b2 * g * g;
        m[i] = mi;
        v[i] = vi;
        float vs = vi;
        if (amsgrad) {
            vs = vmax[i] > vi ? vmax[i] : vi;
            vmax[i] = vs;
        }
        float denom = sqrtf(vs) / bc2_sqrt + eps;
        param[i] = p - step_size * (mi / denom);
    }
}

dt_status dt_adam_step_(dt_tensor *param, const dt_tensor *grad, dt_tensor *exp_avg,
                        dt_tensor *exp_avg_sq, dt_tensor *max_exp_avg_sq, int64_t step,
                        const dt_adam_opts *o)
{
    DT_PROF_SCOPE(DT_PROF_OPTIM);
    dt_status st = check_operand("param", param, param, true);
    if (!st)
        st = check_operand("grad", grad, param, false);
    if (!st)
        st = check_operand("exp_avg", exp_avg, param, true);
    if (!st)
        st = check_operand("exp_avg_sq", exp_avg_sq, param, true);
    if (!st && o->amsgrad)
        st = check_operand("max_exp_avg_sq", max_exp_avg_sq, param, true);
    if (st)
        return st;
    if (step < 1)
        return dt_fail(DT_ERR_ARG, "step counts from 1, got %lld", (long long)step);
    if (!(o->lr >= 0) || !(o->eps >= 0) || !(o->weight_decay >= 0))
        return dt_fail(DT_ERR_ARG, "lr, eps and weight_decay must be >= 0 (got %g, %g, %g)",
                       o->lr, o->eps, o->weight_decay);
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
        return dt_fail(DT_ERR_ARG, "betas must be in [0, 1), got (%g, %g)", o->beta1,
                       o->beta2);
    dt_tensor *ts[5] = {param, (dt_tensor *)grad, exp_avg, exp_avg_sq,
                        o->amsgrad ? max_exp_avg_sq : NULL};
    if ((st = check_disjoint(5, ts, (const char *const[]){"param", "grad", "exp_avg",
                                                           "exp_avg_sq", "max_exp_avg_sq"})))
        return st;
    packed p;
    if ((st = pack(&p, 5, ts, (const bool[]){true, false, true, true, true})))
        return st;
    adam_kernel(dt_f32(p.work[0]), dt_f32(p.work[1]), dt_f32(p.work[2]), dt_f32(p.work[3]),
                p.work[4] ? dt_f32(p.work[4]) : NULL, dt_numel(param), step, o);
    unpack(&p);
    return DT_OK;
}
