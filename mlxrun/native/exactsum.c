/* The inner loop of exact float summation, one pass in C.
 *
 * binned(values, high, low) adds every finite float64 of `values` into integer bins by
 * its biased exponent e (0..2046): value = m * 2**(max(e, 1) - 1075) with an integer
 * mantissa m < 2**53, added as high[e] += m >> 32 and low[e] += m & 0xFFFFFFFF (signed).
 * No bin can overflow int64 within 2**31 values. The caller folds the bins into one
 * exact integer. Returns (nan_count, posinf_count, neginf_count); NaN and infinities
 * are counted, not binned.
 *
 * With AVX2 (checked at run time; not with MLXRUN_NO_SIMD=1), blocks of 256 values are
 * binned four at a time, with no store per value. A first pass finds the block's largest
 * exponent E and its smallest non-zero value; every value with an exponent e within
 * WINDOW below E is shifted to v = m << (e - base), base = E - WINDOW (|v| < 2**63), and
 * the block's total goes into high[base] and low[base]: the bins' total is the same exact
 * number, and each bin still takes less than 2**32 per value. Where no value lies below
 * the window (most blocks of real data), no value needs a check; otherwise each four are
 * checked, and the values further below (subnormals among them; zeros add nothing) are
 * binned one by one. The v are summed in wrapping int64 lanes, and the block's float sum
 * supplies the carries (window_block). Blocks holding a NaN or an infinity, or values
 * of 2**1007 or more, take the portable loop.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "bins.h"
#include "cpu.h"
#include "native.h"

#define BLOCK 256
/* Values ahead that the first pass asks the cache for: without it, reading a mapped file
 * and binning it took turns (1.5 ns per value, against 0.84 with the values in cache). */
#define PREFETCH 512
#define WINDOW 10 /* (m < 2**53) << 10 < 2**63; (v >> 32) < 2**31 */

static void binned_portable(const unsigned char *v, Py_ssize_t n, int64_t *hi, int64_t *lo,
                            Py_ssize_t *nan, Py_ssize_t *posinf, Py_ssize_t *neginf) {
    for (Py_ssize_t k = 0; k < n; k++) {
        uint64_t bits;
        memcpy(&bits, v + 8 * k, sizeof bits);
        bin_or_count(bits, hi, lo, nan, posinf, neginf);
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX2_KERNEL 1
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))
#define TOP_EMAX 2029 /* up to it, a block's float sum cannot overflow: 256 values < 2**1007 */

/* e - base for four values: below the window (zeros too) it is negative, and sllv by it
 * gives 0. */
AVX2 static inline __m256i window_shift(__m256i x, __m256i vbase) {
    const __m256i abs_mask = _mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFLL);
    return _mm256_sub_epi64(_mm256_srli_epi64(_mm256_and_si256(x, abs_mask), 52), vbase);
}

/* m << shift, with x's sign. */
AVX2 static inline __m256i shifted(__m256i x, __m256i shift) {
    const __m256i frac_mask = _mm256_set1_epi64x((1LL << 52) - 1);
    const __m256i implicit = _mm256_set1_epi64x(1LL << 52);
    __m256i m = _mm256_or_si256(_mm256_and_si256(x, frac_mask), implicit);
    __m256i val = _mm256_sllv_epi64(m, shift);
    __m256i sign = _mm256_cmpgt_epi64(_mm256_setzero_si256(), x);
    return _mm256_sub_epi64(_mm256_xor_si256(val, sign), sign);
}

/* Bins one by one those of four values at b that lie below the window; zeros are below
 * too, and add nothing. */
AVX2 static inline void below_window(const unsigned char *b, __m256i x, __m256i shift,
                                     int64_t *hi, int64_t *lo) {
    __m256i nothing = _mm256_cmpeq_epi64(_mm256_slli_epi64(x, 1), _mm256_setzero_si256());
    int out = _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_andnot_si256(nothing, shift)));
    for (int l = 0; out && l < 4; l++)
        if (out >> l & 1) {
            uint64_t bits;
            memcpy(&bits, b + 8 * l, sizeof bits);
            bin_double(bits, hi, lo);
        }
}

/* One block, its window's values summed: each |v| < 2**63, in int64 lanes that may wrap,
 * which gives their exact total T mod 2**64. The block's float sum T' gives the rest:
 * T = a + 2**64 * k for the integer k nearest (T' - a) / 2**64. T' is within 2**24 of T
 * in these units (the float sum's error, with 256 terms of |v| < 2**63), plus what the
 * values below the window add to it and not to T: less than 2**52 each, 2**60 in all.
 * `checked` (a block with such values): each four are checked, and those below are binned
 * one by one. */
AVX2 static inline __attribute__((always_inline)) void window_block(const unsigned char *b,
                                                                    int64_t base, int64_t *hi,
                                                                    int64_t *lo, int checked) {
    const __m256i vbase = _mm256_set1_epi64x(base);
    const __m256i zero = _mm256_setzero_si256();
    /* Two of each sum: one chain of 64 float adds would make the block wait on their latency. */
    __m256i sum0 = zero, sum1 = zero;
    __m256d approx0 = _mm256_setzero_pd(), approx1 = _mm256_setzero_pd();
    for (int j = 0; j < BLOCK; j += 8) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(b + 8 * j));
        __m256i y = _mm256_loadu_si256((const __m256i *)(b + 8 * j + 32));
        __m256i xshift = window_shift(x, vbase), yshift = window_shift(y, vbase);
        if (checked) {
            below_window(b + 8 * j, x, xshift, hi, lo);
            below_window(b + 8 * j + 32, y, yshift, hi, lo);
        }
        sum0 = _mm256_add_epi64(sum0, shifted(x, xshift));
        sum1 = _mm256_add_epi64(sum1, shifted(y, yshift));
        approx0 = _mm256_add_pd(approx0, _mm256_castsi256_pd(x));
        approx1 = _mm256_add_pd(approx1, _mm256_castsi256_pd(y));
    }
    uint64_t s4[4];
    double f4[4];
    _mm256_storeu_si256((__m256i *)s4, _mm256_add_epi64(sum0, sum1));
    _mm256_storeu_pd(f4, _mm256_add_pd(approx0, approx1));
    int64_t a = (int64_t)(s4[0] + s4[1] + s4[2] + s4[3]);
    /* T' / 2**64 = (the float sum) * 2**(1075 - base - 64): a normal power of two, as
     * base <= TOP_EMAX - WINDOW. */
    uint64_t scale_bits = (uint64_t)(2034 - base) << 52;
    double scale;
    memcpy(&scale, &scale_bits, sizeof scale);
    double carries = ((f4[0] + f4[1]) + (f4[2] + f4[3])) * scale - (double)a * 0x1p-64;
    int64_t k = (int64_t)(carries + (carries < 0 ? -0.5 : 0.5)); /* |k| <= 2**7 */
    int64_t low = (int64_t)((uint64_t)a & 0xFFFFFFFFu);
    hi[base] += k * 4294967296LL + (a - low) / 4294967296LL;
    lo[base] += low;
}

/* Aligned to a cache line: the same code 16 bytes further on (another file's change moved
 * it) binned a mapped 1 GB in 0.146 s instead of 0.104, in cache as fast as before. */
AVX2 __attribute__((aligned(64))) static void binned_avx2(const unsigned char *v, Py_ssize_t n,
                                                         int64_t *hi, int64_t *lo,
                                                         Py_ssize_t *nan, Py_ssize_t *posinf,
                                                         Py_ssize_t *neginf) {
    const __m256i abs_mask = _mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFLL);
    const __m256i one = _mm256_set1_epi64x(1);
    Py_ssize_t k = 0;
    for (; k + BLOCK <= n; k += BLOCK) {
        const unsigned char *b = v + 8 * k;
        /* In each value's upper 32 bits, 32-bit max and min see the largest exponent and
         * the smallest of the non-zero values: |x| - 1 makes a zero the largest, and keeps
         * a subnormal below every normal. Two blocks on, a cache line per step is fetched. */
        __m256i top = _mm256_setzero_si256(), bottom = _mm256_set1_epi64x(-1);
        for (int j = 0; j < BLOCK; j += 8) {
            _mm_prefetch((const char *)(b + 8 * (j + PREFETCH)), _MM_HINT_T0);
            __m256i x = _mm256_loadu_si256((const __m256i *)(b + 8 * j));
            __m256i y = _mm256_loadu_si256((const __m256i *)(b + 8 * j + 32));
            x = _mm256_and_si256(x, abs_mask);
            y = _mm256_and_si256(y, abs_mask);
            top = _mm256_max_epu32(top, _mm256_max_epu32(x, y));
            bottom = _mm256_min_epu32(bottom, _mm256_sub_epi64(x, one));
            bottom = _mm256_min_epu32(bottom, _mm256_sub_epi64(y, one));
        }
        uint64_t t4[4], b4[4];
        _mm256_storeu_si256((__m256i *)t4, top);
        _mm256_storeu_si256((__m256i *)b4, bottom);
        uint64_t emax = 0, least = UINT64_MAX;
        for (int j = 0; j < 4; j++) {
            emax = t4[j] > emax ? t4[j] : emax;
            least = b4[j] < least ? b4[j] : least;
        }
        emax >>= 52;
        if (emax > TOP_EMAX) { /* a NaN or an infinity, or a float sum that could overflow */
            binned_portable(b, BLOCK, hi, lo, nan, posinf, neginf);
            continue;
        }
        /* In the window: exponents base..emax, never 0 (a subnormal is binned one by one,
         * as the rare values further below are). A value at exactly 2**(base - 1075) has
         * the same upper half as one just below: that block is checked. */
        int64_t base = (int64_t)emax - WINDOW < 1 ? 1 : (int64_t)emax - WINDOW;
        /* Two calls, so that each inlined loop is built for its case. */
        if ((least >> 32) >= (uint64_t)base << 20)
            window_block(b, base, hi, lo, 0);
        else
            window_block(b, base, hi, lo, 1);
    }
    binned_portable(v + 8 * k, n - k, hi, lo, nan, posinf, neginf);
}

#endif

void native_bin_values(const void *values, Py_ssize_t n, int64_t *hi, int64_t *lo,
                       Py_ssize_t *nan, Py_ssize_t *posinf, Py_ssize_t *neginf) {
    const unsigned char *v = (const unsigned char *)values;
#ifdef HAVE_AVX2_KERNEL
    if (native_simd && have_avx2()) {
        binned_avx2(v, n, hi, lo, nan, posinf, neginf);
        return;
    }
#endif
    binned_portable(v, n, hi, lo, nan, posinf, neginf);
}

PyObject *native_binned(PyObject *self, PyObject *args) {
    Py_buffer values, high, low;
    if (!PyArg_ParseTuple(args, "y*w*w*", &values, &high, &low)) return NULL;
    if (high.len < BINS * 8 || low.len < BINS * 8 || values.len % 8 != 0 ||
        values.len / 8 > INT32_MAX) {
        release_buffers(&values, &high, &low);
        PyErr_SetString(PyExc_ValueError,
                        "binned(values, high, low): float64 values (< 2**31), two int64[2048]");
        return NULL;
    }
    /* Loaded with memcpy: a buffer need not be 8-byte aligned (an .npz member is not). */
    const unsigned char *v = (const unsigned char *)values.buf;
    int64_t *hi = (int64_t *)high.buf, *lo = (int64_t *)low.buf;
    Py_ssize_t n = values.len / 8, nan = 0, posinf = 0, neginf = 0;
    Py_BEGIN_ALLOW_THREADS
    native_bin_values(v, n, hi, lo, &nan, &posinf, &neginf);
    Py_END_ALLOW_THREADS
    release_buffers(&values, &high, &low);
    return Py_BuildValue("(nnn)", nan, posinf, neginf);
}
