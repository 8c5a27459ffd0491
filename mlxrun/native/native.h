/* The functions of mlxrun's one C extension, `mlxrun.native._native` (module.c binds them). */
#ifndef MLXRUN_NATIVE_H
#define MLXRUN_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* The three buffers an entry point took from its arguments, given back. */
static inline void release_buffers(Py_buffer *a, Py_buffer *b, Py_buffer *c) {
    PyBuffer_Release(a);
    PyBuffer_Release(b);
    PyBuffer_Release(c);
}

/* textparse.c: numbers in text, parsed exactly. */
void native_textparse_init(void);
PyObject *native_parse(PyObject *self, PyObject *args);
PyObject *native_sum_text(PyObject *self, PyObject *args);
/* One number in [p, end): its end, or NULL if not a number (textparse.c's grammar). */
const unsigned char *native_number(const unsigned char *p, const unsigned char *end, double *f,
                                   int64_t *i, int *is_int, int *overflow);

/* csvparse.c: one column of a CSV/TSV file, tokenized and parsed exactly. */
PyObject *native_csv_column(PyObject *self, PyObject *args);
PyObject *native_count_byte(PyObject *self, PyObject *args);
/* MLXRUN_NO_SIMD=1 at import, or use_simd(False), clears native_simd: the portable field
 * scanner (and no one-window record reader), and the portable exact-sum loop (exactsum.c). */
extern int native_simd;
void native_csvparse_init(void);
PyObject *native_use_simd(PyObject *self, PyObject *args);

/* exactsum.c: float64 values added exactly into exponent bins. */
PyObject *native_binned(PyObject *self, PyObject *args);
/* n float64 values (any alignment) into the bins, counting NaNs and infinities; the
 * parsers gather parsed floats in a batch of BIN_BATCH for it. */
void native_bin_values(const void *values, Py_ssize_t n, int64_t *hi, int64_t *lo,
                       Py_ssize_t *nan, Py_ssize_t *posinf, Py_ssize_t *neginf);
#define BIN_BATCH 256

/* The parsers ask for the bytes 1 KB ahead of each number they read. The hardware's
 * prefetcher alone left a mapped file parsed 20-25% slower than the same bytes in cache:
 * each number waits on the one before, so a miss is not hidden behind other work. */
#define PREFETCH_AHEAD(p) __builtin_prefetch((const char *)(p) + 1024)

#endif
