/* abf.c - the attention-weighted fusion of ReviewKD's ABF modules (Chen et
 * al., CVPR 2021):
 *   out[n][c][i][j] = x[n][c][i][j] * att[n][0][i][j]
 *                   + res[n][c][si(i)][sj(j)] * att[n][1][i][j]
 * with x N x C x H x W (this level's features), res N x C x h x w (the
 * deeper level's fused map) read through nearest-neighbour resizing
 * (si(i) = floor(i * h / H), as PyTorch's "nearest" interpolate) and att
 * N x 2 x H x W (the two attention maps). Written as separate ops this
 * materialises the resized res and the two products, each as large as x
 * (the largest maps of the student, widened to ReviewKD's mid channels),
 * and their backward as many again; here only the output is allocated, and
 * the backward writes the gradients of the three inputs directly (res's by
 * summing over the positions that read each of its elements).
 * docs/performance.md has the measurement. */
#include "distill.h"
#include "autograd/op.h"

#include <stdlib.h>

/* Below this many output elements a parallel region costs more than it
 * saves (each (n, c) plane is independent: results do not depend on it). */
#define PARALLEL_MIN_ELEMS 65536

/* The nearest source row (column) of each output row (column). */
static int64_t *nearest_index(int64_t in, int64_t out)
{
    int64_t *idx = malloc((size_t)(out > 0 ? out : 1) * sizeof *idx);
    if (!idx)
        return NULL;
    for (int64_t i = 0; i < out; i++) {
        int64_t s = i * in / out;
        idx[i] = s < in ? s : in - 1;
    }
    return idx;
}

static dt_status check_shapes(const dt_tensor *x, const dt_tensor *res, const dt_tensor *att)
{
    char a[128], b[128], c[128];
    if (x->dtype != DT_FLOAT32 || res->dtype != DT_FLOAT32 || att->dtype != DT_FLOAT32)
        return dt_fail(DT_ERR_DTYPE, "x, res and att must be float32");
    if (x->ndim != 4 || res->ndim != 4 || att->ndim != 4 || res->shape[0] != x->shape[0] ||
        res->shape[1] != x->shape[1] || att->shape[0] != x->shape[0] || att->shape[1] != 2 ||
        att->shape[2] != x->shape[2] || att->shape[3] != x->shape[3] || res->shape[2] < 1 ||
        res->shape[3] < 1)
        return dt_fail(DT_ERR_SHAPE, "expected x N x C x H x W, res N x C x h x w and att "
                       "N x 2 x H x W; got %s, %s, %s", dt_shape_str(x->shape, x->ndim, a, sizeof a),
                       dt_shape_str(res->shape, res->ndim, b, sizeof b),
                       dt_shape_str(att->shape, att->ndim, c, sizeof c));
    return DT_OK;
}

/* Dense copies of the three inputs (the tensors themselves when dense). */
static dt_status dense3(const dt_tensor *x, const dt_tensor *res, const dt_tensor *att,
                        dt_tensor **xc, dt_tensor **rc, dt_tensor **ac)
{
    *xc = *rc = *ac = NULL;
    dt_status st = dt_contiguous((dt_tensor *)x, xc);
    if (st == DT_OK)
        st = dt_contiguous((dt_tensor *)res, rc);
    if (st == DT_OK)
        st = dt_contiguous((dt_tensor *)att, ac);
    if (st) {
        dt_tensor_release(*xc);
        dt_tensor_release(*rc);
        dt_tensor_release(*ac);
        *xc = *rc = *ac = NULL;
    }
    return st;
}

typedef struct abf_dims {
    int64_t n, c, hh, ww, h, w;   /* x and out: hh x ww; res: h x w */
    const int64_t *si, *sj;
} abf_dims;

static void fuse_forward(const abf_dims *d, const float *x, const float *res, const float *att,
                         float *out)
{
    int64_t plane = d->hh * d->ww, small = d->h * d->w;
    #pragma omp parallel for schedule(static) if (d->n * d->c * plane >= PARALLEL_MIN_ELEMS)
    for (int64_t nc = 0; nc < d->n * d->c; nc++) {
        int64_t n = nc / d->c;
        const float *xp = x + nc * plane, *rp = res + nc * small;
        const float *a0 = att + n * 2 * plane, *a1 = a0 + plane;
        float *op = out + nc * plane;
        for (int64_t i = 0; i < d->hh; i++) {
            const float *rrow = rp + d->si[i] * d->w;
            for (int64_t j = 0; j < d->ww; j++) {
                int64_t k = i * d->ww + j;
                op[k] = xp[k] * a0[k] + rrow[d->sj[j]] * a1[k];
            }
        }
    }
}

/* Gradients: gx = g * a0; gres[s] = sum over the positions reading s of
 * g * a1; gatt[0] = sum_c g * x, gatt[1] = sum_c g * res(resized). Each
 * (n, c) plane of gx and gres is one thread's; gatt sums over c, so it is
 * parallel over n with c in a fixed order. */
static void fuse_backward(const abf_dims *d, const float *g, const float *x, const float *res,
                          const float *att, float *gx, float *gres, float *gatt)
{
    int64_t plane = d->hh * d->ww, small = d->h * d->w;
    int64_t total = d->n * d->c * plane;
    if (gx || gres) {
        #pragma omp parallel for schedule(static) if (total >= PARALLEL_MIN_ELEMS)
        for (int64_t nc = 0; nc < d->n * d->c; nc++) {
            int64_t n = nc / d->c;
            const float *gp = g + nc * plane;
            const float *a0 = att + n * 2 * plane, *a1 = a0 + plane;
            if (gx) {
                float *gxp = gx + nc * plane;
                for (int64_t k = 0; k < plane; k++)
                    gxp[k] = gp[k] * a0[k];
            }
            if (gres) {
                float *grp = gres + nc * small;
                for (int64_t i = 0; i < d->hh; i++) {
                    float *grow = grp + d->si[i] * d->w;
                    for (int64_t j = 0; j < d->ww; j++)
                        grow[d->sj[j]] += gp[i * d->ww + j] * a1[i * d->ww + j];
                }
            }
        }
    }
    if (gatt) {
        #pragma omp parallel for schedule(static) if (total >= PARALLEL_MIN_ELEMS)
        for (int64_t n = 0; n < d->n; n++) {
            float *g0 = gatt + n * 2 * plane, *g1 = g0 + plane;
            for (int64_t c = 0; c < d->c; c++) {
                int64_t nc = n * d->c + c;
                const float *gp = g + nc * plane, *xp = x + nc * plane, *rp = res + nc * small;
                for (int64_t i = 0; i < d->hh; i++) {
                    const float *rrow = rp + d->si[i] * d->w;
                    for (int64_t j = 0; j < d->ww; j++) {
                        int64_t k = i * d->ww + j;
                        g0[k] += gp[k] * xp[k];
                        g1[k] += gp[k] * rrow[d->sj[j]];
                    }
                }
            }
        }
    }
}

/* The dimensions and index maps of dense x, res (the maps freed by the caller). */
static dt_status dims_of(const dt_tensor *x, const dt_tensor *res, abf_dims *d, int64_t **si,
                         int64_t **sj)
{
    *d = (abf_dims){.n = x->shape[0], .c = x->shape[1], .hh = x->shape[2], .ww = x->shape[3],
                    .h = res->shape[2], .w = res->shape[3]};
    *si = nearest_index(d->h, d->hh);
    *sj = nearest_index(d->w, d->ww);
    if (!*si || !*sj) {
        free(*si);
        free(*sj);
        *si = *sj = NULL;
        return dt_fail(DT_ERR_NOMEM, "out of memory for the resizing indices");
    }
    d->si = *si;
    d->sj = *sj;
    return DT_OK;
}

static dt_status abf_fuse_backward(dt_node *node, const dt_tensor *grad_out, dt_tensor **gi)
{
    DT_PROF_SCOPE(DT_PROF_ELEMENTWISE);
    dt_tensor *x, *res, *att;
    dt_status st = dt_node_saved(node, 0, &x);
    if (st == DT_OK)
        st = dt_node_saved(node, 1, &res);
    if (st == DT_OK)
        st = dt_node_saved(node, 2, &att);
    if (st)
        return st;
    dt_tensor *go;
    st = dt_contiguous((dt_tensor *)grad_out, &go);
    if (st)
        return st;
    abf_dims d;
    int64_t *si = NULL, *sj = NULL;
    st = dims_of(x, res, &d, &si, &sj);
    dt_tensor *g[3] = {NULL, NULL, NULL};
    const dt_tensor *like[3] = {x, res, att};
    for (int i = 0; st == DT_OK && i < 3; i++)
        if (node->needs_grad[i])
            st = dt_zeros(DT_FLOAT32, 4, like[i]->shape, &g[i]);
    if (st == DT_OK)
        fuse_backward(&d, dt_f32(go), dt_f32(x), dt_f32(res), dt_f32(att),
                      g[0] ? dt_f32(g[0]) : NULL, g[1] ? dt_f32(g[1]) : NULL,
                      g[2] ? dt_f32(g[2]) : NULL);
    free(si);
    free(sj);
    dt_tensor_release(go);
    if (st) {
        for (int i = 0; i < 3; i++)
            dt_tensor_release(g[i]);
        return st;
    }
    for (int i = 0; i < 3; i++)
        gi[i] = g[i];
    return DT_OK;
}

dt_status dt_f_abf_fuse(const dt_tensor *x, const dt_tensor *res, const dt_tensor *att,
                        dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_ELEMENTWISE);
    *out = NULL;
    dt_status st = check_shapes(x, res, att);
    if (st)
        return st;
    dt_tensor *xc, *rc, *ac;
    st = dense3(x, res, att, &xc, &rc, &ac);
    if (st)
        return st;
    abf_dims d;
    int64_t *si = NULL, *sj = NULL;
    st = dims_of(xc, rc, &d, &si, &sj);
    if (st == DT_OK)
        st = dt_empty(DT_FLOAT32, 4, x->shape, out);
    if (st == DT_OK) {
        fuse_forward(&d, dt_f32(xc), dt_f32(rc), dt_f32(ac), dt_f32(*out));
        /* The dense copies are saved: the backward indexes them directly. */
        dt_node *node;
        st = dt_record("AbfFuseBackward", abf_fuse_backward, 3, (const dt_tensor *[]){x, res, att},
                       3, (const dt_tensor *[]){xc, rc, ac}, *out, &node);
    }
    free(si);
    free(sj);
    dt_tensor_release(xc);
    dt_tensor_release(rc);
    dt_tensor_release(ac);
    if (st) {
        dt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}
