/* crd.c - the memory-bank scores of CRD (Tian et al., ICLR 2020).
 *
 * For a batch of embeddings v (B x D) and, per sample, K+1 bank rows
 * (the positive first, then K negatives) given as indices (B x (K+1)):
 *   out[b][k] = exp(bank[idx[b][k]] . v[b] / T)
 * At CRD's defaults (K = 16384, D = 128, B = 64) the gathered rows would
 * be 0.5 GB per bank, and reading them at random runs at memory speed. So
 * when the rows named are many against the bank's size (always, at CRD's
 * settings), the bank is instead multiplied with v as one GEMM and the
 * named scores picked out of the B x N product; otherwise each named row
 * is read in place. Nothing B x K x D is stored either way.
 * The bank is state, not a parameter: gradients flow to v only. */
#include "distill.h"
#include "autograd/op.h"
#include "core/overlap.h"

#include <math.h>
#include <stdlib.h>

static dt_status check_scores_shapes(const dt_tensor *bank, const dt_tensor *idx,
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
    return DT_OK;
}

/* Every index of a contiguous index list names a row of an n-row bank. */
static dt_status check_rows(const int64_t *ix, int64_t count, int64_t n)
{
    for (int64_t i = 0; i < count; i++)
        if (ix[i] < 0 || ix[i] >= n)
            return dt_fail(DT_ERR_INDEX, "bank index %lld out of range for a bank of %lld rows",
                           (long long)ix[i] + 1, (long long)n);
    return DT_OK;
}

/* Below this many multiply-adds a parallel region costs more than it saves
 * (each row of the batch is independent: results do not depend on it). */
#define PARALLEL_MIN_MACS 65536

/* row . v in DOT_LANES interleaved partial sums added up in a fixed order:
 * the compiler keeps the lanes in one vector register, while one running
 * sum would serialise on the add latency (D = 128 per score, ~1M scores per
 * step at CRD's defaults). The order depends on d only, never on threads. */
#define DOT_LANES 16

static float lane_dot(const float *row, const float *v, int64_t d)
{
    float acc[DOT_LANES] = {0};
    int64_t j = 0;
    for (; j + DOT_LANES <= d; j += DOT_LANES)
        for (int l = 0; l < DOT_LANES; l++)
            acc[l] += row[j + l] * v[j + l];
    for (int l = 0; j < d; j++, l++)
        acc[l] += row[j] * v[j];
    float sum = 0;
    for (int l = 0; l < DOT_LANES; l++)
        sum += acc[l];
    return sum;
}

/* The dense path pays for B x N dot products at GEMM speed, the gathered
 * one for B x (K+1) rows read at random, each 9 (bank in cache) to 36
 * (not) times slower (scripts/bench_crd.lua, docs/performance.md): dense
 * while the bank has at most this many rows per row a sample names, and
 * while its B x N scores fit in the scratch limit (an ImageNet bank does
 * not, and is read row by row). */
#define DENSE_MAX_BANK_PER_NAMED 8
#define DENSE_MAX_SCORES (INT64_C(1) << 24)

static bool use_dense(int64_t bank_rows, int64_t batch, int64_t k1)
{
    return bank_rows / DENSE_MAX_BANK_PER_NAMED <= k1 && batch > 0 &&
           bank_rows <= DENSE_MAX_SCORES / batch;
}

/* out[b][k] = exp(bank[ix[b][k]] . v[b] / T): the whole bank's scores for
 * every sample by one GEMM, then the named ones picked out of each
 * sample's row. */
static dt_status scores_dense(const float *rows, int64_t bank_rows, const int64_t *ix,
                              const float *vv, int64_t batch, int64_t k1, int64_t d,
                              double inv_t, float *o)
{
    /* engine tensors as scratch: the storage cache hands the same block
     * back every step instead of fresh pages to fault in */
    dt_tensor *scratch;
    dt_status st = dt_empty(DT_FLOAT32, 2, (const int64_t[]){batch, bank_rows}, &scratch);
    if (st)
        return st;
    float *scores = dt_f32(scratch);
    dt_sgemm(false, true, batch, bank_rows, d, 1.0f, vv, d, rows, d, 0.0f, scores, bank_rows);
    #pragma omp parallel for schedule(static) if (batch * k1 >= PARALLEL_MIN_MACS)
    for (int64_t b = 0; b < batch; b++) {
        const float *row = scores + b * bank_rows;
        for (int64_t k = 0; k < k1; k++)
            o[b * k1 + k] = (float)exp(row[ix[b * k1 + k]] * inv_t);
    }
    dt_tensor_release(scratch);
    return DT_OK;
}

/* g[b] += sum_k coef[b][k] bank[ix[b][k]] with coef = grad_out * out / T
 * (d out[b][k] / d v[b] = out[b][k] / T * bank[ix[b][k]]): the
 * coefficients added into a dense B x N matrix, each sample's row in index
 * order, then one GEMM with the bank. */
static dt_status grad_dense(const float *rows, int64_t bank_rows, const int64_t *ix,
                            const float *gop, const float *op, double inv_t, int64_t batch,
                            int64_t k1, int64_t d, float *g)
{
    dt_tensor *scratch;
    dt_status st = dt_zeros(DT_FLOAT32, 2, (const int64_t[]){batch, bank_rows}, &scratch);
    if (st)
        return st;
    float *weights = dt_f32(scratch);
    #pragma omp parallel for schedule(static) if (batch * k1 >= PARALLEL_MIN_MACS)
    for (int64_t b = 0; b < batch; b++) {
        float *row = weights + b * bank_rows;
        for (int64_t k = 0; k < k1; k++) {
            int64_t flat = b * k1 + k;
            row[ix[flat]] += (float)(gop[flat] * op[flat] * inv_t);
        }
    }
    dt_sgemm(false, false, batch, d, bank_rows, 1.0f, weights, bank_rows, rows, d, 1.0f, g, d);
    dt_tensor_release(scratch);
    return DT_OK;
}

/* The same sums reading each named row in place. */
static void grad_gathered(const float *rows, const int64_t *ix, const float *gop,
                          const float *op, double inv_t, int64_t batch, int64_t k1, int64_t d,
                          float *g)
{
    #pragma omp parallel for schedule(static) if (batch * k1 * d >= PARALLEL_MIN_MACS)
    for (int64_t b = 0; b < batch; b++) {
        float *gb = g + b * d;
        for (int64_t k = 0; k < k1; k++) {
            int64_t flat = b * k1 + k;
            float coef = (float)(gop[flat] * op[flat] * inv_t);
            const float *row = rows + ix[flat] * d;
            for (int64_t j = 0; j < d; j++)
                gb[j] += coef * row[j];
        }
    }
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
    /* idx and out were saved contiguous by the forward; grad_out may be a
     * broadcast view (the backward of a sum), so it is made dense once. */
    dt_tensor *go;
    st = dt_contiguous((dt_tensor *)grad_out, &go);
    if (st)
        return st;
    dt_tensor *g;
    st = dt_zeros(DT_FLOAT32, 2, v->shape, &g);
    if (st) {
        dt_tensor_release(go);
        return st;
    }
    const float *rows = dt_f32(bank), *gop = dt_f32(go), *op = dt_f32(out);
    const int64_t *ix = dt_i64(idx);
    if (use_dense(bank->shape[0], batch, k1))
        st = grad_dense(rows, bank->shape[0], ix, gop, op, inv_t, batch, k1, d, dt_f32(g));
    else
        grad_gathered(rows, ix, gop, op, inv_t, batch, k1, d, dt_f32(g));
    dt_tensor_release(go);
    if (st) {
        dt_tensor_release(g);
        return st;
    }
    gi[2] = g;
    return DT_OK;
}

/* out[b][k] = exp(bank[ix[b][k]] . v[b] / T) reading each named row in place. */
static void scores_gathered(const float *rows, const int64_t *ix, const float *vv, int64_t batch,
                          int64_t k1, int64_t d, double inv_t, float *o)
{
    #pragma omp parallel for schedule(static) if (batch * k1 * d >= PARALLEL_MIN_MACS)
    for (int64_t b = 0; b < batch; b++) {
        const float *vb = vv + b * d;
        for (int64_t k = 0; k < k1; k++) {
            const float *row = rows + ix[b * k1 + k] * d;
            o[b * k1 + k] = (float)exp(lane_dot(row, vb, d) * inv_t);
        }
    }
}

dt_status dt_f_crd_scores(const dt_tensor *bank, const dt_tensor *idx, const dt_tensor *v,
                          double temperature, dt_tensor **out)
{
    *out = NULL;
    dt_status st = check_scores_shapes(bank, idx, v);
    if (st)
        return st;
    if (!(temperature > 0))
        return dt_fail(DT_ERR_ARG, "temperature must be > 0, got %g", temperature);
    /* Dense copies (or the tensors themselves when already dense): the
     * loops index them directly instead of through the strides. */
    dt_tensor *vc = NULL, *ic = NULL;
    st = dt_contiguous((dt_tensor *)v, &vc);
    if (st == DT_OK)
        st = dt_contiguous((dt_tensor *)idx, &ic);
    if (st == DT_OK)
        st = check_rows(dt_i64(ic), dt_numel(ic), bank->shape[0]);
    if (st == DT_OK)
        st = dt_empty(DT_FLOAT32, 2, idx->shape, out);
    if (st) {
        dt_tensor_release(vc);
        dt_tensor_release(ic);
        return st;
    }
    int64_t batch = v->shape[0], d = v->shape[1], k1 = idx->shape[1];
    double inv_t = 1.0 / temperature;
    if (use_dense(bank->shape[0], batch, k1))
        st = scores_dense(dt_f32(bank), bank->shape[0], dt_i64(ic), dt_f32(vc), batch, k1, d,
                          inv_t, dt_f32(*out));
    else
        scores_gathered(dt_f32(bank), dt_i64(ic), dt_f32(vc), batch, k1, d, inv_t, dt_f32(*out));
    dt_tensor_release(vc);
    if (st) {
        dt_tensor_release(ic);
        dt_tensor_release(*out);
        *out = NULL;
        return st;
    }
    dt_node *node;
    /* The dense index copy is saved: the backward indexes it directly. */
    st = dt_record("CrdScoresBackward", crd_scores_backward, 3,
                   (const dt_tensor *[]){bank, idx, v}, 4,
                   (const dt_tensor *[]){bank, ic, v, *out}, *out, &node);
    dt_tensor_release(ic);
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
    int64_t n = bank->shape[0], d = bank->shape[1], count = idx->shape[0];
    dt_tensor *vc = NULL, *ic = NULL, *vtmp = NULL;
    /* embeddings that view the bank's own rows are read before any row is written */
    dt_status st = dt_source_for_write(bank, v, &v, &vtmp);
    if (st == DT_OK)
        st = dt_contiguous((dt_tensor *)v, &vc);
    dt_tensor_release(vtmp);   /* vc holds the copy when one was made */
    if (st == DT_OK)
        st = dt_contiguous((dt_tensor *)idx, &ic);
    if (st == DT_OK)
        st = check_rows(dt_i64(ic), count, n);
    if (st) {
        dt_tensor_release(vc);
        dt_tensor_release(ic);
        return st;
    }
    float *rows = dt_f32(bank);
    const float *vv = dt_f32(vc);
    const int64_t *ix = dt_i64(ic);
    /* Rows in batch order: a repeated index ends with its last update, as
     * the reference implementation's index_copy_ does. */
    for (int64_t i = 0; i < count; i++) {
        float *row = rows + ix[i] * d;
        double sq = 0;
        for (int64_t j = 0; j < d; j++) {
            double mixed = momentum * row[j] + (1.0 - momentum) * vv[i * d + j];
            row[j] = (float)mixed;
            sq += mixed * mixed;
        }
        double norm = sqrt(sq);
        if (norm > 0)
            for (int64_t j = 0; j < d; j++)
                row[j] = (float)(row[j] / norm);
    }
    dt_tensor_release(vc);
    dt_tensor_release(ic);
    bank->storage->version++;
    return DT_OK;
}
