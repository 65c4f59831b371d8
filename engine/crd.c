/* crd.c - the memory-bank scores of CRD (Tian et al., ICLR 2020).
 *
 * For a batch of embeddings v (B x D) and, per sample, K+1 bank rows
 * (the positive first, then K negatives) given as indices (B x (K+1)):
 *   out[b][k] = exp(bank[idx[b][k]] . v[b] / T)
 * At CRD's defaults (K = 16384, D = 128, B = 64) the gathered rows would
 * be 0.5 GB per bank; here each row is read in place from the bank, in
 * the forward and again in the backward, and nothing B x K x D is stored.
 * The bank is state, not a parameter: gradients flow to v only. */
#include "distill.h"

#include <math.h>
#include <stdlib.h>

static dt_status check_scores_inputs(const dt_tensor *bank, const dt_tensor *idx,
                                     const dt_tensor *v)
{
    char a[128], b[128], c[128];
    if (bank->dtype != DT_FLOAT32 || v->dtype != DT_FLOAT32 || idx->dtype != DT_INT64)
        return dt_fail(DT_ERR_DTYPE, "bank and embeddings must be float32 and indices int64");
    if (bank->ndim != 2 || v->ndim != 2 || idx->ndim != 2 || idx->shape[0] != v->shape[0] ||
        bank->shape[1] != v->shape[1])
        return dt_fail(DT_ERR_SHAPE, "expected bank N x D, indices B x (K+1), embeddings B x D; "
                       "got %s, %s, %s", dt_shape_str(bank->shape, 2, a, sizeof a),
                       dt_shape_str(idx->shape, idx->ndim, b, sizeof b),
                       dt_shape_str(v->shape, v->ndim, c, sizeof c));
    if (!dt_is_contiguous(bank))
        return dt_fail(DT_ERR_ARG, "the memory bank must be contiguous");
    int64_t n = bank->shape[0], count = dt_numel(idx);
    for (int64_t i = 0; i < count; i++) {
        int64_t k = dt_get_flat_i64(idx, i);
        if (k < 0 || k >= n)
            return dt_fail(DT_ERR_INDEX, "bank index %lld out of range for a bank of %lld rows",
                           (long long)k + 1, (long long)n);
    }
    return DT_OK;
}

static dt_status crd_scores_backward(dt_node *node, const dt_tensor *grad_out, dt_tensor **gi)
{
    dt_tensor *bank, *idx, *v, *out;
    dt_status st = dt_node_saved(node, 0, &bank);
    if (st == DT_OK)
        st = dt_node_saved(node, 1, &idx);
    if (st == DT_OK)
        st = dt_node_saved(node, 2, &v);
    if (st == DT_OK)
        st = dt_node_saved(node, 3, &out);
    if (st || !node->needs_grad[2])
        return st;
    int64_t batch = v->shape[0], d = v->shape[1], k1 = idx->shape[1];
    double inv_t = node->darg[0];
    dt_tensor *g;
    st = dt_zeros(DT_FLOAT32, 2, v->shape, &g);
    if (st)
        return st;
    const float *rows = dt_f32(bank);
    float *gv = dt_f32(g);
    /* d out[b][k] / d v[b] = out[b][k] / T * bank[idx[b][k]] */
    #pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < batch; b++) {
        float *gb = gv + b * d;
        for (int64_t k = 0; k < k1; k++) {
            int64_t flat = b * k1 + k;
            float coef = (float)(dt_get_flat(grad_out, flat) * dt_get_flat(out, flat) * inv_t);
            const float *row = rows + dt_get_flat_i64(idx, flat) * d;
            for (int64_t j = 0; j < d; j++)
                gb[j] += coef * row[j];
        }
    }
    gi[2] = g;
    return DT_OK;
}

dt_status dt_f_crd_scores(const dt_tensor *bank, const dt_tensor *idx, const dt_tensor *v,
                          double temperature, dt_tensor **out)
{
    *out = NULL;
    dt_status st = check_scores_inputs(bank, idx, v);
    if (st)
        return st;
    if (!(temperature > 0))
        return dt_fail(DT_ERR_ARG, "temperature must be > 0, got %g", temperature);
    dt_tensor *vc;
    st = dt_contiguous((dt_tensor *)v, &vc);
    if (st)
        return st;
    int64_t batch = v->shape[0], d = v->shape[1], k1 = idx->shape[1];
    st = dt_zeros(DT_FLOAT32, 2, idx->shape, out);
    if (st) {
        dt_tensor_release(vc);
        return st;
    }
    const float *rows = dt_f32(bank), *vv = dt_f32(vc);
    float *o = dt_f32(*out);
    double inv_t = 1.0 / temperature;
    #pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < batch; b++) {
        const float *vb = vv + b * d;
        for (int64_t k = 0; k < k1; k++) {
            const float *row = rows + dt_get_flat_i64(idx, b * k1 + k) * d;
            float dot = 0;
            for (int64_t j = 0; j < d; j++)
                dot += row[j] * vb[j];
            o[b * k1 + k] = (float)exp(dot * inv_t);
        }
    }
    dt_tensor_release(vc);
    dt_node *node;
    st = dt_record("CrdScoresBackward", crd_scores_backward, 3,
                   (const dt_tensor *[]){bank, idx, v}, 4,
                   (const dt_tensor *[]){bank, idx, v, *out}, *out, &node);
    if (st) {
        dt_tensor_release(*out);
        *out = NULL;
        return st;
    }
    if (node)
        node->darg[0] = inv_t;
    return DT_OK;
}

dt_status dt_crd_update_bank_(dt_tensor *bank, const dt_tensor *idx, const dt_tensor *v,
                              double momentum)
{
    char a[128], b[128], c[128];
    if (bank->dtype != DT_FLOAT32 || v->dtype != DT_FLOAT32 || idx->dtype != DT_INT64)
        return dt_fail(DT_ERR_DTYPE, "bank and embeddings must be float32 and indices int64");
    if (bank->ndim != 2 || v->ndim != 2 || idx->ndim != 1 || idx->shape[0] != v->shape[0] ||
        bank->shape[1] != v->shape[1] || !dt_is_contiguous(bank))
        return dt_fail(DT_ERR_SHAPE, "expected a contiguous bank N x D, indices B, embeddings "
                       "B x D; got %s, %s, %s", dt_shape_str(bank->shape, bank->ndim, a, sizeof a),
                       dt_shape_str(idx->shape, idx->ndim, b, sizeof b),
                       dt_shape_str(v->shape, v->ndim, c, sizeof c));
    int64_t n = bank->shape[0], d = bank->shape[1];
    for (int64_t i = 0; i < idx->shape[0]; i++) {
        int64_t row = dt_get_flat_i64(idx, i);
        if (row < 0 || row >= n)
            return dt_fail(DT_ERR_INDEX, "bank index %lld out of range for a bank of %lld rows",
                           (long long)row + 1, (long long)n);
    }
    float *rows = dt_f32(bank);
    /* Rows in batch order: a repeated index ends with its last update, as
     * the reference implementation's index_copy_ does. */
    for (int64_t i = 0; i < idx->shape[0]; i++) {
        float *row = rows + dt_get_flat_i64(idx, i) * d;
        double sq = 0;
        for (int64_t j = 0; j < d; j++) {
            double mixed = momentum * row[j] + (1.0 - momentum) * dt_get_flat(v, i * d + j);
            row[j] = (float)mixed;
            sq += mixed * mixed;
        }
        double norm = sqrt(sq);
        if (norm > 0)
            for (int64_t j = 0; j < d; j++)
                row[j] = (float)(row[j] / norm);
    }
    bank->storage->version++;
    return DT_OK;
}
