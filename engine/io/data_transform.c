/* data_transform.c - image augmentation over uint8 C x H x W images.
 *
 * A transform is a list of ops. Planning one sample walks the list once,
 * drawing its random numbers from the sample's counter-based stream, and
 * composes every geometric op into one affine map per axis from output
 * pixel to source pixel (pixel centres: x_src = a * x_out + b) and every
 * value op into one affine map per channel. Applying the plan is then a
 * single pass over the output: a plain indexed copy when the map is an
 * integer shift or flip (crops, padding, flips), bilinear otherwise. */
#include "distill.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- randomness */

typedef struct stream {
    uint64_t key, k;
} stream;

static double draw_uniform(stream *s) { return (double)(dt_rng_word(s->key, s->k++) >> 11) * 0x1.0p-53; }

/* Uniform integer in [0, n), n >= 1. */
static int64_t draw_below(stream *s, int64_t n)
{
    uint64_t w = dt_rng_word(s->key, s->k++);
    return (int64_t)(((unsigned __int128)w * (uint64_t)n) >> 64);
}

uint64_t dt_data_sample_key(uint64_t seed, int64_t epoch, int64_t position)
{
    uint64_t epoch_key = dt_rng_word(seed, (uint64_t)epoch) ^ 0x5851F42D4C957F2DULL;
    return dt_rng_word(epoch_key, (uint64_t)position);
}

/* ------------------------------------------------------------- validation */

static const char *op_name(dt_tf_kind k)
{
    switch (k) {
    case DT_TF_RANDOM_CROP: return "random_crop";
    case DT_TF_HFLIP: return "horizontal_flip";
    case DT_TF_TO_FLOAT: return "to_float";
    case DT_TF_NORMALIZE: return "normalize";
    case DT_TF_RANDOM_RESIZED_CROP: return "random_resized_crop";
    case DT_TF_RESIZE: return "resize";
    case DT_TF_CENTER_CROP: return "center_crop";
    }
    return "?";
}

dt_status dt_transform_validate(const dt_transform *tf)
{
    if (tf->nops < 0 || tf->nops > DT_TF_MAX_OPS)
        return dt_fail(DT_ERR_ARG, "a transform has 0 to %d ops, got %d", DT_TF_MAX_OPS, tf->nops);
    for (int i = 0; i < tf->nops; i++) {
        const dt_tf_op *op = &tf->ops[i];
        const char *name = op_name(op->kind);
        switch (op->kind) {
        case DT_TF_RANDOM_CROP:
        case DT_TF_CENTER_CROP:
        case DT_TF_RANDOM_RESIZED_CROP:
            if (op->h <= 0 || op->w <= 0 || op->h > DT_TF_MAX_SIZE || op->w > DT_TF_MAX_SIZE)
                return dt_fail(DT_ERR_ARG, "%s: size must be 1..%d, got %lld x %lld", name,
                               DT_TF_MAX_SIZE, (long long)op->h, (long long)op->w);
            if (op->padding < 0 || op->padding > DT_TF_MAX_SIZE)
                return dt_fail(DT_ERR_ARG, "%s: padding must be 0..%d, got %lld", name,
                               DT_TF_MAX_SIZE, (long long)op->padding);
            if (op->kind == DT_TF_RANDOM_RESIZED_CROP &&
                !(op->scale[0] > 0 && op->scale[0] <= op->scale[1] && op->ratio[0] > 0 &&
                  op->ratio[0] <= op->ratio[1]))
                return dt_fail(DT_ERR_ARG, "%s: need 0 < scale[1] <= scale[2] and 0 < ratio[1] "
                               "<= ratio[2]", name);
            break;
        case DT_TF_RESIZE:
            if (op->h <= 0 || op->w < 0 || op->h > DT_TF_MAX_SIZE || op->w > DT_TF_MAX_SIZE)
                return dt_fail(DT_ERR_ARG, "resize: size must be 1..%d, got %lld x %lld",
                               DT_TF_MAX_SIZE, (long long)op->h, (long long)op->w);
            break;
        case DT_TF_HFLIP:
            if (!(op->p >= 0 && op->p <= 1))
                return dt_fail(DT_ERR_ARG, "horizontal_flip: p must be in [0, 1], got %g", op->p);
            break;
        case DT_TF_NORMALIZE:
            if (op->nmean < 1 || op->nmean > DT_TF_MAX_CHANNELS || op->nstd < 1 ||
                op->nstd > DT_TF_MAX_CHANNELS)
                return dt_fail(DT_ERR_ARG, "normalize: mean and std need 1 to %d entries",
                               DT_TF_MAX_CHANNELS);
            for (int c = 0; c < op->nstd; c++)
                if (!(op->std[c] != 0) || !isfinite(op->std[c]))
                    return dt_fail(DT_ERR_ARG, "normalize: std[%d] = %g must be non-zero", c + 1,
                                   op->std[c]);
            break;
        case DT_TF_TO_FLOAT:
            break;
        default:
            return dt_fail(DT_ERR_ARG, "unknown transform op %d", (int)op->kind);
        }
    }
    return DT_OK;
}

/* The longer side of a resize to a given shorter side, truncated; beyond
 * DT_TF_MAX_SIZE it is only known to be too large (the plan refuses it). */
static int64_t longer_side(int64_t shorter, int64_t a, int64_t b)
{
    double v = (double)shorter * (double)a / (double)b;
    return v > (double)DT_TF_MAX_SIZE ? DT_TF_MAX_SIZE + 1 : (int64_t)v;
}

/* Output size of a resize op for an input of h x w. */
static void resize_size(const dt_tf_op *op, int64_t h, int64_t w, int64_t *nh, int64_t *nw)
{
    if (op->w > 0) {
        *nh = op->h;
        *nw = op->w;
    } else if (h <= w) {   /* shorter side becomes op->h; the longer is truncated */
        *nh = op->h;
        *nw = longer_side(op->h, w, h);
    } else {
        *nw = op->h;
        *nh = longer_side(op->h, h, w);
    }
}

void dt_transform_out_size(const dt_transform *tf, int64_t h, int64_t w, int64_t *out_h,
                           int64_t *out_w, bool *is_float)
{
    *is_float = false;
    for (int i = 0; i < tf->nops; i++) {
        const dt_tf_op *op = &tf->ops[i];
        switch (op->kind) {
        case DT_TF_RANDOM_CROP:
        case DT_TF_CENTER_CROP:
        case DT_TF_RANDOM_RESIZED_CROP:
            h = op->h;
            w = op->w;
            break;
        case DT_TF_RESIZE:
            if (op->w > 0 || (h > 0 && w > 0))
                resize_size(op, h, w, &h, &w);
            else
                h = w = -1;
            break;
        case DT_TF_TO_FLOAT:
        case DT_TF_NORMALIZE:
            *is_float = true;
            break;
        case DT_TF_HFLIP:
            break;
        }
    }
    *out_h = h;
    *out_w = w;
}

/* ------------------------------------------------------------------ plans */

/* Geometry while walking the ops: the current image is h x w and
 * x_src = ax * x_cur + bx. */
typedef struct geom {
    int64_t h, w;
    double ax, bx, ay, by;
} geom;

/* Make the op's output the current image: x_cur = a * x_new + b. */
static void compose(geom *g, int64_t nh, int64_t nw, double ay, double by, double ax, double bx)
{
    g->by += g->ay * by;
    g->ay *= ay;
    g->bx += g->ax * bx;
    g->ax *= ax;
    g->h = nh;
    g->w = nw;
}

/* Resampling the region (top, left, ch, cw) of the current image to nh x nw. */
static void compose_resample(geom *g, double top, double left, double ch, double cw, int64_t nh,
                             int64_t nw)
{
    double sy = ch / (double)nh, sx = cw / (double)nw;
    compose(g, nh, nw, sy, 0.5 * sy - 0.5 + top, sx, 0.5 * sx - 0.5 + left);
}

/* torchvision's RandomResizedCrop.get_params. */
static void rrc_params(const dt_tf_op *op, int64_t H, int64_t W, stream *s, int64_t *top,
                       int64_t *left, int64_t *ch, int64_t *cw)
{
    double area = (double)H * (double)W;
    double lr0 = log(op->ratio[0]), lr1 = log(op->ratio[1]);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * (op->scale[0] + (op->scale[1] - op->scale[0]) * draw_uniform(s));
        double aspect = exp(lr0 + (lr1 - lr0) * draw_uniform(s));
        int64_t w = (int64_t)nearbyint(sqrt(target * aspect));
        int64_t h = (int64_t)nearbyint(sqrt(target / aspect));
        if (w > 0 && w <= W && h > 0 && h <= H) {
            *top = draw_below(s, H - h + 1);
            *left = draw_below(s, W - w + 1);
            *ch = h;
            *cw = w;
            return;
        }
    }
    double in_ratio = (double)W / (double)H;
    int64_t w = W, h = H;
    if (in_ratio < op->ratio[0])
        h = (int64_t)nearbyint((double)w / op->ratio[0]);
    else if (in_ratio > op->ratio[1])
        w = (int64_t)nearbyint((double)h * op->ratio[1]);
    *ch = h;
    *cw = w;
    *top = (H - h) / 2;
    *left = (W - w) / 2;
}

/* Top-left of a centred crop; torchvision pads a too-small image first. */
static int64_t center_offset(int64_t size, int64_t crop)
{
    if (crop > size)
        return -((crop - size) / 2);
    return (int64_t)nearbyint((double)(size - crop) / 2.0);
}

static bool integral(double v) { return v == floor(v); }

static void update_exact(dt_tf_plan *p)
{
    p->exact = fabs(p->ax) == 1 && fabs(p->ay) == 1 && integral(p->bx) && integral(p->by);
}

dt_status dt_transform_plan(const dt_transform *tf, int c, int64_t h, int64_t w, uint64_t key,
                            dt_tf_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    if (c < 1 || c > DT_TF_MAX_CHANNELS)
        return dt_fail(DT_ERR_ARG, "transforms take images of 1 to %d channels, got %d",
                       DT_TF_MAX_CHANNELS, c);
    if (h <= 0 || w <= 0)
        return dt_fail(DT_ERR_ARG, "cannot transform an empty %lld x %lld image", (long long)h,
                       (long long)w);
    stream s = {key, 0};
    geom g = {h, w, 1, 0, 1, 0};
    float vs[DT_TF_MAX_CHANNELS], vt[DT_TF_MAX_CHANNELS];
    for (int k = 0; k < c; k++) {
        vs[k] = 1;
        vt[k] = 0;
    }
    bool is_float = false;
    for (int i = 0; i < tf->nops; i++) {
        const dt_tf_op *op = &tf->ops[i];
        switch (op->kind) {
        case DT_TF_RANDOM_CROP: {
            int64_t ph = g.h + 2 * op->padding, pw = g.w + 2 * op->padding;
            if (op->h > ph || op->w > pw)
                return dt_fail(DT_ERR_ARG, "random_crop: crop %lld x %lld is larger than the "
                               "padded image %lld x %lld", (long long)op->h, (long long)op->w,
                               (long long)ph, (long long)pw);
            int64_t top = draw_below(&s, ph - op->h + 1);
            int64_t left = draw_below(&s, pw - op->w + 1);
            compose(&g, op->h, op->w, 1, (double)(top - op->padding), 1,
                    (double)(left - op->padding));
            break;
        }
        case DT_TF_HFLIP:
            if (draw_uniform(&s) < op->p)
                compose(&g, g.h, g.w, 1, 0, -1, (double)(g.w - 1));
            break;
        case DT_TF_RANDOM_RESIZED_CROP: {
            int64_t top, left, ch, cw;
            rrc_params(op, g.h, g.w, &s, &top, &left, &ch, &cw);
            compose_resample(&g, (double)top, (double)left, (double)ch, (double)cw, op->h, op->w);
            break;
        }
        case DT_TF_RESIZE: {
            int64_t nh, nw;
            resize_size(op, g.h, g.w, &nh, &nw);
            if (nh <= 0 || nw <= 0)
                return dt_fail(DT_ERR_ARG, "resize: %lld x %lld image would become empty",
                               (long long)g.h, (long long)g.w);
            if (nh > DT_TF_MAX_SIZE || nw > DT_TF_MAX_SIZE)
                return dt_fail(DT_ERR_ARG, "resize: the shorter side of a %lld x %lld image to "
                               "%lld makes the longer one over %d", (long long)g.h,
                               (long long)g.w, (long long)op->h, DT_TF_MAX_SIZE);
            if (nh != g.h || nw != g.w)
                compose_resample(&g, 0, 0, (double)g.h, (double)g.w, nh, nw);
            break;
        }
        case DT_TF_CENTER_CROP:
            compose(&g, op->h, op->w, 1, (double)center_offset(g.h, op->h), 1,
                    (double)center_offset(g.w, op->w));
            break;
        case DT_TF_TO_FLOAT:
        case DT_TF_NORMALIZE:
            if (!is_float) {
                for (int k = 0; k < c; k++) {
                    vs[k] /= 255.0f;
                    vt[k] /= 255.0f;
                }
                is_float = true;
            }
            if (op->kind == DT_TF_NORMALIZE) {
                if ((op->nmean != 1 && op->nmean != c) || (op->nstd != 1 && op->nstd != c))
                    return dt_fail(DT_ERR_ARG, "normalize: %d means and %d stds for a %d-channel "
                                   "image", op->nmean, op->nstd, c);
                for (int k = 0; k < c; k++) {
                    double m = op->mean[op->nmean == 1 ? 0 : k];
                    double sd = op->std[op->nstd == 1 ? 0 : k];
                    vs[k] = (float)(vs[k] / sd);
                    vt[k] = (float)((vt[k] - m) / sd);
                }
            }
            break;
        }
    }
    plan->c = c;
    plan->in_h = h;
    plan->in_w = w;
    plan->out_h = g.h;
    plan->out_w = g.w;
    plan->ax = g.ax;
    plan->bx = g.bx;
    plan->ay = g.ay;
    plan->by = g.by;
    plan->is_float = is_float;
    for (int k = 0; k < c; k++) {
        plan->vscale[k] = vs[k];
        plan->vshift[k] = vt[k];
        plan->fill[k] = vt[k];   /* a zero pixel through the value map */
    }
    update_exact(plan);
    return DT_OK;
}

void dt_tf_plan_rescale(dt_tf_plan *p, int64_t new_h, int64_t new_w)
{
    double ry = (double)new_h / (double)p->in_h, rx = (double)new_w / (double)p->in_w;
    p->ay *= ry;
    p->by = (p->by + 0.5) * ry - 0.5;
    p->ax *= rx;
    p->bx = (p->bx + 0.5) * rx - 0.5;
    p->in_h = new_h;
    p->in_w = new_w;
    update_exact(p);
}

void dt_tf_plan_density(const dt_tf_plan *p, double *dy, double *dx)
{
    *dy = fabs(p->ay);
    *dx = fabs(p->ax);
}

/* --------------------------------------------------------------- applying */

static inline void store(const dt_tf_plan *p, void *dst, int64_t i, int k, float v)
{
    if (p->is_float) {
        ((float *)dst)[i] = v * p->vscale[k] + p->vshift[k];
    } else {
        float r = nearbyintf(v);
        ((uint8_t *)dst)[i] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
    }
}

static inline void store_fill(const dt_tf_plan *p, void *dst, int64_t i, int k)
{
    if (p->is_float)
        ((float *)dst)[i] = p->fill[k];
    else
        ((uint8_t *)dst)[i] = 0;
}

/* Integer shift/flip: out(y, x) = src(ay*y + by, ax*x + bx) or the fill. */
static void apply_exact(const dt_tf_plan *p, const uint8_t *src, int64_t sc, int64_t sh,
                        int64_t sw, void *dst)
{
    int64_t H = p->in_h, W = p->in_w, oh = p->out_h, ow = p->out_w;
    int64_t ax = (int64_t)p->ax, bx = (int64_t)p->bx, ay = (int64_t)p->ay, by = (int64_t)p->by;
    /* columns x with 0 <= ax*x + bx < W */
    int64_t xlo = ax > 0 ? -bx : bx - W + 1, xhi = ax > 0 ? W - 1 - bx : bx;
    if (xlo < 0)
        xlo = 0;
    if (xhi > ow - 1)
        xhi = ow - 1;
    for (int k = 0; k < p->c; k++) {
        for (int64_t y = 0; y < oh; y++) {
            int64_t base = ((int64_t)k * oh + y) * ow;
            int64_t sy = ay * y + by;
            if (sy < 0 || sy >= H || xlo > xhi) {
                for (int64_t x = 0; x < ow; x++)
                    store_fill(p, dst, base + x, k);
                continue;
            }
            const uint8_t *row = src + k * sc + sy * sh;
            for (int64_t x = 0; x < xlo; x++)
                store_fill(p, dst, base + x, k);
            if (p->is_float) {
                float *out = (float *)dst + base;
                float s = p->vscale[k], t = p->vshift[k];
                for (int64_t x = xlo; x <= xhi; x++)
                    out[x] = (float)row[(ax * x + bx) * sw] * s + t;
            } else {
                uint8_t *out = (uint8_t *)dst + base;
                for (int64_t x = xlo; x <= xhi; x++)
                    out[x] = row[(ax * x + bx) * sw];
            }
            for (int64_t x = xhi + 1; x < ow; x++)
                store_fill(p, dst, base + x, k);
        }
    }
}

/* Per output coordinate: the two source offsets, weight of the second, and
 * whether it lies inside the source at all. */
typedef struct tap {
    int64_t o0, o1;
    float wt;
    bool valid;
} tap;

static void make_taps(double a, double b, int64_t n, int64_t size, int64_t stride, tap *t)
{
    for (int64_t i = 0; i < n; i++) {
        double x = a * (double)i + b;
        t[i].valid = x >= -0.5 - 1e-9 && x <= (double)size - 0.5 + 1e-9;
        if (x < 0)
            x = 0;
        if (x > (double)(size - 1))
            x = (double)(size - 1);
        int64_t x0 = (int64_t)floor(x);
        int64_t x1 = x0 + 1 < size ? x0 + 1 : x0;
        t[i].o0 = x0 * stride;
        t[i].o1 = x1 * stride;
        t[i].wt = (float)(x - (double)x0);
    }
}

static dt_status apply_bilinear(const dt_tf_plan *p, const uint8_t *src, int64_t sc, int64_t sh,
                                int64_t sw, void *dst)
{
    int64_t oh = p->out_h, ow = p->out_w;
    tap *tx = malloc(sizeof(tap) * (size_t)(ow + oh));
    if (!tx)
        return dt_fail(DT_ERR_NOMEM, "out of memory");
    tap *ty = tx + ow;
    make_taps(p->ax, p->bx, ow, p->in_w, sw, tx);
    make_taps(p->ay, p->by, oh, p->in_h, sh, ty);
    for (int k = 0; k < p->c; k++) {
        const uint8_t *plane = src + k * sc;
        for (int64_t y = 0; y < oh; y++) {
            int64_t base = ((int64_t)k * oh + y) * ow;
            if (!ty[y].valid) {
                for (int64_t x = 0; x < ow; x++)
                    store_fill(p, dst, base + x, k);
                continue;
            }
            const uint8_t *r0 = plane + ty[y].o0, *r1 = plane + ty[y].o1;
            float wy = ty[y].wt;
            for (int64_t x = 0; x < ow; x++) {
                const tap *t = &tx[x];
                if (!t->valid) {
                    store_fill(p, dst, base + x, k);
                    continue;
                }
                float top = (float)r0[t->o0] + t->wt * ((float)r0[t->o1] - (float)r0[t->o0]);
                float bot = (float)r1[t->o0] + t->wt * ((float)r1[t->o1] - (float)r1[t->o0]);
                store(p, dst, base + x, k, top + wy * (bot - top));
            }
        }
    }
    free(tx);
    return DT_OK;
}

dt_status dt_tf_apply(const dt_tf_plan *p, const uint8_t *src, int64_t sc, int64_t sh,
                      int64_t sw, void *dst)
{
    if (p->exact) {
        apply_exact(p, src, sc, sh, sw, dst);
        return DT_OK;
    }
    return apply_bilinear(p, src, sc, sh, sw, dst);
}

dt_status dt_transform_image(const dt_transform *tf, const dt_tensor *src, uint64_t key,
                             dt_tensor **out)
{
    *out = NULL;
    if (src->dtype != DT_UINT8 || src->ndim != 3)
        return dt_fail(DT_ERR_ARG, "expected a C x H x W uint8 image, got a %d-d %s tensor",
                       src->ndim, dt_dtype_name(src->dtype));
    dt_status st = dt_transform_validate(tf);
    dt_tf_plan plan;
    if (st == DT_OK)
        st = dt_transform_plan(tf, (int)src->shape[0], src->shape[1], src->shape[2], key, &plan);
    if (st)
        return st;
    int64_t shape[3] = {plan.c, plan.out_h, plan.out_w};
    st = dt_empty(plan.is_float ? DT_FLOAT32 : DT_UINT8, 3, shape, out);
    if (st == DT_OK)
        st = dt_tf_apply(&plan, dt_u8(src), src->stride[0], src->stride[1], src->stride[2],
                         dt_data(*out));
    if (st) {
        dt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

dt_status dt_transform_batch(const dt_transform *tf, int64_t n, const dt_tensor *const *images,
                             uint64_t seed, int64_t epoch, int64_t first_position,
                             dt_tensor **out)
{
    *out = NULL;
    dt_tensor *batch = NULL;
    size_t sample_bytes = 0;
    dt_status st = DT_OK;
    for (int64_t i = 0; i < n && st == DT_OK; i++) {
        const dt_tensor *img = images[i];
        if (img->dtype != DT_UINT8 || img->ndim != 3 || img->shape[0] > DT_TF_MAX_CHANNELS) {
            st = dt_fail(DT_ERR_ARG, "sample %lld: expected a C x H x W uint8 image tensor",
                         (long long)i + 1);
            break;
        }
        dt_tf_plan plan;
        st = dt_transform_plan(tf, (int)img->shape[0], img->shape[1], img->shape[2],
                               dt_data_sample_key(seed, epoch, first_position + i), &plan);
        if (st == DT_OK && !batch) {
            int64_t shape[4] = {n, plan.c, plan.out_h, plan.out_w};
            st = dt_empty(plan.is_float ? DT_FLOAT32 : DT_UINT8, 4, shape, &batch);
            if (st == DT_OK)   /* bounded now that the batch exists */
                sample_bytes = (size_t)(plan.c * plan.out_h * plan.out_w) * (plan.is_float ? 4 : 1);
        }
        if (st == DT_OK && (plan.c != batch->shape[1] || plan.out_h != batch->shape[2] ||
                            plan.out_w != batch->shape[3]))
            st = dt_fail(DT_ERR_SHAPE, "sample %lld gives %d x %lld x %lld, the first gave "
                         "%lld x %lld x %lld (add a resize or crop)", (long long)i + 1, plan.c,
                         (long long)plan.out_h, (long long)plan.out_w,
                         (long long)batch->shape[1], (long long)batch->shape[2],
                         (long long)batch->shape[3]);
        if (st == DT_OK)
            st = dt_tf_apply(&plan, dt_u8(img), img->stride[0], img->stride[1], img->stride[2],
                             (uint8_t *)dt_data(batch) + (size_t)i * sample_bytes);
    }
    if (st) {
        dt_tensor_release(batch);
        return st;
    }
    *out = batch;
    return DT_OK;
}
