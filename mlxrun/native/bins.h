/* Adding a float64 exactly into integer bins by exponent: shared by the C kernels.
 * value = m * 2**(max(e, 1) - 1075), m < 2**53; high[e] += m >> 32, low[e] += m & 0xFFFFFFFF
 * (signed). No bin overflows int64 within 2**31 values. bin_double takes finite values
 * only; bin_or_count takes any and counts NaNs and infinities instead. */
#include <stdint.h>

#define BINS 2048

static inline void bin_double(uint64_t bits, int64_t *high, int64_t *low) {
    unsigned e = (unsigned)((bits >> 52) & 0x7FF);
    uint64_t m = bits & ((1ULL << 52) - 1);
    if (e) m |= 1ULL << 52;
    /* Negate without a branch: signs of real data are a coin toss for the predictor. */
    int64_t sign = -(int64_t)(bits >> 63);
    high[e] += ((int64_t)(m >> 32) ^ sign) - sign;
    low[e] += ((int64_t)(m & 0xFFFFFFFFULL) ^ sign) - sign;
}

/* float(i) - i, exactly, for an integer i whose float is binned in its place: at most 2**10
 * either way. Without converting the double to 128 bits (a library call), which cost 19-digit
 * integers a quarter of their time: only float(2**63 - 1) = 2**63 does not fit in int64. */
static inline long long rounding_of(int64_t i) {
    double f = (double)i;
    if (f >= 0x1p63) return (long long)(0x8000000000000000ULL - (uint64_t)i);
    return (long long)f - i;
}

/* Adds a float64 exactly into the bins, or counts it if it is a NaN or an infinity.
 * (Py_ssize_t: the including file has included Python.h.) */
static inline void bin_or_count(uint64_t bits, int64_t *high, int64_t *low, Py_ssize_t *nan,
                                Py_ssize_t *posinf, Py_ssize_t *neginf) {
    if (((bits >> 52) & 0x7FF) != 0x7FF) {
        bin_double(bits, high, low);
    } else if (bits & ((1ULL << 52) - 1)) {
        (*nan)++;
    } else if (bits >> 63) {
        (*neginf)++;
    } else {
        (*posinf)++;
    }
}
