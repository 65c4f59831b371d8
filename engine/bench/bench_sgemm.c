/* bench_sgemm.c - GFLOP/s of cblas_sgemm called directly, for comparison
 * with the same product made through distill's mm.
 * Usage: bench_sgemm N [repeats]  -> prints "N gflops" */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s N [repeats]\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]);
    int repeats = argc > 2 ? atoi(argv[2]) : 10;
    if (n <= 0 || repeats <= 0) {
        fprintf(stderr, "%s: N and repeats must be positive\n", argv[0]);
        return 2;
    }
    size_t count = (size_t)n * (size_t)n;
    float *a = malloc(count * sizeof *a), *b = malloc(count * sizeof *b), *c = malloc(count * sizeof *c);
    if (!a || !b || !c) {
        fprintf(stderr, "%s: out of memory\n", argv[0]);
        return 1;
    }
    for (size_t i = 0; i < count; i++) {
        a[i] = (float)(i % 17) * 0.01f;
        b[i] = (float)(i % 13) * 0.02f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double best = 1e30;
    for (int r = 0; r < repeats; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = now() - t0;
        if (dt < best)
            best = dt;
    }
    printf("%d %.2f\n", n, 2.0 * n * (double)n * n / best * 1e-9);
    free(a);
    free(b);
    free(c);
    return 0;
}
