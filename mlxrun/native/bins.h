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
