/* What the CPU can do, asked once: shared by the exact-sum kernel (exactsum.c) and the
 * number reader (numbers.h). Plain C, no Python. */
#ifndef MLXRUN_CPU_H
#define MLXRUN_CPU_H

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
static inline int have_avx2(void) {
    static int known = -1;
    if (known < 0) known = __builtin_cpu_supports("avx2") ? 1 : 0;
    return known;
}
#endif

#endif
