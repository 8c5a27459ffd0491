/* The inner loop of exact float summation, one pass in C.
 *
 * binned(values, high, low) adds every finite float64 of `values` into integer bins by
 * its biased exponent e (0..2046): value = m * 2**(max(e, 1) - 1075) with an integer
 * mantissa m < 2**53, added as high[e] += m >> 32 and low[e] += m & 0xFFFFFFFF (signed).
 * No bin can overflow int64 within 2**31 values. The caller folds the bins into one
 * exact integer. Returns (nan_count, posinf_count, neginf_count); NaN and infinities
 * are counted, not binned.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "bins.h"
#include "native.h"

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
    for (Py_ssize_t k = 0; k < n; k++) {
        uint64_t bits;
        memcpy(&bits, v + 8 * k, sizeof bits);
        bin_or_count(bits, hi, lo, &nan, &posinf, &neginf);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&values);
    PyBuffer_Release(&high);
    PyBuffer_Release(&low);
    return Py_BuildValue("(nnn)", nan, posinf, neginf);
}
