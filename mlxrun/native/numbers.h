/* Reading one number of text, exactly: the parsers' core, in plain C (no Python), so that a
 * test program can drive it alone, on any architecture (tests/native).
 *
 * Every float is correctly rounded, as Python's float() rounds it, by the first of these
 * that decides:
 * - Eisel and Lemire's algorithm (as in fast_float): the 19-digit mantissa times a
 *   128-bit approximation of 5**q (table in pow5.h) gives the result's top bits; where
 *   that approximation or a tie could leave the rounding in doubt, or the result is
 *   subnormal or overflows, it does not decide;
 * - Clinger's fast path: a mantissa below 2**53 times an exact power of ten below 1e23
 *   is one IEEE operation, hence correctly rounded (the exact ties, such as 0.5);
 * - anything else (more than 19 digits, a doubtful case) goes to the C library's
 *   strtod, which is correctly rounded in glibc and macOS libc.
 * Eisel-Lemire goes first although Clinger's path is shorter: which of the two a number
 * takes would depend on whether its digits pass 2**53, a branch that real data (15 to 17
 * digits, at random) leave the predictor to guess. Measured on the benchmark's floats: 1.37x faster
 * with the vector reader below, 1.15x with the portable one.
 * The grammar is Python's float() grammar without underscores and hex: an optional
 * sign, digits with an optional point, an optional exponent, or nan/inf/infinity.
 */
#ifndef MLXRUN_NUMBERS_H
#define MLXRUN_NUMBERS_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

static const double P10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                             1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                             1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

#include "pow5.h"

#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

/* What a byte is to the text loop, looked up rather than compared one by one: this test
 * runs for every byte. SEPARATOR: whitespace or a comma; COMMENT: '#'; both end a token. */
enum { SEPARATOR = 1, COMMENT = 2 };
static unsigned char BYTE_CLASS[256];

static inline int is_sep(unsigned char c) { return BYTE_CLASS[c] == SEPARATOR; }

static inline int ends_token(unsigned char c) { return BYTE_CLASS[c] != 0; }

static inline int is_end(const unsigned char *p, const unsigned char *end) {
    return p == end || ends_token(*p);
}

static int match_word(const unsigned char *p, const unsigned char *end, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(end - p) < n) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        if (c != (unsigned char)word[i]) return 0;
    }
    return (int)n;
}

/* strtod on a NUL-terminated copy of [start, stop): the exact fallback. */
static double slow_double(const unsigned char *start, const unsigned char *stop) {
    char buf[128];
    size_t n = (size_t)(stop - start);
    char *copy = n < sizeof buf ? buf : (char *)malloc(n + 1);
    if (copy == NULL) return strtod("nan", NULL);
    memcpy(copy, start, n);
    copy[n] = 0;
    double v = strtod(copy, NULL);
    if (copy != buf) free(copy);
    return v;
}

/* The full 128-bit product of two 64-bit numbers. */
static inline void mul128(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo) {
    __uint128_t r = (__uint128_t)a * b;
    *hi = (uint64_t)(r >> 64);
    *lo = (uint64_t)r;
}

/* w * 10**q for 0 < w < 2**64, correctly rounded, or 0 when it cannot be sure. */
static ALWAYS_INLINE int eisel_lemire(uint64_t w, int q, int negative, double *out) {
    if (q < POW5_MIN_Q || q > POW5_MAX_Q) return 0;
    int lz = __builtin_clzll(w);
    w <<= lz;
    int index = 2 * (q - POW5_MIN_Q);
    uint64_t hi, lo;
    mul128(w, POW5[index], &hi, &lo);
    const uint64_t mask = 0xFFFFFFFFFFFFFFFFULL >> 55; /* the bits below the 55 we keep */
    if ((hi & mask) == mask) { /* they might carry: add the table's next 64 bits */
        uint64_t hi2, lo2;
        mul128(w, POW5[index + 1], &hi2, &lo2);
        lo += hi2;
        if (hi2 > lo) hi++;
        if ((hi & mask) == mask && lo == 0xFFFFFFFFFFFFFFFFULL) return 0;
    }
    int upper = (int)(hi >> 63);
    uint64_t mantissa = hi >> (upper + 9);
    int power2 = (((152170 + 65536) * q) >> 16) + 63 + upper - lz + 1023;
    if (power2 <= 0) return 0; /* subnormal */
    if (lo <= 1 && q >= -4 && q <= 23 && (mantissa & 3) == 1) return 0; /* maybe a tie */
    mantissa += mantissa & 1;
    mantissa >>= 1;
    if (mantissa >= (2ULL << 52)) {
        mantissa = 1ULL << 52;
        power2++;
    }
    if (power2 >= 0x7FF) return 0; /* overflow */
    uint64_t bits = (mantissa & ~(1ULL << 52)) | ((uint64_t)power2 << 52);
    bits |= (uint64_t)negative << 63;
    memcpy(out, &bits, sizeof bits);
    return 1;
}


/* d with its sign bit set if `negative` (d >= 0): without a branch, as signs of real data
 * are a coin toss for the branch predictor. */
static inline double with_sign(double d, int negative) {
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    bits |= (uint64_t)negative << 63;
    memcpy(&d, &bits, sizeof bits);
    return d;
}

static ALWAYS_INLINE int fast_double(uint64_t w, int q, int negative, double *out) {
    if (w == 0) {
        *out = with_sign(0.0, negative);
        return 1;
    }
    if (eisel_lemire(w, q, negative, out)) return 1;
    if (w <= (1ULL << 53) && q >= -22 && q <= 22) {
        double d = (double)w;
        d = q < 0 ? d / P10[-q] : d * P10[q];
        *out = with_sign(d, negative);
        return 1;
    }
    return 0;
}

/* Eight digits at once (SWAR, as in fast_float): most numbers of real data have more
 * than eight, and the byte loop's multiply chain costs a few cycles per digit. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LITTLE_ENDIAN_SWAR 1
#else
#define LITTLE_ENDIAN_SWAR 0 /* the byte order the tricks below need: else byte by byte */
#endif

static inline uint64_t load8(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* A byte of v has its top bit set here if it is not an ASCII digit; exact up to and
 * including the first such byte (the arithmetic's carries only run upwards). */
static inline uint64_t non_digits(uint64_t v) {
    return ((v + 0x4646464646464646ULL) | (v - 0x3030303030303030ULL)) & 0x8080808080808080ULL;
}

static inline uint64_t eight_digits_value(uint64_t v) {
    v -= 0x3030303030303030ULL;
    v = (v * 10) + (v >> 8);
    return (((v & 0x000000FF000000FFULL) * 0x000F424000000064ULL) +
            (((v >> 16) & 0x000000FF000000FFULL) * 0x0000271000000001ULL)) >>
           32;
}

static const uint64_t P10U[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};

/* Reads the digits at p into *w (w * 10 + digit, wrapping like the byte loop would).
 * Eight bytes at a time: a run of fewer than eight digits is moved to the low end of
 * the word, padded with '0's, and read in one go, so a number's length costs no
 * mispredicted branch per digit. */
static inline const unsigned char *digit_run(const unsigned char *p, const unsigned char *end,
                                             uint64_t *w) {
    uint64_t v = *w;
    while (LITTLE_ENDIAN_SWAR && end - p >= 8) {
        uint64_t chunk = load8(p);
        uint64_t stop = non_digits(chunk);
        if (stop == 0) {
            v = v * 100000000ULL + eight_digits_value(chunk);
            p += 8;
            continue;
        }
        int n = __builtin_ctzll(stop) >> 3; /* digits before the first non-digit */
        if (n > 0) {
            uint64_t digits = (chunk << (8 * (8 - n))) | (0x3030303030303030ULL >> (8 * n));
            v = v * P10U[n] + eight_digits_value(digits);
            p += n;
        }
        *w = v;
        return p;
    }
    while (p < end && (unsigned)(*p - '0') < 10) v = v * 10 + (uint64_t)(*p++ - '0');
    *w = v;
    return p;
}

/* Moves *pp past separators and comments to the next token; 0 at the end of the text. */
static inline int skip_to_token(const unsigned char **pp, const unsigned char *end) {
    const unsigned char *p = *pp;
    while (p < end) {
        if (is_sep(*p)) {
            p++;
        } else if (*p == '#') {
            const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
            p = nl ? nl + 1 : end;
        } else {
            break;
        }
    }
    *pp = p;
    return p < end;
}

/* The rest of a number whose digits ended at p: its exponent, if any, then its value. w holds
 * the digits read (all of them unless `dropped`), q the power of ten to scale w by, point
 * whether a point was seen. Shared by both digit readers, so they give the same answers. */
static ALWAYS_INLINE const unsigned char *finish_number(const unsigned char *start,
                                                        const unsigned char *p,
                                                        const unsigned char *end, uint64_t w,
                                                        int q, int point, int dropped,
                                                        int negative, double *f, int64_t *i,
                                                        int *is_int, int *overflow) {
    int exponent = 0, huge_exponent = 0;
    if (p < end && !ends_token(*p)) { /* most numbers end at a separator */
        if (*p != 'e' && *p != 'E') return NULL;
        const unsigned char *e = p + 1;
        int eneg = 0;
        if (e < end && (*e == '+' || *e == '-')) {
            eneg = *e == '-';
            e++;
        }
        if (e == end || *e < '0' || *e > '9') return NULL;
        for (; e < end && *e >= '0' && *e <= '9'; e++) {
            if (exponent < 100000) {
                exponent = exponent * 10 + (*e - '0');
            } else {
                huge_exponent = 1; /* as many leading zeros could make up for it: strtod */
            }
        }
        exponent = eneg ? -exponent : exponent;
        p = e;
        point = 1; /* an exponent makes it a float */
        if (!is_end(p, end)) return NULL;
    }
    if (!point) { /* an integer: exact in int64, or an overflow to report */
        *is_int = 1;
        if (dropped || w > (uint64_t)INT64_MAX + (uint64_t)negative) {
            *overflow = 1;
            return p;
        }
        /* Without a branch on the sign, which random signs mispredict (1.13x on the
         * benchmark's integers without it). w <= 2**63 here; float("-0") is -0.0. */
        uint64_t minus = 0 - (uint64_t)negative;
        *i = (int64_t)((w ^ minus) - minus);
        *f = with_sign((double)(int64_t)w, negative);
        return p;
    }
    *is_int = 0;
    if (dropped || huge_exponent || !fast_double(w, q + exponent, negative, f)) {
        *f = slow_double(start, p);
    }
    return p;
}

/* Parses one token at p (p < end); returns the end of the token, or NULL if it is not a
 * number. Inlined into the text loop (a call cost 20 of its 240 instructions per number);
 * csvparse.c parses fields with it too, as native_number. */
static ALWAYS_INLINE const unsigned char *number_at(const unsigned char *p,
                                                    const unsigned char *end, double *f,
                                                    int64_t *i, int *is_int, int *overflow) {
    const unsigned char *start = p;
    int negative = *p == '-';
    p += negative | (*p == '+'); /* no branch: signs are a coin toss for the predictor */
    int n = 0;
    unsigned char c0 = p < end ? *p : 0;
    int word = c0 == 'i' || c0 == 'I' || c0 == 'n' || c0 == 'N'; /* only then a name */
    if (word && ((n = match_word(p, end, "infinity")) || (n = match_word(p, end, "inf")) ||
                 (n = match_word(p, end, "nan")))) {
        if (!is_end(p + n, end)) return NULL;
        *f = p[0] == 'n' || p[0] == 'N' ? (negative ? -NAN : NAN)
                                        : (negative ? -INFINITY : INFINITY);
        *is_int = 0;
        return p + n;
    }
    uint64_t w = 0;
    int digits = 0, significant = 0, dropped = 0, q = 0, point = 0;
    /* The common case first: at most 19 digits in all, read by two tight loops. Leading
     * zeros count here but add nothing to w; a longer number is read again below. */
    const unsigned char *digits_start = p;
    p = digit_run(p, end, &w);
    int int_digits = (int)(p - digits_start);
    int frac_digits = 0;
    if (p < end && *p == '.') {
        const unsigned char *frac = ++p;
        p = digit_run(p, end, &w);
        frac_digits = (int)(p - frac);
        point = 1;
    }
    int careful = int_digits + frac_digits > 19;
    if (!careful) {
        digits = int_digits + frac_digits;
        q = -frac_digits;
    } else { /* too long for one uint64: the careful loop skips zeros and drops digits */
        p = digits_start;
        w = 0;
        point = 0;
    }
    for (; careful && p < end; p++) {
        unsigned char c = *p;
        if (c >= '0' && c <= '9') {
            digits++;
            if (significant == 0 && c == '0') {
                if (point) q--;
                continue;
            }
            if (significant < 19) {
                w = w * 10 + (uint64_t)(c - '0');
                significant++;
                if (point) q--;
            } else {
                dropped = 1; /* more digits than fit: strtod decides */
                if (!point) q++;
            }
        } else if (c == '.' && !point) {
            point = 1;
        } else {
            break;
        }
    }
    if (digits == 0) return NULL;
    return finish_number(start, p, end, w, q, point, dropped, negative, f, i, is_int, overflow);
}


/* A number's digits in 32-byte vectors, where number_at reads them eight at a time with a
 * branch per run of digits, mispredicted as lengths vary: AVX2 on x86-64 (checked at run
 * time), NEON on arm64 (always there), neither elsewhere; not with MLXRUN_NO_SIMD=1.
 * Compares find the digits and the point of the 32 bytes at the token; the digits are then
 * loaded again right-aligned at their end, the point squeezed out by a blend with the same
 * bytes one to the left, and multiply-adds combine them eight at a time. number_vector
 * takes only a plain number of 1 to 19 digits (an exponent may follow), anything else is
 * number_at's, and both end in finish_number: the same answers, which the tests compare
 * (tests/native runs the NEON one under an arm64 emulator). It reads from 32 bytes before
 * the token to 32 after its start: the caller keeps it VECTOR_BEFORE and VECTOR_AFTER bytes
 * from the text's ends. */
#define VECTOR_BEFORE 33
#define VECTOR_AFTER 33

/* w from the frame's four eight-digit groups (bytes 0-7, 8-15, 16-23, 24-31): at most 19
 * digits, so bytes 0-12 are zeros and the first group adds nothing. */
static inline uint64_t from_groups(uint64_t g1, uint64_t g2, uint64_t g3) {
    return g1 * 10000000000000000ULL + g2 * 100000000ULL + g3;
}

/* A number's shape from the masks of digits and points of the 32 bytes at its digits: its
 * length (digits and point), whether it has a point, its digits and those after the point.
 * 0 where the vector reader leaves it to number_at: no digit or more than 19, two points,
 * or 32 bytes of them (longer?). */
static inline int plain_number(uint32_t digits, uint32_t dots, int *len, int *point, int *n,
                               int *frac) {
    uint32_t body = digits | dots;
    if (body == 0xFFFFFFFFu) return 0;
    *len = __builtin_ctz(~body); /* digits and points before the first other byte */
    dots &= (1u << *len) - 1;
    *point = dots != 0;
    *n = *len - *point;
    if ((dots & (dots - 1)) != 0 || (unsigned)(*n - 1) > 18) return 0;
    *frac = *point ? *len - 1 - __builtin_ctz(dots) : 0;
    return 1;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_VECTOR_READER 1
#include <immintrin.h>
#define VECTOR_TARGET AVX2_BITS_TARGET

static inline int vector_reader_available(void) { return have_avx2_bits(); }

VECTOR_TARGET static inline __m256i load32(const unsigned char *p) {
    return _mm256_loadu_si256((const __m256i *)(const void *)p);
}

/* The bytes' constants, read from memory as they are used: filled in by numbers_init, as
 * with set1 GCC builds them again for every number (two instructions each). */
static unsigned char NINES[32], ZEROS[32], POINTS[32];

static void vector_init(void) {
    memset(NINES, 9, sizeof NINES);
    memset(ZEROS, '0', sizeof ZEROS);
    memset(POINTS, '.', sizeof POINTS);
}

VECTOR_TARGET static ALWAYS_INLINE const unsigned char *number_vector(const unsigned char *p,
                                                                      const unsigned char *end,
                                                                      double *f, int64_t *i,
                                                                      int *is_int,
                                                                      int *overflow) {
    /* The bytes are loaded at p, not after the sign: the load then waits for nothing, and
     * the sign only shifts the masks. This path, from a number's position to its end and
     * the next number's position, is what each number waits for. */
    int negative = *p == '-';
    int sign = negative | (*p == '+');
    const unsigned char *s = p + sign;
    const __m256i v = load32(p);
    const __m256i zero_char = load32(ZEROS);
    const __m256i d = _mm256_sub_epi8(v, zero_char);
    const __m256i is_digit = _mm256_cmpeq_epi8(_mm256_min_epu8(d, load32(NINES)), d);
    uint32_t digits = (uint32_t)_mm256_movemask_epi8(is_digit) >> sign;
    uint32_t dots = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, load32(POINTS))) >> sign;
    int len, point, n, frac;
    if (!plain_number(digits, dots, &len, &point, &n, &frac)) {
        return number_at(p, end, f, i, is_int, overflow);
    }
    /* Right-aligned: byte k of the frame is stop[k - 32]; the bytes before the point's
     * position come one byte earlier instead, which squeezes the point out. */
    const unsigned char *stop = s + len;
    const __m256i index = _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                           16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
                                           29, 30, 31);
    const __m256i before_point = _mm256_set1_epi8((char)(point ? 32 - frac : 0));
    const __m256i frame = _mm256_blendv_epi8(load32(stop - 32), load32(stop - 33),
                                             _mm256_cmpgt_epi8(before_point, index));
    const __m256i keep = _mm256_cmpgt_epi8(index, _mm256_set1_epi8((char)(31 - n)));
    const __m256i values = _mm256_and_si256(_mm256_sub_epi8(frame, zero_char), keep);
    /* Pairs, fours, eights: bytes 0-7, 8-15, 16-23 and 24-31 as four 32-bit numbers. */
    __m256i x = _mm256_maddubs_epi16(values, _mm256_set1_epi16(0x010A));
    x = _mm256_madd_epi16(x, _mm256_set1_epi32(0x00010064));
    x = _mm256_packus_epi32(x, x);
    x = _mm256_madd_epi16(x, _mm256_set1_epi32(0x00012710));
    uint64_t upper = (uint64_t)_mm_cvtsi128_si64(_mm256_castsi256_si128(x));
    uint64_t lower = (uint64_t)_mm_cvtsi128_si64(_mm256_extracti128_si256(x, 1));
    uint64_t w = from_groups(upper >> 32, lower & 0xFFFFFFFFu, lower >> 32);
    return finish_number(p, stop, end, w, -frac, point, 0, negative, f, i, is_int, overflow);
}

#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_VECTOR_READER 1
#include <arm_neon.h>
#define VECTOR_TARGET

static inline int vector_reader_available(void) { return 1; }

static void vector_init(void) {}

/* Bit k: whether byte k of a, b, c, d (64 bytes, each 0 or 0xFF) is set (as simdjson). */
static inline uint64_t mask64(uint8x16_t a, uint8x16_t b, uint8x16_t c, uint8x16_t d) {
    static const uint8_t weights[16] = {1, 2, 4, 8, 16, 32, 64, 128,
                                        1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t bit = vld1q_u8(weights);
    uint8x16_t x = vpaddq_u8(vandq_u8(a, bit), vandq_u8(b, bit));
    uint8x16_t y = vpaddq_u8(vandq_u8(c, bit), vandq_u8(d, bit));
    x = vpaddq_u8(x, y);
    x = vpaddq_u8(x, x);
    return vgetq_lane_u64(vreinterpretq_u64_u8(x), 0);
}

/* Sixteen digits (most significant first) as two eight-digit numbers. */
static inline uint64x2_t eights(uint8x16_t v) {
    uint8x16_t even = vuzp1q_u8(v, v), odd = vuzp2q_u8(v, v);
    uint16x8_t pairs = vmlal_u8(vmovl_u8(vget_low_u8(odd)), vget_low_u8(even), vdup_n_u8(10));
    uint16x8_t even2 = vuzp1q_u16(pairs, pairs), odd2 = vuzp2q_u16(pairs, pairs);
    uint32x4_t fours =
        vmlal_u16(vmovl_u16(vget_low_u16(odd2)), vget_low_u16(even2), vdup_n_u16(100));
    uint32x4_t even4 = vuzp1q_u32(fours, fours), odd4 = vuzp2q_u32(fours, fours);
    return vmlal_u32(vmovl_u32(vget_low_u32(odd4)), vget_low_u32(even4), vdup_n_u32(10000));
}

static ALWAYS_INLINE const unsigned char *number_vector(const unsigned char *p,
                                                        const unsigned char *end, double *f,
                                                        int64_t *i, int *is_int,
                                                        int *overflow) {
    int negative = *p == '-';
    int sign = negative | (*p == '+');
    const unsigned char *s = p + sign;
    const uint8x16_t zero_char = vdupq_n_u8('0'), nine = vdupq_n_u8(9), dot = vdupq_n_u8('.');
    const uint8x16_t a = vld1q_u8(p), b = vld1q_u8(p + 16); /* at p: as the AVX2 reader */
    uint64_t masks = mask64(vcleq_u8(vsubq_u8(a, zero_char), nine),
                            vcleq_u8(vsubq_u8(b, zero_char), nine), vceqq_u8(a, dot),
                            vceqq_u8(b, dot));
    uint32_t digits = (uint32_t)masks >> sign, dots = (uint32_t)(masks >> 32) >> sign;
    int len, point, n, frac;
    if (!plain_number(digits, dots, &len, &point, &n, &frac)) {
        return number_at(p, end, f, i, is_int, overflow);
    }
    /* As the AVX2 reader's frame, in two halves: bytes 0-15 and 16-31. */
    const unsigned char *stop = s + len;
    static const uint8_t first[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    const uint8x16_t index0 = vld1q_u8(first), index1 = vaddq_u8(index0, vdupq_n_u8(16));
    const uint8x16_t before_point = vdupq_n_u8((uint8_t)(point ? 32 - frac : 0));
    const uint8x16_t from = vdupq_n_u8((uint8_t)(32 - n));
    uint8x16_t half0 = vbslq_u8(vcltq_u8(index0, before_point), vld1q_u8(stop - 33),
                                vld1q_u8(stop - 32));
    uint8x16_t half1 = vbslq_u8(vcltq_u8(index1, before_point), vld1q_u8(stop - 17),
                                vld1q_u8(stop - 16));
    half0 = vandq_u8(vsubq_u8(half0, zero_char), vcgeq_u8(index0, from));
    half1 = vandq_u8(vsubq_u8(half1, zero_char), vcgeq_u8(index1, from));
    uint64x2_t upper = eights(half0), lower = eights(half1);
    uint64_t w = from_groups(vgetq_lane_u64(upper, 1), vgetq_lane_u64(lower, 0),
                             vgetq_lane_u64(lower, 1));
    return finish_number(p, stop, end, w, -frac, point, 0, negative, f, i, is_int, overflow);
}
#endif

/* The tables, once, before any number is read. */
static void numbers_init(void) {
    const char *seps = " \t\n\r,\v\f";
    for (const char *c = seps; *c; c++) BYTE_CLASS[(unsigned char)*c] = SEPARATOR;
    BYTE_CLASS['#'] = COMMENT;
#ifdef HAVE_VECTOR_READER
    vector_init();
#endif
}

#endif
