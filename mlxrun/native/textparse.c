/* Fast, exact parsing of numbers in text: the hot loop of text reductions.
 *
 * parse(src, floats, ints) reads every number of `src` (bytes: numbers separated by
 * whitespace or commas, `#` comments to the end of the line) into the writable
 * buffers `floats` (float64) and `ints` (int64), which must hold len(src) / 2 + 1
 * values. It returns (count, all_int, error_kind, error_offset):
 *   error_kind 0: every token was a number; 1: the token at error_offset is not one;
 *   2: the integer at error_offset does not fit in int64.
 * Integer tokens are stored exactly in `ints` (and rounded in `floats`); all_int says
 * whether every token was an integer.
 *
 * The numbers themselves are read by numbers.h (its comment says how).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "bins.h"
#include "native.h"
#include "numbers.h"

const unsigned char *native_number(const unsigned char *p, const unsigned char *end, double *f,
                                   int64_t *i, int *is_int, int *overflow) {
    return number_at(p, end, f, i, is_int, overflow);
}

/* What a number reader's result means for the text loop: 1 with *pp past the number, or -1
 * with *pp at the bad token and *kind 1 (not a number) or 2 (an integer beyond int64). */
static ALWAYS_INLINE int taken(const unsigned char **pp, const unsigned char *next,
                               int overflow, int *kind) {
    if (next == NULL || overflow) {
        *kind = next == NULL ? 1 : 2;
        return -1;
    }
    *pp = next;
    return 1;
}

/* The next number of the text at *pp: as taken(), or 0 at the end of the text. */
static ALWAYS_INLINE int next_number(const unsigned char **pp, const unsigned char *end,
                                     double *f, int64_t *i, int *is_int, int *kind) {
    if (!skip_to_token(pp, end)) return 0;
    int overflow = 0;
    *f = 0;
    *i = 0;
    *is_int = 0;
    const unsigned char *next = number_at(*pp, end, f, i, is_int, &overflow);
    return taken(pp, next, overflow, kind);
}

#ifdef HAVE_VECTOR_READER
/* As next_number, reading with number_vector where the text around the token allows: from
 * `lo` (begin + VECTOR_BEFORE) to `hi` (end - VECTOR_AFTER). */
VECTOR_TARGET static ALWAYS_INLINE int next_number_vector(const unsigned char **pp,
                                                          const unsigned char *lo,
                                                          const unsigned char *hi,
                                                          const unsigned char *end, double *f,
                                                          int64_t *i, int *is_int, int *kind) {
    int overflow = 0;
    *f = 0;
    *i = 0;
    *is_int = 0;
    const unsigned char *p = *pp, *next;
    if (p >= lo && p + 1 < hi && is_sep(*p) && !ends_token(p[1])) {
        /* The common case, one separator and a number, without skip_to_token's loop. The
         * branches stay: predicted, they keep the loads off the path from one number's
         * position to the next (as a data dependency, they cost 7% on the floats). */
        *pp = p + 1;
        next = number_vector(*pp, end, f, i, is_int, &overflow);
    } else {
        if (!skip_to_token(pp, end)) return 0;
        p = *pp;
        next = p >= lo && p < hi ? number_vector(p, end, f, i, is_int, &overflow)
                                 : number_at(p, end, f, i, is_int, &overflow);
    }
    return taken(pp, next, overflow, kind);
}

/* The stretch of [begin, end) where number_vector may read: [*lo, *hi), maybe empty. */
static void vector_stretch(const unsigned char *begin, const unsigned char *end,
                           const unsigned char **lo, const unsigned char **hi) {
    *lo = begin + VECTOR_BEFORE;
    *hi = end - begin > VECTOR_BEFORE + VECTOR_AFTER ? end - VECTOR_AFTER : *lo;
}
#endif

/* parse()'s output: every number as a float, and as an int while all are ints. */
typedef struct {
    double *floats;
    int64_t *ints;
    Py_ssize_t count;
    int all_int;
} Parsed;

static ALWAYS_INLINE void store(Parsed *o, double f, int64_t i, int is_int) {
    o->floats[o->count] = f;
    if (o->all_int) o->ints[o->count] = i; /* once a float is seen the ints are not used */
    o->all_int &= is_int;
    o->count++;
}

/* Each loop returns next_number's last result: 0 at the end, -1 at a bad token. */
static int parse_portable(const unsigned char **pp, const unsigned char *end, Parsed *o,
                          int *kind) {
    Parsed t = *o; /* a copy: a store to t.ints[] could otherwise be t.count */
    const unsigned char *p = *pp;
    double f;
    int64_t i;
    int is_int, found;
    while ((found = next_number(&p, end, &f, &i, &is_int, kind)) > 0) {
        PREFETCH_AHEAD(p);
        store(&t, f, i, is_int);
    }
    *o = t;
    *pp = p;
    return found;
}

#ifdef HAVE_VECTOR_READER
VECTOR_TARGET static int parse_vector(const unsigned char **pp, const unsigned char *begin,
                                      const unsigned char *end, Parsed *o, int *kind) {
    Parsed t = *o; /* a copy: a store to t.ints[] could otherwise be t.count */
    const unsigned char *p = *pp;
    const unsigned char *lo, *hi;
    vector_stretch(begin, end, &lo, &hi);
    double f;
    int64_t i;
    int is_int, found;
    while ((found = next_number_vector(&p, lo, hi, end, &f, &i, &is_int, kind)) > 0) {
        PREFETCH_AHEAD(p);
        store(&t, f, i, is_int);
    }
    *o = t;
    *pp = p;
    return found;
}
#endif

/* sum_text()'s running sums: the bins and what they count, which the binning kernel
 * updates, and the totals the loop keeps to itself (in registers: nothing takes their
 * address but the inlined add()). */
typedef struct {
    int64_t *hi, *lo;
    Py_ssize_t nan, posinf, neginf;
    double batch[BIN_BATCH];
} Bins;

typedef struct {
    Py_ssize_t count;
    int all_int;
    __int128 isum;      /* the integers' total: two instructions an add, and no branch
                         * (19-digit integers overflow 64 bits every few adds) */
    long long rounding; /* |each term| < 2**11, at most 2**31 terms */
    int batched;        /* floats in the bins' batch */
} Totals;

static ALWAYS_INLINE void add(Bins *b, Totals *t, double f, int64_t i, int is_int) {
    t->all_int &= is_int;
    t->count++;
    if (is_int) {
        t->isum += i;
        if ((uint64_t)i + (1ULL << 53) > (1ULL << 54)) t->rounding += rounding_of(i); /* > 2**53 */
        return;
    }
    b->batch[t->batched++] = f;
    if (t->batched == BIN_BATCH) {
        native_bin_values(b->batch, t->batched, b->hi, b->lo, &b->nan, &b->posinf, &b->neginf);
        t->batched = 0;
    }
}

static int sum_portable(const unsigned char **pp, const unsigned char *end, Bins *b,
                        Totals *totals, int *kind) {
    Totals t = *totals;
    const unsigned char *p = *pp;
    double f;
    int64_t i;
    int is_int, found;
    while ((found = next_number(&p, end, &f, &i, &is_int, kind)) > 0) {
        PREFETCH_AHEAD(p);
        add(b, &t, f, i, is_int);
    }
    *totals = t;
    *pp = p;
    return found;
}

#ifdef HAVE_VECTOR_READER
VECTOR_TARGET static int sum_vector(const unsigned char **pp, const unsigned char *begin,
                                    const unsigned char *end, Bins *b, Totals *totals,
                                    int *kind) {
    Totals t = *totals;
    const unsigned char *p = *pp;
    const unsigned char *lo, *hi;
    vector_stretch(begin, end, &lo, &hi);
    double f;
    int64_t i;
    int is_int, found;
    while ((found = next_number_vector(&p, lo, hi, end, &f, &i, &is_int, kind)) > 0) {
        PREFETCH_AHEAD(p);
        add(b, &t, f, i, is_int);
    }
    *totals = t;
    *pp = p;
    return found;
}
#endif

/* One of the loops above on [*pp, end) of a buffer that starts at begin. */
typedef int (*Loop)(const unsigned char **pp, const unsigned char *begin,
                    const unsigned char *end, void *state, int *kind);

typedef struct {
    Bins *b;
    Totals *t;
} Sums;

static int sums_portable(const unsigned char **pp, const unsigned char *begin,
                         const unsigned char *end, void *state, int *kind) {
    (void)begin;
    return sum_portable(pp, end, ((Sums *)state)->b, ((Sums *)state)->t, kind);
}

static int parsed_portable(const unsigned char **pp, const unsigned char *begin,
                           const unsigned char *end, void *state, int *kind) {
    (void)begin;
    return parse_portable(pp, end, (Parsed *)state, kind);
}

#ifdef HAVE_VECTOR_READER
static int sums_vector(const unsigned char **pp, const unsigned char *begin,
                       const unsigned char *end, void *state, int *kind) {
    return sum_vector(pp, begin, end, ((Sums *)state)->b, ((Sums *)state)->t, kind);
}

static int parsed_vector(const unsigned char **pp, const unsigned char *begin,
                         const unsigned char *end, void *state, int *kind) {
    return parse_vector(pp, begin, end, (Parsed *)state, kind);
}

/* Which reader is faster depends on the CPU and the numbers: the vector one read floats
 * 1.4x faster than the portable one on both hosts measured, but 12-digit integers 1.3x
 * faster on one (AMD) and 1.5x slower on the other (an Intel Xeon). So a large buffer
 * starts with a stretch read by each, and the rest goes to the one that was faster; both
 * give the same answers. A stretch ends after a line, where no token or comment is cut. */
#define TRIAL_BYTES (128 * 1024)

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const unsigned char *after_a_line(const unsigned char *p, const unsigned char *end) {
    if (end - p <= TRIAL_BYTES) return end;
    const unsigned char *newline = memchr(p + TRIAL_BYTES, '\n', (size_t)(end - p - TRIAL_BYTES));
    return newline ? newline + 1 : end;
}

static int fastest(Loop vector, Loop portable, const unsigned char **pp,
                   const unsigned char *begin, const unsigned char *end, void *state, int *kind) {
    const unsigned char *start = *pp;
    if (end - start < 8 * TRIAL_BYTES) return vector(pp, begin, end, state, kind);
    const unsigned char *mid = after_a_line(start, end);
    double t0 = now_seconds();
    int found = vector(pp, begin, mid, state, kind);
    if (found < 0 || mid == end) return found;
    const unsigned char *stop = after_a_line(mid, end);
    double t1 = now_seconds();
    found = portable(pp, begin, stop, state, kind);
    if (found < 0 || stop == end) return found;
    double t2 = now_seconds();
    /* seconds per byte, compared without a division */
    int vector_faster = (t1 - t0) * (double)(stop - mid) <= (t2 - t1) * (double)(mid - start);
    return (vector_faster ? vector : portable)(pp, begin, end, state, kind);
}
#endif

/* The numbers of [*pp, end): with the vector reader where it may (and is the faster). */
static int read_all(Loop vector, Loop portable, const unsigned char **pp,
                    const unsigned char *begin, const unsigned char *end, void *state,
                    int *kind) {
#ifdef HAVE_VECTOR_READER
    if (native_simd && vector_reader_available())
        return fastest(vector, portable, pp, begin, end, state, kind);
#else
    (void)vector;
#endif
    return portable(pp, begin, end, state, kind);
}

#ifdef HAVE_VECTOR_READER
#define SUMS_VECTOR sums_vector
#define PARSED_VECTOR parsed_vector
#else
#define SUMS_VECTOR NULL
#define PARSED_VECTOR NULL
#endif

PyObject *native_parse(PyObject *self, PyObject *args) {
    Py_buffer src, floats, ints;
    if (!PyArg_ParseTuple(args, "y*w*w*", &src, &floats, &ints)) return NULL;
    Py_ssize_t capacity = src.len / 2 + 1;
    if (floats.len < capacity * 8 || ints.len < capacity * 8) {
        release_buffers(&src, &floats, &ints);
        PyErr_SetString(PyExc_ValueError, "output buffers must hold len(src) // 2 + 1 values");
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)src.buf, *begin = p, *end = p + src.len;
    Parsed out = {(double *)floats.buf, (int64_t *)ints.buf, 0, 1};
    int kind = 0, found;
    Py_ssize_t where = 0;
    Py_BEGIN_ALLOW_THREADS
    found = read_all(PARSED_VECTOR, parsed_portable, &p, begin, end, &out, &kind);
    if (found < 0) where = p - begin;
    Py_END_ALLOW_THREADS
    release_buffers(&src, &floats, &ints);
    return Py_BuildValue("(nini)", out.count, out.all_int, kind, where);
}

/* sum_text(src, high, low): the numbers of src summed without storing them, for jobs
 * that only need sums and counts. Floats go into the bins; integers add exactly into a
 * 128-bit total. A chunk with any float is all floats (as parse() hands it on), where an
 * integer beyond 2**53 counts as the float it rounds to: `rounding` totals those
 * differences, so the chunk's float sum is bins + total + rounding, still exact.
 * Returns (count, all_int, error_kind, error_offset, nan, posinf, neginf, total_high,
 * total_low, rounding); on an error the caller parses the chunk again to name the token. */
PyObject *native_sum_text(PyObject *self, PyObject *args) {
    Py_buffer src, high, low;
    if (!PyArg_ParseTuple(args, "y*w*w*", &src, &high, &low)) return NULL;
    if (high.len < BINS * 8 || low.len < BINS * 8 || src.len > INT32_MAX) {
        release_buffers(&src, &high, &low);
        PyErr_SetString(PyExc_ValueError, "sum_text(src < 2 GiB, int64[2048], int64[2048])");
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)src.buf, *begin = p, *end = p + src.len;
    Bins b = {(int64_t *)high.buf, (int64_t *)low.buf, 0, 0, 0, {0}};
    Totals t = {0, 1, 0, 0, 0};
    int kind = 0, found;
    Py_ssize_t where = 0;
    Py_BEGIN_ALLOW_THREADS
    Sums sums = {&b, &t};
    found = read_all(SUMS_VECTOR, sums_portable, &p, begin, end, &sums, &kind);
    native_bin_values(b.batch, t.batched, b.hi, b.lo, &b.nan, &b.posinf, &b.neginf);
    if (found < 0) where = p - begin;
    Py_END_ALLOW_THREADS
    release_buffers(&src, &high, &low);
    long long isum_high = (long long)(t.isum >> 64);
    unsigned long long isum_low = (unsigned long long)t.isum;
    return Py_BuildValue("(niinnnnLKL)", t.count, t.all_int, kind, where, b.nan, b.posinf,
                         b.neginf, isum_high, isum_low, t.rounding);
}

void native_textparse_init(void) { numbers_init(); }
