/* fsecd.c - the fused contrastive loss of FSECD (see docs/distillers.md).
 *
 * For student embeddings z (B x D), teacher features t (B x D) and labels y:
 *   zh_i = z_i / max(|z_i|, eps),  th_j = t_j / max(|t_j|, eps)
 *   L_ij = zh_i . th_j / tau                        (one sgemm)
 *   row loss  = -(1/B) sum_i w_i sum_j [j in P(i)] (L_ij - logsumexp_k L_ik)
 * with P(i) = {i} (instance policy) or {j : y_j == y_i} (class policy) and
 * w_i = 1/|P(i)|. symmetric = true averages it with the same loss over
 * columns (teacher features as anchors).
 *
 * dLoss/dL_ij is softmax minus the normalised positive indicator, so the
 * forward pass, which already holds the softmax, writes that gradient
 * matrix G once; backward is then two sgemms and the normalisation's
 * Jacobian. Positives are found by comparing labels on the fly: no B x B
 * mask is ever stored. */
#include "distill.h"
#include "autograd/op.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct fsecd_ctx {
    int64_t batch, dim;
    float *zh, *th;        /* normalised rows, B x D */
    float *z_norm, *t_norm; /* max(|row|, eps) */
    bool *z_clamped, *t_clamped;
    float *grad_logits;    /* G = dLoss/dL, B x B */
    float inv_tau;
} fsecd_ctx;

static void ctx_free(void *p)
{
    fsecd_ctx *c = p;
    if (!c)
        return;
    free(c->zh);
    free(c->th);
    free(c->z_norm);
    free(c->t_norm);
    free(c->z_clamped);
    free(c->t_clamped);
    free(c->grad_logits);
    free(c);
}

/* Rows of a (B x D, any strides) divided by max(|row|, eps) into dst. */
static void normalise_rows(const dt_tensor *a, float eps, float *dst, float *norms, bool *clamped)
{
    int64_t rows = a->shape[0], cols = a->shape[1];
    const float *base = dt_f32(a);
    for (int64_t i = 0; i < rows; i++) {
        const float *row = base + i * a->stride[0];
        double sq = 0;
        for (int64_t k = 0; k < cols; k++) {
            double v = row[k * a->stride[1]];
            sq += v * v;
        }
        double n = sqrt(sq);
        clamped[i] = n <= eps;
        norms[i] = clamped[i] ? eps : (float)n;
        for (int64_t k = 0; k < cols; k++)
            dst[i * cols + k] = row[k * a->stride[1]] / norms[i];
    }
}

/* Row-anchored half of the loss over a B x B logit matrix read with strides
 * (row_stride, col_stride): passing (1, B) reads it transposed, which gives
 * the column-anchored half. Adds `scale` x its gradient into grad (same
 * orientation as the logits it read) and returns the loss. */
static double anchored_loss(const float *logits, int64_t b, int64_t rs, int64_t cs,
                            const int64_t *labels, float scale, float *grad, double *row_loss)
{
    #pragma omp parallel for schedule(static) if (b >= 256)
    for (int64_t i = 0; i < b; i++) {
        const float *row = logits + i * rs;
        float maximum = -INFINITY;
        for (int64_t j = 0; j < b; j++)
            maximum = fmaxf(maximum, row[j * cs]);
        double sum = 0;
        for (int64_t j = 0; j < b; j++)
            sum += exp((double)(row[j * cs] - maximum));
        double lse = maximum + log(sum);
        int64_t positives = 0;
        double positive_logits = 0;
        for (int64_t j = 0; j < b; j++) {
            if (labels ? labels[j] == labels[i] : j == i) {
                positives++;
                positive_logits += row[j * cs];
            }
        }
        /* mean over positives of -(L_ij - lse) */
        row_loss[i] = lse - positive_logits / (double)positives;
        if (grad) {
            double weight = 1.0 / (double)positives;
            for (int64_t j = 0; j < b; j++) {
                double p = exp((double)row[j * cs] - lse);
                bool positive = labels ? labels[j] == labels[i] : j == i;
                grad[i * rs + j * cs] += (float)(scale * (p - (positive ? weight : 0.0)));
            }
        }
    }
    /* summed in index order, so the result does not depend on threads */
    double total = 0;
    for (int64_t i = 0; i < b; i++)
        total += row_loss[i];
    return total;
}

static dt_status fsecd_backward(dt_node *n, const dt_tensor *grad_out, dt_tensor **gi)
{
    fsecd_ctx *c = n->ctx;
    if (!c)
        return dt_fail(DT_ERR_STATE, "FsecdBackward: saved state was freed (backward twice? "
                       "use retain_graph)");
    int64_t b = c->batch, d = c->dim;
    float upstream = dt_f32(grad_out)[0] * c->inv_tau;
    for (int input = 0; input < 2; input++) {
        if (!n->needs_grad[input])
            continue;
        int64_t shape[2] = {b, d};
        dt_status st = dt_zeros(DT_FLOAT32, 2, shape, &gi[input]);
        if (st)
            return st;
        float *g = dt_f32(gi[input]);
        /* d/dzh = G th / tau;  d/dth = G^T zh / tau */
        const float *other = input == 0 ? c->th : c->zh;
        dt_sgemm(input != 0, false, b, d, b, upstream, c->grad_logits, b, other, d, 0.0f, g, d);
        /* Through x / max(|x|, eps): (g - xh (xh . g)) / |x|, or g / eps
         * where the norm was clamped. */
        const float *xh = input == 0 ? c->zh : c->th;
        const float *norms = input == 0 ? c->z_norm : c->t_norm;
        const bool *clamped = input == 0 ? c->z_clamped : c->t_clamped;
        for (int64_t i = 0; i < b; i++) {
            float *gr = g + i * d;
            const float *xr = xh + i * d;
            double dot = 0;
            if (!clamped[i])
                for (int64_t k = 0; k < d; k++)
                    dot += (double)xr[k] * gr[k];
            for (int64_t k = 0; k < d; k++)
                gr[k] = (float)((gr[k] - xr[k] * dot) / norms[i]);
        }
    }
    return DT_OK;
}

static dt_status check_inputs(const dt_tensor *z, const dt_tensor *t, const dt_tensor *labels,
                              const dt_fsecd_opts *o)
{
    char a[128], b[128];
    if (z->dtype != DT_FLOAT32 || t->dtype != DT_FLOAT32)
        return dt_fail(DT_ERR_DTYPE, "student and teacher features must be float32, got %s and %s",
                       dt_dtype_name(z->dtype), dt_dtype_name(t->dtype));
    if (z->ndim != 2 || t->ndim != 2 || z->shape[0] != t->shape[0] || z->shape[1] != t->shape[1])
        return dt_fail(DT_ERR_SHAPE, "student embeddings %s and teacher features %s must both be "
                       "B x D with the same B and D (embed the student first)",
                       dt_shape_str(z->shape, z->ndim, a, sizeof a),
                       dt_shape_str(t->shape, t->ndim, b, sizeof b));
    if (z->shape[0] < 1)
        return dt_fail(DT_ERR_SHAPE, "the batch is empty");
    if (!(o->tau > 0) || !(o->eps > 0))
        return dt_fail(DT_ERR_ARG, "tau and eps must be > 0, got tau %g, eps %g", o->tau, o->eps);
    if (o->policy == DT_FSECD_CLASS && !labels)
        return dt_fail(DT_ERR_ARG, "the class policy needs labels");
    if (labels) {
        if (labels->dtype != DT_INT64 || labels->ndim != 1)
            return dt_fail(DT_ERR_DTYPE, "labels must be a 1-d int64 tensor, got %s %s",
                           dt_dtype_name(labels->dtype),
                           dt_shape_str(labels->shape, labels->ndim, a, sizeof a));
        if (labels->shape[0] != z->shape[0])
            return dt_fail(DT_ERR_SHAPE, "%lld labels for a batch of %lld",
                           (long long)labels->shape[0], (long long)z->shape[0]);
    }
    return DT_OK;
}

dt_status dt_f_fsecd_loss(const dt_tensor *z, const dt_tensor *t, const dt_tensor *labels,
                          const dt_fsecd_opts *opts, dt_tensor **out)
{
    *out = NULL;
    dt_status st = check_inputs(z, t, labels, opts);
    if (st)
        return st;
    int64_t b = z->shape[0], d = z->shape[1];
    const dt_tensor *inputs[2] = {z, t};
    bool record = dt_any_needs_grad(2, inputs);

    fsecd_ctx *c = calloc(1, sizeof *c);
    float *logits = malloc((size_t)(b * b) * sizeof *logits);
    double *row_loss = malloc((size_t)b * sizeof *row_loss);
    int64_t *label_values = labels ? malloc((size_t)b * sizeof *label_values) : NULL;
    if (c) {
        c->batch = b;
        c->dim = d;
        c->inv_tau = (float)(1.0 / opts->tau);
        c->zh = malloc((size_t)(b * d) * sizeof(float));
        c->th = malloc((size_t)(b * d) * sizeof(float));
        c->z_norm = malloc((size_t)b * sizeof(float));
        c->t_norm = malloc((size_t)b * sizeof(float));
        c->z_clamped = malloc((size_t)b * sizeof(bool));
        c->t_clamped = malloc((size_t)b * sizeof(bool));
        c->grad_logits = record ? calloc((size_t)(b * b), sizeof(float)) : NULL;
    }
    if (!c || !logits || !row_loss || (labels && !label_values) || !c->zh || !c->th || !c->z_norm ||
        !c->t_norm || !c->z_clamped || !c->t_clamped || (record && !c->grad_logits)) {
        ctx_free(c);
        free(logits);
        free(row_loss);
        free(label_values);
        return dt_fail(DT_ERR_NOMEM, "out of memory for a batch of %lld", (long long)b);
    }
    if (labels)
        for (int64_t i = 0; i < b; i++)
            label_values[i] = dt_get_flat_i64(labels, i);
    const int64_t *policy_labels = opts->policy == DT_FSECD_CLASS ? label_values : NULL;

    normalise_rows(z, (float)opts->eps, c->zh, c->z_norm, c->z_clamped);
    normalise_rows(t, (float)opts->eps, c->th, c->t_norm, c->t_clamped);
    dt_sgemm(false, true, b, b, d, c->inv_tau, c->zh, d, c->th, d, 0.0f, logits, b);

    float half = opts->symmetric ? 0.5f : 1.0f;
    float scale = half / (float)b;
    double loss = anchored_loss(logits, b, b, 1, policy_labels, scale, c->grad_logits, row_loss) / (double)b;
    if (opts->symmetric) {
        double column_loss = anchored_loss(logits, b, 1, b, policy_labels, scale, c->grad_logits,
                                           row_loss);
        loss = 0.5 * (loss + column_loss / (double)b);
    }
    free(logits);
    free(row_loss);
    free(label_values);

    st = dt_scalar(DT_FLOAT32, loss, out);
    dt_node *node = NULL;
    if (st == DT_OK && record)
        st = dt_record("FsecdBackward", fsecd_backward, 2, inputs, 0, NULL, *out, &node);
    if (st == DT_OK && node) {
        node->ctx = c;
        node->free_ctx = ctx_free;
        return DT_OK;
    }
    ctx_free(c);
    if (st) {
        dt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}
