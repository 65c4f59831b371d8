/* isa.c - which kernel table runs (cpu.h): the best instruction set both
 * this build and this CPU have, unless DISTILL_ISA or dt_isa_set names
 * another. Compiled for the baseline target, so it runs anywhere and asks
 * the CPU before any vector kernel does. */
#include "cpu.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(DISTILL_X86_KERNELS)
#include <cpuid.h>
#endif

static const char *const isa_names[DT_ISA_COUNT] = {"generic", "avx2", "avx512"};

static _Atomic(const dt_cpu_kernels *) current = &dt_cpu_generic;

const dt_cpu_kernels *dt_cpu(void)
{
    return atomic_load_explicit(&current, memory_order_relaxed);
}

/* Whether the CPU (and its OS, which must save the wider registers) runs
 * the instructions the ISA's files are compiled for (CMakeLists.txt). */
static bool cpu_runs(dt_isa isa)
{
#if defined(DISTILL_X86_KERNELS)
    __builtin_cpu_init();
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    switch (isa) {
    case DT_ISA_GENERIC:
        return true;
    case DT_ISA_AVX2:
        return avx2;
    case DT_ISA_AVX512:
        return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    default:
        return false;
    }
#else
    return isa == DT_ISA_GENERIC;
#endif
}

/* Whether this build has the ISA's kernels at all. */
static bool built(dt_isa isa)
{
#if defined(DISTILL_X86_KERNELS)
    return isa >= 0 && isa < DT_ISA_COUNT;
#else
    return isa == DT_ISA_GENERIC;
#endif
}

const dt_cpu_kernels *dt_cpu_table(dt_isa isa)
{
    if (!built(isa) || !cpu_runs(isa))
        return NULL;
#if defined(DISTILL_X86_KERNELS)
    if (isa == DT_ISA_AVX512)
        return &dt_cpu_avx512;
    if (isa == DT_ISA_AVX2)
        return &dt_cpu_avx2;
#endif
    return &dt_cpu_generic;
}

static dt_isa best_isa(void)
{
    for (int i = DT_ISA_COUNT - 1; i > 0; i--)
        if (dt_cpu_table((dt_isa)i))
            return (dt_isa)i;
    return DT_ISA_GENERIC;
}

const char *dt_isa_name(void) { return dt_cpu()->name; }

int dt_isa_list(const char **names, int max)
{
    int n = 0;
    for (int i = 0; i < DT_ISA_COUNT; i++)
        if (dt_cpu_table((dt_isa)i) && n < max)
            names[n++] = isa_names[i];
    return n;
}

/* The CPU's brand string (CPUID leaves 0x80000002-4), else the first
 * "model name" of /proc/cpuinfo, else "unknown CPU". */
const char *dt_cpu_model(void)
{
    static char model[64];
    if (model[0])
        return model;
#if defined(DISTILL_X86_KERNELS)
    unsigned regs[12];
    if ((unsigned)__get_cpuid_max(0x80000000u, NULL) >= 0x80000004u) {
        for (unsigned leaf = 0; leaf < 3; leaf++)
            __get_cpuid(0x80000002u + leaf, &regs[4 * leaf], &regs[4 * leaf + 1],
                        &regs[4 * leaf + 2], &regs[4 * leaf + 3]);
        char brand[49];
        memcpy(brand, regs, 48);
        brand[48] = '\0';
        const char *s = brand;
        while (*s == ' ')
            s++;
        snprintf(model, sizeof model, "%s", s);
    }
#endif
    if (!model[0]) {
        FILE *f = fopen("/proc/cpuinfo", "r");
        char line[256];
        while (f && fgets(line, sizeof line, f))
            if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
                snprintf(model, sizeof model, "%s", strchr(line, ':') + 2);
                model[strcspn(model, "\n")] = '\0';
                break;
            }
        if (f)
            fclose(f);
    }
    size_t n = strlen(model);
    while (n > 0 && model[n - 1] == ' ')
        model[--n] = '\0';
    if (!model[0])
        snprintf(model, sizeof model, "unknown CPU");
    return model;
}

/* "generic, avx2" for the error messages. */
static void list_runnable(char *buf, size_t size)
{
    const char *names[DT_ISA_COUNT];
    int n = dt_isa_list(names, DT_ISA_COUNT);
    buf[0] = '\0';
    for (int i = 0; i < n; i++)
        snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", i ? ", " : "", names[i]);
}

static dt_status choose(const char *what, const char *name)
{
    if (!name || !name[0] || strcmp(name, "auto") == 0) {
        atomic_store(&current, dt_cpu_table(best_isa()));
        return DT_OK;
    }
    int isa = 0;
    while (isa < DT_ISA_COUNT && strcmp(isa_names[isa], name) != 0)
        isa++;
    if (isa == DT_ISA_COUNT)
        return dt_fail(DT_ERR_ARG, "%s%s: unknown instruction set (expected auto, generic, avx2 "
                       "or avx512)", what, name);
    char runnable[64];
    list_runnable(runnable, sizeof runnable);
    if (!built((dt_isa)isa))
        return dt_fail(DT_ERR_ARG, "%s%s: this build of distill has no %s kernels (it was "
                       "built for another architecture); it has %s", what, name, name, runnable);
    if (!cpu_runs((dt_isa)isa))
        return dt_fail(DT_ERR_ARG, "%s%s: this CPU (%s) does not support %s; it supports %s",
                       what, name, dt_cpu_model(), name, runnable);
    atomic_store(&current, dt_cpu_table((dt_isa)isa));
    return DT_OK;
}

dt_status dt_isa_set(const char *name) { return choose("", name); }

dt_status dt_isa_init(void) { return choose("DISTILL_ISA=", getenv("DISTILL_ISA")); }
