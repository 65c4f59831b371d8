/* winograd.c - 3x3 stride-1 convolution by Winograd's minimal filtering
 * algorithm F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional
 * Neural Networks", 2016): the forward, and the weight gradient as its
 * adjoint. The input gradient of such a convolution is again one (the
 * kernel rotated and transposed), so conv_algo.c runs it through the forward.
 *
 * Each 4x4 block of output comes from a 6x6 tile d of the padded input and
 * the 3x3 kernel g as
 *
 *     Y = A^T [ (G g G^T) (.) (B^T d B) ] A
 *
 * with (.) the element-wise product over the 36 tile positions xi. Summed
 * over input channels the element-wise products become 36 independent
 * matrix products, one per position:
 *
 *     M_xi (tiles x O) = V_xi (tiles x C) . U_xi (C x O)
 *
 * 36 multiply-adds per 16 outputs and channel pair instead of 144 (4x
 * fewer than im2col + GEMM), plus transforms whose cost grows with the
 * channel count only linearly.
 *
 * Interpolation points 0, -1, 1, 1/2, -2 and infinity: of the point sets
 * tried they give the smallest float32 error against a float64 direct sum
 * (docs/nn.md gives the figures; spec/winograd_spec.lua bounds it).
 *
 * Layouts. Channels go 16 at a time, one vector. Images are first staged
 * into a zero-padded, channel-blocked copy [C/16][image][Hp][Wp][16], so a
 * tile's 36 input vectors are plain loads at fixed offsets. V and M are
 * [xi][tile][channel]: the per-tile transforms (the CPU layer's,
 * cpu/wino_tiles.h) read and write whole vectors, and each product is a
 * strided GEMM from gemm.h (rows: tiles, columns: output channels; U_xi
 * packed per call in panels as wide as the GEMM's tile,
 * dt_gemm_panel_width). Channel counts are rounded up to 16 with zeros.
 * The output transform turns each tile's 16 positions x 16 channels back
 * into NCHW rows with one 16 x 16 transpose. The kernel transforms (once
 * per call, not per tile) stay here, in GCC vector extensions.
 *
 * Threads. The forward cuts the batch into chunks of whole images of about
 * CHUNK_TILES tiles; one thread runs a chunk start to finish (stage,
 * transform, 36 products, output) in its own buffers. The weight gradient
 * sums over tiles in an order fixed by the shapes, so its bits do not
 * depend on the thread count: up to 128 channels (wgrad_slots) each of a
 * fixed set of image slots has sums of its own, added in slot order at the
 * end; wider layers (wgrad_shared) run chunks one after another with all
 * threads together, the 36 products split over xi. */
#include "winograd.h"
#include "autograd/op.h"
#include "math/gemm.h"
#include "cpu/cpu.h"
#include "cpu/v16.h"

#include <omp.h>
#include <string.h>

#define LANES 16   /* channels per vector */
#define NXI 36     /* positions of a 6 x 6 tile */

/* Tiles per forward chunk: the per-position products are then at least
 * 64 rows deep, while a chunk's V and M stay within a few MB. */
#ifndef DT_WINO_CHUNK_TILES
#define DT_WINO_CHUNK_TILES 64
#endif
/* The weight gradient keeps a set of sums per image slot while the slots'
 * sums take at most this many bytes (up to 128 channels). */
#ifndef DT_WINO_SLOT_SUMS_BYTES
#define DT_WINO_SLOT_SUMS_BYTES (16 << 20)
#endif
/* Tiles per block of a forward chunk (see fwd_buffers): small blocks keep
 * V and M in L2, but every block streams all of U (36 x C x O) past them,
 * so from 256 x 256 channels on (U ~9 MB) blocks are 4x longer to stream
 * U fewer times. */
#define BLOCK_TILES 32
#define BIG_BLOCK_TILES 128
#define BIG_KERNELS (256 * 256)
/* Bytes of transformed tiles (V and the gradient's transform) per chunk of
 * the weight gradient: bigger chunks pass over the 36 x O x C sums fewer
 * times. */
#ifndef DT_WINO_WGRAD_BYTES
#define DT_WINO_WGRAD_BYTES (24 << 20)
#endif

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

/* The CPU layer's 16 x 16 transpose (cpu.h). */
static void transpose16(const float *s, int64_t lds, float *d, int64_t ldd, int64_t rows,
                        int64_t cols, bool fill)
{
    dt_cpu()->moves.transpose16(s, lds, d, ldd, rows, cols, fill);
}

/* The stride between the 36 per-position planes of `floats` values (U, V,
 * M, D, dU): one cache line more, so the 36 writes or reads of one tile
 * fall in different cache sets. Unpadded, the planes are often a multiple
 * of 4 KiB apart and a tile's 36 vectors all compete for one L1 (and a
 * few L2) sets, which slowed the transforms several times over. */
static int64_t xi_stride(int64_t floats) { return floats + LANES; }

/* ------------------------------------------------------------- geometry */

typedef struct geom {
    int64_t N, C, H, W, O, ph, pw;
    int64_t OH, OW;
    int64_t TH, TW, tpi;   /* output tiles: rows, columns, per image */
    int64_t Cp, Op;        /* channel counts rounded up to LANES */
    int64_t Hp, Wp;        /* staged input image: 4 TH + 2 rows, 4 TW + 2 columns */
} geom;

static geom geom_of(const dt_wino_problem *p)
{
    geom g = {.N = p->N, .C = p->C, .H = p->H, .W = p->W, .O = p->O, .ph = p->ph, .pw = p->pw};
    g.OH = g.H + 2 * g.ph - 2;
    g.OW = g.W + 2 * g.pw - 2;
    g.TH = (g.OH + 3) / 4;
    g.TW = (g.OW + 3) / 4;
    g.tpi = g.TH * g.TW;
    g.Cp = round_up(g.C, LANES);
    g.Op = round_up(g.O, LANES);
    g.Hp = 4 * g.TH + 2;
    g.Wp = 4 * g.TW + 2;
    return g;
}

bool dt_winograd_fits(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t dh, int64_t dw,
                      int64_t groups, int64_t ph, int64_t pw, int64_t H, int64_t W)
{
    return kh == 3 && kw == 3 && sh == 1 && sw == 1 && dh == 1 && dw == 1 && groups == 1 &&
           ph >= 0 && ph <= 2 && pw >= 0 && pw <= 2 && H + 2 * ph >= 3 && W + 2 * pw >= 3;
}

/* ----------------------------------------------------------- transforms */

/* G (6 x 3), the kernel transform U = G g G^T. */
static const float G[6][3] = {
    {1.0f, 0.0f, 0.0f},
    {-1.0f / 3, 1.0f / 3, -1.0f / 3},
    {1.0f / 3, 1.0f / 3, 1.0f / 3},
    {-16.0f / 15, -8.0f / 15, -4.0f / 15},
    {1.0f / 15, -2.0f / 15, 4.0f / 15},
    {0.0f, 0.0f, 1.0f},
};

/* u[xi] = (G g G^T)[xi] for 16 kernels at once (g[tap], lanes = kernels). */
static inline void kernel_transform(const dt_v16 g[9], dt_v16 u[NXI])
{
    dt_v16 t[6][3];
    for (int k = 0; k < 6; k++)
        for (int b = 0; b < 3; b++)
            t[k][b] = G[k][0] * g[b] + G[k][1] * g[3 + b] + G[k][2] * g[6 + b];
    for (int k = 0; k < 6; k++)
        for (int l = 0; l < 6; l++)
            u[k * 6 + l] = t[k][0] * G[l][0] + t[k][1] * G[l][1] + t[k][2] * G[l][2];
}

/* A tile group's output: 4 tile rows of GROUP_TILES tiles, position
 * (i, j) of tile k at grp[i][4 k + j] (see write_group). */
#define GROUP_TILES 4
#define GROUP_PIXELS (4 * GROUP_TILES)

/* ------------------------------------------------------------- staging */

/* Channels [16 cb, 16 cb + 16) of image n of src (N, C, H, W) into one
 * staged block dst (Hp x Wp x 16): pixel (h, w) at row h + top, column
 * w + left; zeros at every other place and lane. */
static __attribute__((noinline)) void stage_block(const float *src, int64_t C, int64_t H, int64_t W, int64_t n, int64_t cb,
                        int64_t top, int64_t left, int64_t Hp, int64_t Wp, float *dst)
{
    int64_t lanes = min64(LANES, C - cb * LANES);
    const float *s = src + (n * C + cb * LANES) * H * W;
    for (int64_t r = 0; r < Hp; r++) {
        float *row = dst + r * Wp * LANES;
        int64_t h = r - top;
        if (h < 0 || h >= H) {
            memset(row, 0, (size_t)(Wp * LANES) * sizeof *row);
            continue;
        }
        int64_t right = min64(W, Wp - left);
        memset(row, 0, (size_t)(left * LANES) * sizeof *row);
        for (int64_t w0 = 0; w0 < right; w0 += 16)
            transpose16(s + h * W + w0, H * W, row + (left + w0) * LANES, LANES, lanes,
                        min64(16, right - w0), true);
        memset(row + (left + right) * LANES, 0,
               (size_t)((Wp - left - right) * LANES) * sizeof *row);
    }
}

/* ------------------------------------------------------- kernel panels */

/* U for every (out o, in c) pair, packed for the products: position-major,
 * then panels of `nrw` output channels: U[xi][o / nrw][c][o % nrw], zeros
 * for padded channels. With flip, the kernel of (o, c) is w[c][o] rotated
 * by 180 degrees (w is C x O x 3 x 3). */
static void pack_kernels(const geom *g, const float *w, bool flip, float *U)
{
    int64_t nrw = dt_gemm_panel_width(g->Op);
    int64_t per_xi = xi_stride(g->Cp * g->Op);
    int64_t blocks = g->Op / LANES;
    #pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < g->Cp; c++)
        for (int64_t ob = 0; ob < blocks; ob++) {
            int64_t o0 = ob * LANES, lanes = c < g->C ? min64(LANES, g->O - o0) : 0;
            float taps[9][LANES];
            dt_v16 k[9], u[NXI];
            if (lanes > 0) {
                /* 16 kernels' 9 taps, one tap per row */
                if (flip)
                    transpose16(w + (c * g->O + o0) * 9, 9, taps[0], LANES, lanes, 9, true);
                else
                    transpose16(w + (o0 * g->C + c) * 9, g->C * 9, taps[0], LANES, lanes, 9, true);
            } else {
                memset(taps, 0, sizeof taps);
            }
            for (int t = 0; t < 9; t++)
                k[t] = dt_v16_load(taps[flip ? 8 - t : t]);
            kernel_transform(k, u);
            float *dst = U + (o0 / nrw) * g->Cp * nrw + c * nrw + o0 % nrw;
            for (int xi = 0; xi < NXI; xi++)
                dt_v16_store(dst + xi * per_xi, u[xi]);
        }
}

/* ------------------------------------------------------------- forward */

/* One thread's buffers for a forward chunk of `nimg` staged images, whose
 * tiles go through the transforms and products `block` at a time (V's and
 * M's tile rows rounded up to 16). */
typedef struct fwd_buffers {
    float *staged, *V, *M, *out;
    int64_t block;        /* tiles per block: whole tile rows */
    int64_t rows;         /* V's and M's tile rows */
    int64_t out_stride;   /* floats between the channels of `out` */
} fwd_buffers;

/* Tiles per block: about BLOCK_TILES (or BIG_BLOCK_TILES), in whole rows
 * of tiles so a block's output is whole rows of the output planes. */
static int64_t block_tiles(const geom *g)
{
    int64_t want = g->Cp * g->Op >= BIG_KERNELS ? BIG_BLOCK_TILES : BLOCK_TILES;
    return max64(1, want / g->TW) * g->TW;
}

/* The output of one block for 16 channels: its tile rows' output rows,
 * channel planes one cache line more than their size apart. */
static int64_t out_stride(const geom *g)
{
    return xi_stride(block_tiles(g) / g->TW * 4 * g->OW);
}

static size_t fwd_buffer_floats(const geom *g, int64_t nimg)
{
    int64_t rows = round_up(block_tiles(g), 16);
    return (size_t)(g->Cp * nimg * g->Hp * g->Wp +
                    NXI * (xi_stride(rows * g->Cp) + xi_stride(rows * g->Op)) +
                    LANES * out_stride(g));
}

static fwd_buffers fwd_buffers_at(const geom *g, int64_t nimg, float *base)
{
    fwd_buffers b;
    b.block = block_tiles(g);
    b.rows = round_up(b.block, 16);
    b.out_stride = out_stride(g);
    b.staged = base;
    b.V = b.staged + g->Cp * nimg * g->Hp * g->Wp;
    b.M = b.V + NXI * xi_stride(b.rows * g->Cp);
    b.out = b.M + NXI * xi_stride(b.rows * g->Op);
    return b;
}

/* Writes a group of tiles of one tile row, grp[i][pixel][lane] with
 * `pixels` columns (4 per tile), into 16 channels' output rows at dst
 * (channel planes `stride` floats apart, rows OW floats apart), block
 * origin (oy, ox): per output row one 16 x 16 transpose stored straight
 * into the channels' rows. */
static void write_group(const geom *g, float grp[4][GROUP_PIXELS][LANES], float *dst,
                        int64_t stride, int64_t lanes, int64_t oy, int64_t ox, int64_t pixels)
{
    int64_t rows = min64(4, g->OH - oy), cols = min64(pixels, g->OW - ox);
    for (int64_t i = 0; i < rows; i++)
        transpose16(grp[i][0], LANES, dst + i * g->OW + ox, stride, cols, lanes, false);
}

/* Copies a block's output rows for channels [o0, o0 + lanes) from `out`
 * into y, channel by channel: a block's tile rows are consecutive rows of
 * a plane (within one image), so each channel is one sequential run.
 * (Written into y directly, 16 channel planes a multiple of 4 KiB apart
 * compete for one L1 set and the stores slow to a fraction of their speed.) */
static void copy_out(const geom *g, const fwd_buffers *b, int64_t n0, int64_t t0, int64_t T,
                     int64_t o0, int64_t lanes, float *y)
{
    for (int64_t c = 0; c < lanes; c++)
        for (int64_t r = 0; r < T / g->TW; r++) {
            int64_t tt = t0 + r * g->TW, i = tt / g->tpi, ty = tt % g->tpi / g->TW;
            int64_t rows = min64(4, g->OH - 4 * ty);
            memcpy(y + (((n0 + i) * g->O + o0 + c) * g->OH + 4 * ty) * g->OW,
                   b->out + c * b->out_stride + r * 4 * g->OW,
                   (size_t)(rows * g->OW) * sizeof(float));
        }
}

/* Tiles [t0, t0 + T) of a staged chunk (tile t: image t / tpi of the
 * chunk, which starts at image n0) through V, the products and M into y. */
static void forward_block(const geom *g, const float *U, const float *bias, int64_t nimg,
                          int64_t n0, int64_t t0, int64_t T, const fwd_buffers *b, float *y)
{
    int64_t cblocks = g->Cp / LANES, oblocks = g->Op / LANES;
    int64_t plane = g->Hp * g->Wp * LANES;
    int64_t xi_v = xi_stride(b->rows * g->Cp), xi_m = xi_stride(b->rows * g->Op);
    const dt_cpu_wino *wk = &dt_cpu()->wino;
    for (int64_t t = 0; t < T; t++) {
        int64_t tt = t0 + t, i = tt / g->tpi, ty = tt % g->tpi / g->TW, tx = tt % g->TW;
        const float *src = b->staged + i * plane + (4 * ty * g->Wp + 4 * tx) * LANES;
        for (int64_t cb = 0; cb < cblocks; cb++)
            wk->input_tile(src + cb * nimg * plane, g->Wp * LANES, b->V + t * g->Cp + cb * LANES,
                       xi_v);
    }
    int64_t nrw = dt_gemm_panel_width(g->Op);
    for (int xi = 0; xi < NXI; xi++)
        /* U is packed in panels of nrw columns: one product per panel */
        for (int64_t j = 0; j < g->Op; j += nrw) {
            dt_gemm_strided p = {.rows = T, .cols = nrw, .K = g->Cp,
                                 .a = b->V + xi * xi_v, .a_row = g->Cp, .a_k = 1,
                                 .b = U + xi * xi_stride(g->Cp * g->Op) + j * g->Cp, .ldb = nrw,
                                 .c = b->M + xi * xi_m + j, .ldc = g->Op};
            dt_gemm_strided_run(&p);
        }
    for (int64_t ob = 0; ob < oblocks; ob++) {
        int64_t o0 = ob * LANES, lanes = min64(LANES, g->O - o0);
        float bv[LANES] = {0};
        if (bias)
            for (int64_t l = 0; l < lanes; l++)
                bv[l] = bias[o0 + l];
        /* groups of up to GROUP_TILES consecutive tiles of one tile row */
        for (int64_t t = 0; t < T;) {
            int64_t tx = (t0 + t) % g->TW, n = min64(GROUP_TILES, g->TW - tx);
            float grp[4][GROUP_PIXELS][LANES];
            for (int64_t k = 0; k < n; k++)
                wk->output_tile(b->M + (t + k) * g->Op + o0, xi_m, bv, grp[0][4 * k],
                                GROUP_PIXELS * LANES);
            write_group(g, grp, b->out + t / g->TW * 4 * g->OW, b->out_stride, lanes,
                        4 * ((t0 + t) % g->tpi / g->TW), 4 * tx, 4 * n);
            t += n;
        }
        copy_out(g, b, n0, t0, T, o0, lanes, y);
    }
}

static void forward_chunk(const geom *g, const float *x, const float *U, const float *bias,
                          int64_t n0, int64_t nimg, const fwd_buffers *b, float *y)
{
    int64_t plane = g->Hp * g->Wp * LANES, T = nimg * g->tpi;
    for (int64_t cb = 0; cb < g->Cp / LANES; cb++)
        for (int64_t i = 0; i < nimg; i++)
            stage_block(x, g->C, g->H, g->W, n0 + i, cb, g->ph, g->pw, g->Hp, g->Wp,
                        b->staged + (cb * nimg + i) * plane);
    for (int64_t t0 = 0; t0 < T; t0 += b->block)
        forward_block(g, U, bias, nimg, n0, t0, min64(b->block, T - t0), b, y);
}

/* Scratch of n floats from the engine's caching allocator. */
static dt_status scratch(size_t n, dt_storage **out)
{
    dt_status st = dt_storage_new_uninit(n * sizeof(float), out);
    return st ? dt_fail(st, "conv2d (winograd): out of memory for %zu bytes of scratch",
                        n * sizeof(float))
              : DT_OK;
}

dt_status dt_winograd_forward(const dt_wino_problem *prob, const float *x, const float *w,
                              bool flip, const float *bias, float *y)
{
    geom g = geom_of(prob);
    if (g.N == 0 || g.O == 0)
        return DT_OK;
    int threads = omp_get_max_threads();
    /* whole images per chunk, about CHUNK_TILES tiles, but enough chunks
     * to give every thread work */
    int64_t nimg = max64(1, max64(DT_WINO_CHUNK_TILES, block_tiles(&g)) / g.tpi);
    nimg = min64(nimg, max64(1, g.N / threads));
    int64_t chunks = (g.N + nimg - 1) / nimg;
    size_t per_thread = fwd_buffer_floats(&g, nimg);
    dt_storage *ubuf = NULL, *tbuf = NULL;
    dt_status st = scratch((size_t)(NXI * xi_stride(g.Cp * g.Op)), &ubuf);
    if (st == DT_OK)
        st = scratch(per_thread * (size_t)threads, &tbuf);
    if (st) {
        if (ubuf)
            dt_storage_release(ubuf);
        return st;
    }
    float *U = ubuf->data, *base = tbuf->data;
    pack_kernels(&g, w, flip, U);
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t c = 0; c < chunks; c++) {
        fwd_buffers b = fwd_buffers_at(&g, nimg, base + per_thread * (size_t)omp_get_thread_num());
        int64_t n0 = c * nimg;
        forward_chunk(&g, x, U, bias, n0, min64(nimg, g.N - n0), &b, y);
    }
    dt_storage_release(tbuf);
    dt_storage_release(ubuf);
    return DT_OK;
}

/* ------------------------------------------------------ weight gradient */

/* Buffers of one weight-gradient chunk of `nimg` images: staged x and dy,
 * V (xi x tiles x Cp) and the gradient's transform D (xi x tiles x Op). */
typedef struct wgrad_buffers {
    float *xs, *dys, *V, *D;
    int64_t nimg, rows;
} wgrad_buffers;

static size_t wgrad_chunk_floats(const geom *g, int64_t nimg)
{
    int64_t rows = round_up(nimg * g->tpi, 16);
    return (size_t)(nimg * (g->Cp * g->Hp * g->Wp + g->Op * g->tpi * 16) +
                    NXI * (xi_stride(rows * g->Cp) + xi_stride(rows * g->Op)));
}

static wgrad_buffers wgrad_buffers_at(const geom *g, int64_t nimg, float *base)
{
    wgrad_buffers b = {.nimg = nimg, .rows = round_up(nimg * g->tpi, 16)};
    b.xs = base;
    b.dys = b.xs + nimg * g->Cp * g->Hp * g->Wp;
    b.V = b.dys + nimg * g->Op * g->tpi * 16;
    b.D = b.V + NXI * xi_stride(b.rows * g->Cp);
    return b;
}

/* The three steps of a chunk starting at image n0 (nimg images), each over
 * independent items so the shared mode can split them over threads:
 * staging item u (a channel block of x or dy of one image), the transforms
 * of tile t, the product of position xi into the sums dU. dy is staged as
 * 4 TH x 4 TW planes, zeros beyond OH x OW. */
static int64_t wgrad_stage_items(const geom *g, int64_t nimg)
{
    return (g->Cp + g->Op) / LANES * nimg;
}

static void wgrad_stage(const geom *g, const float *x, const float *dy, int64_t n0, int64_t nimg,
                        int64_t u, const wgrad_buffers *b)
{
    int64_t blk = u / nimg, i = u % nimg, cblocks = g->Cp / LANES;
    if (blk < cblocks)
        stage_block(x, g->C, g->H, g->W, n0 + i, blk, g->ph, g->pw, g->Hp, g->Wp,
                    b->xs + (blk * b->nimg + i) * g->Hp * g->Wp * LANES);
    else
        stage_block(dy, g->O, g->OH, g->OW, n0 + i, blk - cblocks, 0, 0, 4 * g->TH, 4 * g->TW,
                    b->dys + ((blk - cblocks) * b->nimg + i) * g->tpi * 16 * LANES);
}

static void wgrad_transform(const geom *g, int64_t t, const wgrad_buffers *b)
{
    int64_t i = t / g->tpi, ty = t % g->tpi / g->TW, tx = t % g->TW, Wq = 4 * g->TW;
    int64_t xplane = g->Hp * g->Wp * LANES, dplane = g->tpi * 16 * LANES;
    const dt_cpu_wino *wk = &dt_cpu()->wino;
    for (int64_t cb = 0; cb < g->Cp / LANES; cb++)
        wk->input_tile(b->xs + (cb * b->nimg + i) * xplane + (4 * ty * g->Wp + 4 * tx) * LANES,
                   g->Wp * LANES, b->V + t * g->Cp + cb * LANES, xi_stride(b->rows * g->Cp));
    for (int64_t ob = 0; ob < g->Op / LANES; ob++)
        wk->grad_tile(b->dys + (ob * b->nimg + i) * dplane + (4 * ty * Wq + 4 * tx) * LANES,
                  Wq * LANES, b->D + t * g->Op + ob * LANES, xi_stride(b->rows * g->Op));
}

/* dU_xi (Op x Cp) (+)= D_xi^T V_xi over the chunk's T tiles: rows are
 * output channels, read down D's columns; the tiles are the depth. */
static void wgrad_product(const geom *g, int64_t T, int xi, bool accumulate,
                          const wgrad_buffers *b, float *dU)
{
    dt_gemm_strided p = {.rows = g->Op, .cols = g->Cp, .K = T,
                         .a = b->D + xi * xi_stride(b->rows * g->Op), .a_row = 1, .a_k = g->Op,
                         .b = b->V + xi * xi_stride(b->rows * g->Cp), .ldb = g->Cp,
                         .c = dU + xi * xi_stride(g->Op * g->Cp), .ldc = g->Cp,
                         .accumulate = accumulate};
    dt_gemm_strided_run(&p);
}

/* Chunk sizes (whole images, at least one): the largest whose buffers fit
 * `bytes`. */
static int64_t images_within(const geom *g, int64_t bytes)
{
    int64_t per_image = (int64_t)(wgrad_chunk_floats(g, 1) * sizeof(float));
    return min64(g->N, max64(1, bytes / per_image));
}

/* Shared mode (large channel counts: one set of sums): chunks one after
 * another, every step split over all threads. The sums dU are written by
 * the first chunk and accumulated by the rest. */
static dt_status wgrad_shared(const geom *g, const float *x, const float *dy, float *dU)
{
    int64_t nimg = images_within(g, DT_WINO_WGRAD_BYTES);
    dt_storage *buf = NULL;
    dt_status st = scratch(wgrad_chunk_floats(g, nimg), &buf);
    if (st)
        return st;
    wgrad_buffers b = wgrad_buffers_at(g, nimg, buf->data);
    #pragma omp parallel
    for (int64_t n0 = 0; n0 < g->N; n0 += nimg) {
        int64_t n = min64(nimg, g->N - n0), T = n * g->tpi;
        #pragma omp for schedule(static)
        for (int64_t u = 0; u < wgrad_stage_items(g, n); u++)
            wgrad_stage(g, x, dy, n0, n, u, &b);
        #pragma omp for schedule(static)
        for (int64_t t = 0; t < T; t++)
            wgrad_transform(g, t, &b);
        #pragma omp for schedule(static)
        for (int xi = 0; xi < NXI; xi++)
            wgrad_product(g, T, xi, n0 > 0, &b, dU);
    }
    dt_storage_release(buf);
    return DT_OK;
}

/* Slot mode (small channel counts, where the transforms cost more than the
 * products): the batch is cut into `slots` fixed image ranges, each
 * with sums of its own, run by one thread in small chunks whose buffers
 * stay in L2; then the slots' sums are added in slot order. Ranges and
 * order depend only on the shapes. */
#define WGRAD_SLOTS 8
#define WGRAD_SLOT_CHUNK_BYTES (384 << 10)

static dt_status wgrad_slots(const geom *g, const float *x, const float *dy, int64_t slots,
                             float *dU)
{
    int threads = omp_get_max_threads();
    int64_t nimg = images_within(g, WGRAD_SLOT_CHUNK_BYTES);
    size_t per_thread = wgrad_chunk_floats(g, nimg), sums = (size_t)(NXI * xi_stride(g->Op * g->Cp));
    dt_storage *buf = NULL;
    dt_status st = scratch(per_thread * (size_t)threads + sums * (size_t)slots, &buf);
    if (st)
        return st;
    float *slot_sums = buf->data, *thread_base = slot_sums + sums * (size_t)slots;
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t s = 0; s < slots; s++) {
        wgrad_buffers b = wgrad_buffers_at(g, nimg, thread_base + per_thread *
                                                             (size_t)omp_get_thread_num());
        int64_t first = s * g->N / slots, end = (s + 1) * g->N / slots;
        for (int64_t n0 = first; n0 < end; n0 += nimg) {
            int64_t n = min64(nimg, end - n0);
            for (int64_t u = 0; u < wgrad_stage_items(g, n); u++)
                wgrad_stage(g, x, dy, n0, n, u, &b);
            for (int64_t t = 0; t < n * g->tpi; t++)
                wgrad_transform(g, t, &b);
            for (int xi = 0; xi < NXI; xi++)
                wgrad_product(g, n * g->tpi, xi, n0 > first, &b, slot_sums + sums * (size_t)s);
        }
    }
    #pragma omp parallel for schedule(static)
    for (size_t e = 0; e < sums; e++) {
        float total = slot_sums[e];
        for (int64_t s = 1; s < slots; s++)
            total += slot_sums[sums * (size_t)s + e];
        dU[e] = total;
    }
    dt_storage_release(buf);
    return DT_OK;
}

/* dw[o][c] = G^T dU[.][o][c] G for 16 input channels at a time. */
static void kernels_from_sums(const geom *g, const float *dU, float *dw)
{
    int64_t per_xi = xi_stride(g->Op * g->Cp);
    #pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < g->O; o++)
        for (int64_t c0 = 0; c0 < g->C; c0 += LANES) {
            dt_v16 u[NXI], t[6][3];
            for (int xi = 0; xi < NXI; xi++)
                u[xi] = dt_v16_load(dU + xi * per_xi + o * g->Cp + c0);
            for (int k = 0; k < 6; k++)
                for (int b = 0; b < 3; b++)
                    t[k][b] = G[0][b] * u[k * 6] + G[1][b] * u[k * 6 + 1] +
                              G[2][b] * u[k * 6 + 2] + G[3][b] * u[k * 6 + 3] +
                              G[4][b] * u[k * 6 + 4] + G[5][b] * u[k * 6 + 5];
            float taps[9][LANES];
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++) {
                    dt_v16 s = G[0][a] * t[0][b] + G[1][a] * t[1][b] + G[2][a] * t[2][b] +
                            G[3][a] * t[3][b] + G[4][a] * t[4][b] + G[5][a] * t[5][b];
                    dt_v16_store(taps[a * 3 + b], s);
                }
            /* taps[tap][lane] -> dw[o][c0 + lane][tap] */
            float out[LANES][16];
            transpose16(taps[0], LANES, out[0], 16, 9, min64(LANES, g->C - c0), false);
            for (int64_t l = 0; l < min64(LANES, g->C - c0); l++)
                memcpy(dw + (o * g->C + c0 + l) * 9, out[l], 9 * sizeof(float));
        }
}

dt_status dt_winograd_weight_grad(const dt_wino_problem *prob, const float *x, const float *dy,
                                  float *dw)
{
    geom g = geom_of(prob);
    if (g.O == 0 || g.C == 0)
        return DT_OK;
    if (g.N == 0) {
        memset(dw, 0, (size_t)(g.O * g.C * 9) * sizeof *dw);
        return DT_OK;
    }
    size_t sums = (size_t)(NXI * xi_stride(g.Op * g.Cp));
    dt_storage *buf = NULL;
    dt_status st = scratch(sums, &buf);
    if (st)
        return st;
    /* as many slots as the budget allows, an even number (two threads
     * share them evenly), from the shapes alone */
    int64_t fit = DT_WINO_SLOT_SUMS_BYTES / (int64_t)(sums * sizeof(float));
    int64_t slots = min64(g.N, min64(WGRAD_SLOTS, fit)) / 2 * 2;
    if (slots >= 2)
        st = wgrad_slots(&g, x, dy, slots, buf->data);
    else
        st = wgrad_shared(&g, x, dy, buf->data);
    if (st == DT_OK)
        kernels_from_sums(&g, buf->data, dw);
    dt_storage_release(buf);
    return st;
}
