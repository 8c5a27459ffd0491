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
 * binned four at a time, with no store per value: the block's largest exponent E is
 * found first, and every value with an exponent e within WINDOW below it is shifted to
 * v = m << (e - base), base = E - WINDOW (v < 2**63), and added as v >> 32 and
 * v & 0xFFFFFFFF (signed) into two vectors of sums, which go into high[base] and
 * low[base] at the end of the block: the bins' total is the same exact number, and each
 * bin still takes less than 2**32 per value. The rare values further below (subnormals
 * among them; zeros add nothing), and blocks holding a NaN or an infinity, take the
 * portable loop.
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

__attribute__((target("avx2"))) static void binned_avx2(const unsigned char *v, Py_ssize_t n,
                                                        int64_t *hi, int64_t *lo,
                                                        Py_ssize_t *nan, Py_ssize_t *posinf,
                                                        Py_ssize_t *neginf) {
    const __m256i exp_bits = _mm256_set1_epi64x(0x7FF0000000000000LL);
    const __m256i exp_mask = _mm256_set1_epi64x(0x7FF);
    const __m256i frac_mask = _mm256_set1_epi64x((1LL << 52) - 1);
    const __m256i implicit = _mm256_set1_epi64x(1LL << 52);
    const __m256i low32 = _mm256_set1_epi64x(0xFFFFFFFFLL);
    const __m256i zero = _mm256_setzero_si256();
    Py_ssize_t k = 0;
    for (; k + BLOCK <= n; k += BLOCK) {
        const unsigned char *b = v + 8 * k;
        /* The largest exponent: a 32-bit max sees it in each value's upper half. Two blocks
         * on, a cache line per step is fetched. */
        __m256i top = zero;
        for (int j = 0; j < BLOCK; j += 8) {
            _mm_prefetch((const char *)(b + 8 * (j + PREFETCH)), _MM_HINT_T0);
            __m256i x = _mm256_loadu_si256((const __m256i *)(b + 8 * j));
            __m256i y = _mm256_loadu_si256((const __m256i *)(b + 8 * j + 32));
            top = _mm256_max_epu32(top, _mm256_and_si256(x, exp_bits));
            top = _mm256_max_epu32(top, _mm256_and_si256(y, exp_bits));
        }
        uint64_t lanes[4];
        _mm256_storeu_si256((__m256i *)lanes, top);
        uint64_t emax = 0;
        for (int j = 0; j < 4; j++) emax = lanes[j] > emax ? lanes[j] : emax;
        emax >>= 52;
        if (emax == 0x7FF) { /* a NaN or an infinity: counted by the portable loop */
            binned_portable(b, BLOCK, hi, lo, nan, posinf, neginf);
            continue;
        }
        /* In the window: exponents base..emax, never 0 (a subnormal is binned one by one,
         * as the rare values further below are). */
        int64_t base = (int64_t)emax - WINDOW < 1 ? 1 : (int64_t)emax - WINDOW;
        const __m256i vbase = _mm256_set1_epi64x(base);
        __m256i sum_hi = zero, sum_lo = zero, negatives = zero;
        for (int j = 0; j < BLOCK; j += 4) {
            __m256i x = _mm256_loadu_si256((const __m256i *)(b + 8 * j));
            __m256i e = _mm256_and_si256(_mm256_srli_epi64(x, 52), exp_mask);
            __m256i shift = _mm256_sub_epi64(e, vbase); /* < 0 below the window: sllv gives 0 */
            /* Zeros are below too, and add nothing: only the others need the bins. */
            __m256i nothing = _mm256_cmpeq_epi64(_mm256_slli_epi64(x, 1), zero);
            int out = _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_andnot_si256(nothing, shift)));
            if (out) {
                for (int l = 0; l < 4; l++)
                    if (out >> l & 1) {
                        uint64_t bits;
                        memcpy(&bits, b + 8 * (j + l), sizeof bits);
                        bin_double(bits, hi, lo);
                    }
            }
            __m256i m = _mm256_or_si256(_mm256_and_si256(x, frac_mask), implicit);
            __m256i val = _mm256_sllv_epi64(m, shift);
            /* Signed: sv = -val for a negative value, = hi32 * 2**32 + lo32 with lo32 unsigned
             * and hi32 signed; the logical shift gives hi32 + 2**32 where sv < 0, so the
             * negatives are counted and 2**32 taken off per negative at the end. */
            __m256i sign = _mm256_cmpgt_epi64(zero, x);
            __m256i sv = _mm256_sub_epi64(_mm256_xor_si256(val, sign), sign);
            negatives = _mm256_add_epi64(negatives, _mm256_srli_epi64(sv, 63));
            sum_lo = _mm256_add_epi64(sum_lo, _mm256_and_si256(sv, low32));
            sum_hi = _mm256_add_epi64(sum_hi, _mm256_srli_epi64(sv, 32));
        }
        int64_t h4[4], l4[4], n4[4];
        _mm256_storeu_si256((__m256i *)h4, sum_hi);
        _mm256_storeu_si256((__m256i *)l4, sum_lo);
        _mm256_storeu_si256((__m256i *)n4, negatives);
        int64_t nneg = n4[0] + n4[1] + n4[2] + n4[3];
        hi[base] += h4[0] + h4[1] + h4[2] + h4[3] - (nneg << 32);
        lo[base] += l4[0] + l4[1] + l4[2] + l4[3];
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
        PyBuffer_Release(&values);
        PyBuffer_Release(&high);
        PyBuffer_Release(&low);
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
    PyBuffer_Release(&values);
    PyBuffer_Release(&high);
    PyBuffer_Release(&low);
    return Py_BuildValue("(nnn)", nan, posinf, neginf);
}
