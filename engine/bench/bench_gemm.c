/* bench_gemm.c - dt_gemm_f32 against single-threaded OpenBLAS cblas_sgemm
 * on the per-image products of the CIFAR ResNets' 3x3 convolutions:
 *   forward          C[O x P]  = W[O x K] . col[K x P]          (N, N)
 *   backward-data    dcol[K x P] = W^T . dy[O x P]              (T, N)
 *   backward-weight  dW[O x K] += dy[O x P] . col^T             (N, T)
 * with K = 9 * Cin, P = output positions. Times are per-thread CPU time
 * (CLOCK_THREAD_CPUTIME_ID), best of `repeats` runs of `images` products
 * (each over its own operands, as conv does per image); ms are scaled to
 * a batch of 64 images on one thread. As in conv.c, dt_gemm gets the
 * weights (A of forward and backward-data) packed once per pass
 * (dt_gemm_pack_a, outside the timing: once per 64 images in conv), and
 * the backward-weight products of a pass accumulate into one dW (conv's
 * per-chunk partial), for both libraries.
 *
 * Every kernel set the CPU runs (engine/cpu/cpu.h) is measured, each
 * against its own FMA peak: one core running the set's independent FMA
 * chains (fma_loop), in GF/s. The last lines give, per set, the GF/s of
 * all of ours over all these products and the share of that peak.
 *
 * Usage: bench_gemm [repeats] [images] [--summary] [isa ...]
 *   (OPENBLAS_NUM_THREADS is forced to 1; --summary prints only the peak
 *   and summary lines; isa names limit the sets measured) */
#include "math/gemm.h"
#include "cpu/cpu.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct layer {
    const char *net;
    int cin, cout, size, stride;
} layer;

static const layer layers[] = {
    {"r8x4", 32, 64, 32, 1},   {"r8x4", 64, 64, 32, 1},    {"r8x4", 64, 128, 32, 2},
    {"r8x4", 128, 128, 16, 1}, {"r8x4", 128, 256, 16, 2},  {"r8x4", 256, 256, 8, 1},
    {"r20", 16, 16, 32, 1},    {"r20", 16, 32, 32, 2},     {"r20", 32, 32, 16, 1},
    {"r20", 32, 64, 16, 2},    {"r20", 64, 64, 8, 1},
};

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *randbuf(size_t n)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_gemm: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return p;
}

/* One product: C = op(A) op(B) (+ C when accumulate); `packed`: op(A)
 * pre-packed for dt_gemm, or NULL. */
typedef struct product {
    bool ta, tb, accumulate;
    int64_t M, N, K, lda, ldb;
    const float *packed;
} product;

static void run(const product *p, bool ours, const float *a, const float *b, float *c)
{
    float beta = p->accumulate ? 1.0f : 0.0f;
    if (ours) {
        dt_gemm_op op = {.trans_a = p->ta, .trans_b = p->tb, .M = p->M, .N = p->N, .K = p->K,
                         .alpha = 1.0f, .A = a, .lda = p->lda, .packed_a = p->packed, .B = b,
                         .ldb = p->ldb, .beta = beta, .C = c, .ldc = p->N};
        if (dt_gemm_run(&op)) {
            fprintf(stderr, "bench_gemm: %s\n", dt_last_error());
            exit(1);
        }
    } else {
        cblas_sgemm(CblasRowMajor, p->ta ? CblasTrans : CblasNoTrans,
                    p->tb ? CblasTrans : CblasNoTrans, (int)p->M, (int)p->N, (int)p->K, 1.0f, a,
                    (int)p->lda, b, (int)p->ldb, beta, c, (int)p->N);
    }
}

/* Best time of `repeats` passes over `images` operand sets, in seconds per product. */
static double best_time(const product *p, bool ours, float **a, float **b, float **c, int images,
                        int repeats)
{
    double best = INFINITY;
    for (int r = 0; r <= repeats; r++) {   /* pass 0 warms up */
        double t0 = cpu_now();
        for (int i = 0; i < images; i++)   /* accumulating products share one C */
            run(p, ours, a[i], b[i], c[p->accumulate ? 0 : i]);
        double dt = (cpu_now() - t0) / images;
        if (r > 0 && dt < best)
            best = dt;
    }
    return best;
}

/* Largest |ours - openblas| relative to the largest |openblas| value. */
static double compare(const product *p, const float *a, const float *b, float *c1, float *c2)
{
    size_t n = (size_t)(p->M * p->N);
    for (size_t i = 0; i < n; i++)
        c1[i] = c2[i] = 0.25f;
    run(p, true, a, b, c1);
    run(p, false, a, b, c2);
    double diff = 0.0, scale = 1e-30;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)c1[i] - (double)c2[i]));
        scale = fmax(scale, fabs((double)c2[i]));
    }
    return diff / scale;
}

/* Flops and seconds of ours over every product measured, for the summary. */
static double total_flops, total_seconds;
static bool quiet;

static void bench_product(const char *name, const product *p, int images, int repeats)
{
    size_t asz = (size_t)(p->M * p->K), bsz = (size_t)(p->K * p->N), csz = (size_t)(p->M * p->N);
    float *a[64], *b[64], *c[64];
    for (int i = 0; i < images; i++)
        a[i] = randbuf(asz), b[i] = randbuf(bsz), c[i] = randbuf(csz);
    product mine = *p;
    float *packed = NULL;
    if (!p->accumulate) {   /* A is the weights: the same for every image */
        packed = malloc(dt_gemm_packed_a_size(p->M, p->K) * sizeof *packed);
        if (!packed) {
            fprintf(stderr, "bench_gemm: out of memory\n");
            exit(1);
        }
        dt_gemm_pack_a(p->ta, p->M, p->K, a[0], p->lda, packed);
        for (int i = 1; i < images; i++)
            a[i] = a[0];
        mine.packed = packed;
    }
    double err = compare(p, a[0], b[0], c[0], c[1]);
    double tb = best_time(p, false, a, b, c, images, repeats);
    double to = best_time(&mine, true, a, b, c, images, repeats);
    double flops = 2.0 * (double)p->M * (double)p->N * (double)p->K;
    total_flops += flops;
    total_seconds += to;
    if (!quiet)
        printf("  %-6s M %5lld N %5lld K %5lld  openblas %8.2f ms %6.1f GF/s   ours %8.2f ms "
               "%6.1f GF/s  x%.2f  err %.1e\n",
               name, (long long)p->M, (long long)p->N, (long long)p->K, tb * 64e3,
               flops / tb * 1e-9, to * 64e3, flops / to * 1e-9, tb / to, err);
    for (int i = 0; i < images; i++)
        free(b[i]), free(c[i]);
    free(a[0]);
    if (p->accumulate)
        for (int i = 1; i < images; i++)
            free(a[i]);
    free(packed);
}

/* One core's FMA peak with the set's vectors, GF/s: best of a few timed
 * runs of its independent FMA chains. */
static double fma_peak(const dt_cpu_kernels *k)
{
    int64_t iters = 20000000 / k->fma_lanes;
    float sink;
    double best = INFINITY;
    for (int r = 0; r < 4; r++) {
        double t0 = cpu_now();
        k->fma_loop(iters, &sink);
        double dt = cpu_now() - t0;
        if (r > 0 && dt < best)
            best = dt;
    }
    if (sink == 12345.0f)   /* keeps the loop's result alive */
        printf(" ");
    return (double)iters * 12.0 * k->fma_lanes * 2.0 / best * 1e-9;
}

static void bench_layers(int images, int repeats)
{
    for (size_t l = 0; l < sizeof layers / sizeof layers[0]; l++) {
        const layer *y = &layers[l];
        int64_t out = y->size / y->stride, P = out * out, K = 9 * (int64_t)y->cin, O = y->cout;
        if (!quiet)
            printf("%s %d->%d %dx%d s%d\n", y->net, y->cin, y->cout, y->size, y->size, y->stride);
        product fwd = {false, false, false, O, P, K, K, P, NULL};
        product data = {true, false, false, K, P, O, K, P, NULL};
        product wt = {false, true, true, O, K, P, P, P, NULL};
        bench_product("fwd", &fwd, images, repeats);
        bench_product("data", &data, images, repeats);
        bench_product("weight", &wt, images, repeats);
    }
}

int main(int argc, char **argv)
{
    int repeats = 5, images = 8, positional = 0;
    const char *only[DT_ISA_COUNT];
    int nonly = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--summary") == 0)
            quiet = true;
        else if (argv[i][0] >= '0' && argv[i][0] <= '9')
            *(positional++ == 0 ? &repeats : &images) = atoi(argv[i]);
        else if (nonly < DT_ISA_COUNT)
            only[nonly++] = argv[i];
    }
    if (repeats <= 0 || images <= 1 || images > 64) {
        fprintf(stderr, "usage: %s [repeats > 0] [images 2..64] [--summary] [isa ...]\n", argv[0]);
        return 2;
    }
    if (dt_engine_init() != DT_OK) {
        fprintf(stderr, "bench_gemm: %s\n", dt_last_error());
        return 1;
    }
    printf("%s; per-image conv GEMMs, 1 thread, best of %d x %d images; ms = 64 images\n",
           dt_cpu_model(), repeats, images);
    const char *names[DT_ISA_COUNT];
    int n = dt_isa_list(names, DT_ISA_COUNT);
    for (int i = 0; i < n; i++) {
        bool wanted = nonly == 0;
        for (int j = 0; j < nonly; j++)
            wanted |= strcmp(only[j], names[i]) == 0;
        if (!wanted)
            continue;
        if (dt_isa_set(names[i]) != DT_OK) {
            fprintf(stderr, "bench_gemm: %s\n", dt_last_error());
            return 1;
        }
        double peak = fma_peak(dt_cpu());
        if (!quiet)
            printf("== %s kernels (FMA peak %.1f GF/s per core)\n", names[i], peak);
        total_flops = total_seconds = 0.0;
        bench_layers(images, repeats);
        double rate = total_flops / total_seconds * 1e-9;
        printf("%-8s FMA peak %6.1f GF/s; conv GEMMs %6.1f GF/s = %4.1f%% of peak\n", names[i],
               peak, rate, 100.0 * rate / peak);
    }
    return 0;
}
