/* The vector number reader (numbers.h: AVX2 on x86-64, NEON on arm64) against the portable
 * one, number_at, on generated tokens amid random bytes: the same end, the same bits, the
 * same integer and overflow; and the floats as the C library's strtod reads them. Plain C,
 * no Python, so it runs on any architecture, an emulated one too (test_readers.py).
 * Usage: readers COUNT SEED. Prints "ok COUNT READER", "none" where there is no vector
 * reader, or the first difference (and exits 1). */
#include <inttypes.h>
#include <stdio.h>

#include "numbers.h"

static uint64_t state;

static uint64_t random64(void) { /* xorshift64* */
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1DULL;
}

static int below(int n) { return (int)(random64() % (uint64_t)n); }

static const char *pick(const char *const *words, int n) { return words[below(n)]; }

static const char *const SPECIAL[] = {
    "nan", "-inf", "Infinity", "+inf", "5.", ".5", "-.5", "+0", "-0", "1.2.3", "12abc", ".",
    "1e", "+-1", "0x10", "1_0", "1e5x", "5.e", "00000000000000000001", "1.5E-3", "1e+400",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "18446744073709551615", "9999999999999999999",
    "10000000000000000000", "0.30000000000000004", "2.2250738585072011e-308"};
static const char *const SEPARATORS[] = {" ", "\n", "\r\n", ",", "\t", "#", "  ", "x", "e5", "."};
static const char JUNK[] = "0123456789.-+e ,\n";

/* A token of one of several kinds: digits with a point anywhere, repr-like floats, 64-bit
 * integers, the special and the bad ones. */
static void make_token(char *out, size_t cap) {
    int kind = below(5);
    if (kind == 0) {
        int n = 1 + below(34), at = below(n + 2), k = 0;
        if (below(3) == 0) out[k++] = below(2) ? '-' : '+';
        for (int j = 0; j < n; j++) {
            if (j == at) out[k++] = '.';
            out[k++] = (char)('0' + (below(4) == 0 ? 0 : below(10)));
        }
        if (below(5) == 0) k += snprintf(out + k, cap - (size_t)k, "e%d", below(700) - 350);
        out[k] = 0;
    } else if (kind == 1) {
        uint64_t bits = random64();
        double d;
        memcpy(&d, &bits, sizeof d);
        if (!isfinite(d)) d = (double)(int64_t)bits / 1e3;
        const char *format = pick((const char *const[]){"%.17g", "%.16g", "%.15g", "%.6f"}, 4);
        snprintf(out, cap, format, below(2) ? d : d * 1e-300 * 1e300 / (1 + below(1000)));
    } else if (kind == 2) {
        int64_t v = (int64_t)random64() >> below(64);
        snprintf(out, cap, "%" PRId64, v);
    } else if (kind == 3) {
        snprintf(out, cap, "%s", pick(SPECIAL, (int)(sizeof SPECIAL / sizeof *SPECIAL)));
    } else {
        snprintf(out, cap, "%.*f", below(18), ((double)below(2000000) - 1e6) / 997.0);
    }
}

#ifdef HAVE_VECTOR_READER
VECTOR_TARGET static const unsigned char *read_vector(const unsigned char *p,
                                                      const unsigned char *end, double *f,
                                                      int64_t *i, int *is_int, int *overflow) {
    return number_vector(p, end, f, i, is_int, overflow);
}
#endif

static uint64_t bits_of(double d) {
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

int main(int argc, char **argv) {
#ifndef HAVE_VECTOR_READER
    (void)argc;
    (void)argv;
    puts("none");
    return 0;
#else
    if (argc != 3) return 2;
    long count = atol(argv[1]);
    state = strtoull(argv[2], NULL, 10) | 1;
    numbers_init();
    if (!vector_reader_available()) {
        puts("none");
        return 0;
    }
    unsigned char buf[256];
    char token[96];
    for (long k = 0; k < count; k++) {
        make_token(token, sizeof token);
        size_t n = strlen(token);
        /* Random bytes around it: the reader loads them and must set them aside. */
        for (size_t j = 0; j < sizeof buf; j++) buf[j] = (unsigned char)JUNK[below(17)];
        unsigned char *p = buf + 48;
        memcpy(p, token, n);
        const char *sep = pick(SEPARATORS, (int)(sizeof SEPARATORS / sizeof *SEPARATORS));
        memcpy(p + n, sep, strlen(sep));
        const unsigned char *end = p + n + strlen(sep) + 48;
        double f1 = 0, f2 = 0;
        int64_t i1 = 0, i2 = 0;
        int int1 = 0, int2 = 0, over1 = 0, over2 = 0;
        const unsigned char *e1 = number_at(p, end, &f1, &i1, &int1, &over1);
        const unsigned char *e2 = read_vector(p, end, &f2, &i2, &int2, &over2);
        int same = e1 == e2 && (e1 == NULL || (int1 == int2 && over1 == over2));
        if (same && e1 != NULL && !over1) {
            same = bits_of(f1) == bits_of(f2) && (!int1 || i1 == i2);
        }
        if (same && e1 != NULL && !int1 && !over1) { /* the float as strtod reads it */
            char copy[128];
            size_t len = (size_t)(e1 - p);
            memcpy(copy, p, len);
            copy[len] = 0;
            double ref = strtod(copy, NULL);
            same = bits_of(ref) == bits_of(f1) || (isnan(ref) && isnan(f1));
        }
        if (!same) {
            printf("differ at %ld: token '%s' sep '%s': end %td/%td int %d/%d overflow %d/%d "
                   "f %.17g/%.17g i %" PRId64 "/%" PRId64 "\n",
                   k, token, sep, e1 ? e1 - p : -1, e2 ? e2 - p : -1, int1, int2, over1, over2,
                   f1, f2, i1, i2);
            return 1;
        }
    }
#if defined(__x86_64__)
    printf("ok %ld avx2\n", count);
#else
    printf("ok %ld neon\n", count);
#endif
    return 0;
#endif
}
