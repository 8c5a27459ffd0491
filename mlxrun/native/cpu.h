/* What the CPU can do, asked once: shared by the exact-sum kernel (exactsum.c) and the
 * number reader (numbers.h). Plain C, no Python. */
#ifndef MLXRUN_CPU_H
#define MLXRUN_CPU_H

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>

static inline int have_avx2(void) {
    static int known = -1;
    if (known < 0) known = __builtin_cpu_supports("avx2") ? 1 : 0;
    return known;
}

/* AVX2 with the bit instructions every AVX2 CPU also has (Intel since Haswell, AMD since
 * Excavator), asked for all the same: the number reader's target, where BMI2's shifts by a
 * register need no move to cl and LZCNT/TZCNT one instruction each. */
#define AVX2_BITS_TARGET __attribute__((target("avx2,bmi,bmi2,lzcnt")))

static inline int have_lzcnt(void) { /* asked of cpuid: not every clang's builtin knows it */
    unsigned a, b, c, d;
    return __get_cpuid(0x80000001u, &a, &b, &c, &d) && (c & (1u << 5)); /* ABM: LZCNT */
}

static inline int have_avx2_bits(void) {
    static int known = -1;
    if (known < 0) {
        known = have_avx2() && __builtin_cpu_supports("bmi") &&
                __builtin_cpu_supports("bmi2") && have_lzcnt();
    }
    return known;
}
#endif

#endif
