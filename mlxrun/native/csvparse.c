/* One column of an RFC 4180 CSV/TSV file, tokenized and parsed exactly in one pass.
 *
 * csv_column(src, stop, final, delim, column, nulls, skip_missing, floats, ints, high, low)
 * reads the records of `src` (bytes that begin at a record start) and the field number
 * `column` of each:
 * - fields are separated by `delim` and records end at LF or CRLF outside quotes; a field
 *   that starts with '"' is quoted: it ends at the next lone '"', `""` is one quote, and
 *   delimiters, CR and LF inside it are data. A quote inside an unquoted field, or text
 *   after a closing quote, is an error (error 3): the rank-start rule needs RFC quoting
 *   (see mlxrun/data/delimited.py). Blank lines are skipped.
 * - it stops before the first record that starts at or after `stop` (the next rank's),
 *   or before a record that `src` holds only in part (unless `final`: src ends the file).
 * - the field, trimmed of spaces and tabs, is missing if it equals one of `nulls`
 *   (bytes; a field with a `""` escape never does): counted if skip_missing, else
 *   error 5. Any other field must be a number in the grammar of textparse.c (error 1;
 *   error 2 for an integer beyond int64), parsed by the same exact parser.
 * - numbers go into `floats`/`ints` (each len(src) // 2 + 1 values, as parse() fills
 *   them) or, if those are None, are summed as sum_text sums them (into high/low bins
 *   and an exact 128-bit integer total).
 * Returns (next, done, count, missing, all_int, error_kind, error_offset, nan, posinf,
 * neginf, total_high, total_low, rounding): `next` is where reading must go on, `done`
 * says the shard ends there. error 4: a record has too few fields; 6: a quote is never
 * closed. error_offset is the start of the field (or record) at fault.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "bins.h"
#include "native.h"

#define MAX_NULLS 64

typedef struct {
    const unsigned char *ptr[MAX_NULLS];
    Py_ssize_t len[MAX_NULLS];
    int n;
} Nulls;

static int is_null(const Nulls *nulls, const unsigned char *a, const unsigned char *b) {
    Py_ssize_t n = b - a;
    for (int k = 0; k < nulls->n; k++) {
        if (nulls->len[k] == n && memcmp(nulls->ptr[k], a, (size_t)n) == 0) return 1;
    }
    return 0;
}

typedef struct {
    const unsigned char *raw;   /* where the field starts (its opening quote, if any) */
    const unsigned char *start; /* its content */
    const unsigned char *stop;
    int escaped; /* holds a "" */
} Field;

/* Finding the bytes that end a field. A field ends at the first delimiter, LF or quote;
 * `Scan` keeps a mask of those bytes in one 64-byte block, so that each field boundary
 * costs a shift and a count of trailing zeros instead of a table lookup and a branch per
 * byte (perf: the per-byte loop was 56% of a CSV rank's time, the number parser 25%).
 * The block masks come from SSE2 on x86-64, where it is part of the baseline (no check
 * needed), and elsewhere, or with MLXRUN_NO_SIMD=1 (native_use_simd), from a portable
 * eight-bytes-a-step loop. Both give the same mask, so the same answer. With SSE2 most
 * records are read whole from one window first (fast_record, below); MLXRUN_NO_SIMD=1
 * turns that off too, so the portable path is the reference the tests compare it with. */
int native_simd = 1; /* native.h */

void native_csvparse_init(void) {
    const char *off = getenv("MLXRUN_NO_SIMD");
    native_simd = !(off != NULL && strcmp(off, "1") == 0);
}

PyObject *native_use_simd(PyObject *self, PyObject *args) {
    int on;
    if (!PyArg_ParseTuple(args, "p", &on)) return NULL;
    int was = native_simd;
    native_simd = on;
    return PyBool_FromLong(was);
}

typedef struct {
    const unsigned char *block, *end; /* the block the masks describe; the buffer's end */
    uint64_t bits[2]; /* bit k: block[k] ends a field (ANY), or is a LF or quote (ENDS) */
    unsigned char delim;
} Scan;

/* Which mask: past the wanted field a record's end is all that matters, and looking for
 * LF and quotes alone skips its delimiters in one step. */
enum { ANY = 0, ENDS = 1 };

/* Bit 7 of each byte of x set where that byte is 0 (exact: no carry crosses bytes). */
static inline uint64_t zero_bytes(uint64_t x) {
    const uint64_t low7 = 0x7F7F7F7F7F7F7F7FULL;
    return ~(((x & low7) + low7) | x) & ~low7;
}

/* Gathers bit 7 of byte k into bit k (the products' bits never collide). */
static inline uint64_t gather8(uint64_t hits) { return ((hits >> 7) * 0x0102040810204080ULL) >> 56; }

/* The masks of 64 bytes at p, one bit per byte (bit k: p[k]). */
static inline void masks64(const unsigned char *p, unsigned char delim, uint64_t bits[2]) {
    uint64_t any = 0, ends = 0;
#if defined(__SSE2__)
    if (native_simd) {
        const __m128i d = _mm_set1_epi8((char)delim), n = _mm_set1_epi8('\n'),
                      q = _mm_set1_epi8('"');
        for (int k = 0; k < 64; k += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + k));
            __m128i e = _mm_or_si128(_mm_cmpeq_epi8(v, n), _mm_cmpeq_epi8(v, q));
            __m128i a = _mm_or_si128(e, _mm_cmpeq_epi8(v, d));
            ends |= (uint64_t)(uint32_t)_mm_movemask_epi8(e) << k;
            any |= (uint64_t)(uint32_t)_mm_movemask_epi8(a) << k;
        }
        bits[ANY] = any;
        bits[ENDS] = ends;
        return;
    }
#endif
    const uint64_t ones = 0x0101010101010101ULL;
    for (int k = 0; k < 64; k += 8) {
        uint64_t x;
        memcpy(&x, p + k, sizeof x);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        x = __builtin_bswap64(x); /* byte j of the number is p[k + j] */
#endif
        uint64_t e = zero_bytes(x ^ (ones * '\n')) | zero_bytes(x ^ (ones * '"'));
        ends |= gather8(e) << k;
        any |= gather8(e | zero_bytes(x ^ (ones * delim))) << k;
    }
    bits[ANY] = any;
    bits[ENDS] = ends;
}

/* next's slow part: the masks of the block at p (or the next one), out of line so that
 * the common case, a boundary in the current block, inlines to a few instructions. */
__attribute__((noinline)) static const unsigned char *next_block(Scan *s, const unsigned char *p,
                                                                 int which) {
    for (;;) {
        if (p >= s->end) return s->end;
        s->block = p;
        if (s->end - p >= 64) {
            masks64(p, s->delim, s->bits);
        } else { /* the buffer's last bytes: never read past its end */
            s->bits[ANY] = s->bits[ENDS] = 0;
            for (Py_ssize_t k = 0; k < s->end - p; k++) {
                unsigned char c = p[k];
                s->bits[ENDS] |= (uint64_t)(c == '\n' || c == '"') << k;
                s->bits[ANY] |= (uint64_t)(c == s->delim || c == '\n' || c == '"') << k;
            }
        }
        if (s->bits[which]) return p + __builtin_ctzll(s->bits[which]);
        if (s->end - p <= 64) return s->end;
        p += 64;
    }
}

/* The first byte at or after p in the mask `which`, or end. */
static inline const unsigned char *next(Scan *s, const unsigned char *p, int which) {
    size_t off = (size_t)(p - s->block); /* huge if p is before the block */
    if (off < 64) {
        uint64_t m = s->bits[which] >> off;
        if (m) return p + __builtin_ctzll(m);
        return s->end - s->block > 64 ? next_block(s, s->block + 64, which) : s->end;
    }
    return next_block(s, p, which);
}

/* The first byte at or after p that ends a field (a delimiter, LF or quote), or end. */
static inline const unsigned char *next_special(Scan *s, const unsigned char *p) {
    return next(s, p, ANY);
}

/* The first quote at or after p, or end. */
static inline const unsigned char *next_quote(Scan *s, const unsigned char *p) {
    for (;;) {
        p = next(s, p, ENDS);
        if (p == s->end || *p == '"') return p;
        p++;
    }
}

enum { RECORD = 0, PARTIAL = -1 }; /* else an error kind */

/* Reads the record at p into *out (the wanted field) and moves *pp past it. Returns
 * RECORD, PARTIAL (src ends inside it and is not final), or an error kind with *pp at
 * the fault. *found says whether the record has the field. */
static int record(Scan *s, const unsigned char **pp, int final, Py_ssize_t column, Field *out,
                  int *found) {
    const unsigned char *end = s->end;
    unsigned char delim = s->delim;
    const unsigned char *p = *pp;
    *found = 0;
    for (Py_ssize_t field = 0;; field++) {
        Field f = {p, p, p, 0};
        if (p < end && *p == '"') {
            p++;
            f.start = p;
            for (;;) {
                const unsigned char *q = next_quote(s, p);
                if (q == end) {
                    if (!final) return PARTIAL;
                    *pp = f.raw;
                    return 6;
                }
                if (q + 1 == end && !final) return PARTIAL; /* "" split by the chunk */
                if (q + 1 < end && q[1] == '"') {
                    f.escaped = 1;
                    p = q + 2;
                    continue;
                }
                f.stop = q;
                p = q + 1;
                break;
            }
            if (p < end && *p == '\r') {
                if (p + 1 == end && !final) return PARTIAL;
                if (p + 1 < end && p[1] == '\n') p++;
            }
            if (p < end && *p != delim && *p != '\n') {
                *pp = f.raw;
                return 3;
            }
        } else {
            p = next_special(s, p);
            if (p < end && *p == '"') {
                *pp = f.raw;
                return 3;
            }
            if (p == end && !final) return PARTIAL;
            f.stop = p;
            if (f.stop > f.start && f.stop[-1] == '\r' && (p == end || *p == '\n')) f.stop--;
        }
        if (field == column) {
            *out = f;
            *found = 1;
        }
        if (p == end) break;     /* the last record of the file, without a newline */
        if (*p == '\n') {
            p++;
            break;
        }
        p++; /* the delimiter */
        if (*found) {
            /* Past the wanted field, only the record's end matters: on to its LF, without
             * the fields' bookkeeping. A quote hands its field back to the loop above,
             * which checks it as RFC 4180 wants (quoted: to its closing quote; else a
             * stray quote, error 3). */
            const unsigned char *q = next(s, p, ENDS);
            if (q == end) {
                if (!final) return PARTIAL;
                p = q;
                break;
            }
            if (*q == '\n') {
                p = q + 1;
                break;
            }
            while (q > p && q[-1] != delim) q--; /* the start of the quote's field */
            p = q;
        }
    }
    *pp = p;
    return RECORD;
}

#if defined(__SSE2__)
/* A record read from one 64-byte window, without a branch per field: the common case.
 * Bit k of each mask stands for p[k]. The quote state comes from the running parity of
 * the quotes (a prefix XOR: p is a record start, outside quotes), so delimiters and LFs
 * inside quoted fields drop out. It serves only a record that ends (at a LF outside
 * quotes) within the window and whose quotes are all plain RFC 4180: each opening quote
 * starts a field, each closing one is followed by a delimiter or the LF (so no `""`, no
 * stray quote, no CR after a quote). Anything else, and a record without the wanted
 * field, returns 0 for record() to read and judge. */
static inline uint64_t prefix_xor(uint64_t x) {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    return x;
}

static int fast_record(const unsigned char **pp, const unsigned char *end, unsigned char delim,
                       Py_ssize_t column, Field *out) {
    const unsigned char *p = *pp;
    if (end - p < 64) return 0;
    const __m128i dv = _mm_set1_epi8((char)delim), nv = _mm_set1_epi8('\n'),
                  qv = _mm_set1_epi8('"');
    uint64_t q = 0, d = 0, n = 0;
    for (int k = 0; k < 64; k += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + k));
        q |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, qv)) << k;
        d |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, dv)) << k;
        n |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, nv)) << k;
    }
    uint64_t inside = prefix_xor(q);
    uint64_t lf = n & ~inside;
    if (lf == 0) return 0; /* the record goes on past the window */
    int last = __builtin_ctzll(lf);
    uint64_t record = (1ULL << last) - 1; /* the record's bytes, before its LF */
    uint64_t delims = d & ~inside & record;
    uint64_t opening = q & inside & record, closing = q & ~inside & record;
    uint64_t starts = (delims << 1) | 1;                /* where fields start */
    uint64_t followed = (delims | (1ULL << last)) >> 1; /* bytes before a delimiter or the LF */
    if ((opening & ~starts) | (closing & ~followed)) return 0;
    uint64_t x = delims;
    int start = 0;
    for (Py_ssize_t c = 0; c < column; c++) {
        if (x == 0) return 0; /* too few fields: record() says so */
        start = __builtin_ctzll(x) + 1;
        x &= x - 1;
    }
    int stop = x ? __builtin_ctzll(x) : last;
    Field f = {p + start, p + start, p + stop, 0};
    if (opening >> start & 1) { /* quoted: its closing quote is the field's last byte */
        f.start++;
        f.stop--;
    } else if (stop == last && stop > start && p[stop - 1] == '\r') {
        f.stop--; /* CRLF */
    }
    *out = f;
    *pp = p + last + 1;
    return 1;
}
#endif

/* The wanted field's number into *f or *i: 0, or an error kind. */
static int field_number(const Field *fl, const Nulls *nulls, int *missing, double *f,
                        int64_t *i, int *is_int) {
    const unsigned char *a = fl->start, *b = fl->stop;
    while (a < b && (*a == ' ' || *a == '\t')) a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
    *missing = !fl->escaped && is_null(nulls, a, b);
    if (*missing) return 0;
    if (fl->escaped || a == b) return 1;
    int overflow = 0;
    *f = 0;
    *i = 0;
    *is_int = 0;
    const unsigned char *next = native_number(a, b, f, i, is_int, &overflow);
    if (next != b) return 1;
    return overflow ? 2 : 0;
}

PyObject *native_csv_column(PyObject *self, PyObject *args) {
    Py_buffer src;
    Py_ssize_t stop, column;
    int final, skip_missing;
    char delim_char;
    PyObject *null_list, *floats_obj, *ints_obj;
    Py_buffer high, low;
    if (!PyArg_ParseTuple(args, "y*npcnO!pOOw*w*", &src, &stop, &final, &delim_char, &column,
                          &PyTuple_Type, &null_list, &skip_missing, &floats_obj, &ints_obj,
                          &high, &low))
        return NULL;
    Py_buffer floats = {0}, ints = {0};
    int store = floats_obj != Py_None;
    const char *problem = NULL;
    Nulls nulls = {{0}, {0}, 0};
    if (high.len < BINS * 8 || low.len < BINS * 8 || src.len > INT32_MAX)
        problem = "bins must be int64[2048] and src < 2 GiB";
    if (problem == NULL && PyTuple_GET_SIZE(null_list) > MAX_NULLS) problem = "at most 64 null values";
    for (Py_ssize_t k = 0; problem == NULL && k < PyTuple_GET_SIZE(null_list); k++) {
        PyObject *item = PyTuple_GET_ITEM(null_list, k);
        if (!PyBytes_Check(item)) {
            problem = "null values must be bytes";
            break;
        }
        nulls.ptr[k] = (const unsigned char *)PyBytes_AS_STRING(item);
        nulls.len[k] = PyBytes_GET_SIZE(item);
        nulls.n++;
    }
    if (problem == NULL && store) {
        if (PyObject_GetBuffer(floats_obj, &floats, PyBUF_WRITABLE) < 0) {
            PyErr_Clear();
            problem = "floats must be a writable buffer";
        } else if (PyObject_GetBuffer(ints_obj, &ints, PyBUF_WRITABLE) < 0) {
            PyErr_Clear();
            PyBuffer_Release(&floats);
            problem = "ints must be a writable buffer";
        } else if (floats.len < (src.len / 2 + 1) * 8 || ints.len < (src.len / 2 + 1) * 8) {
            PyBuffer_Release(&floats);
            PyBuffer_Release(&ints);
            problem = "output buffers must hold len(src) // 2 + 1 values";
        }
    }
    if (problem != NULL) {
        PyBuffer_Release(&src);
        PyBuffer_Release(&high);
        PyBuffer_Release(&low);
        PyErr_SetString(PyExc_ValueError, problem);
        return NULL;
    }

    const unsigned char *begin = (const unsigned char *)src.buf, *end = begin + src.len;
    Scan scan = {end, end, {0, 0}, (unsigned char)delim_char}; /* no block yet: read at first use */
    const unsigned char *p = begin;
    double *fout = store ? (double *)floats.buf : NULL;
    int64_t *iout = store ? (int64_t *)ints.buf : NULL;
    int64_t *hi = (int64_t *)high.buf, *lo = (int64_t *)low.buf;
    Py_ssize_t count = 0, missing = 0, nan = 0, posinf = 0, neginf = 0, where = 0;
    int all_int = 1, kind = 0, done = 0;
    __int128 isum = 0;
    long long rounding = 0;
    double batch[BIN_BATCH]; /* floats binned BIN_BATCH at a time (exactsum.c) */
    int batched = 0;
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        /* Every record here starts after a LF outside quotes: where a rank may start. */
        if (p - begin >= stop || (p == end && final)) {
            done = 1;
            break;
        }
        if (p == end) break;
        if (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n')) { /* blank line */
            p += *p == '\n' ? 1 : 2;
            continue;
        }
        if (*p == '\r' && p + 1 == end && !final) break;
        const unsigned char *rec = p;
        PREFETCH_AHEAD(p);
        Field fl = {NULL, NULL, NULL, 0};
        int found = 0, r = RECORD;
#if defined(__SSE2__)
        if (native_simd) found = fast_record(&p, end, scan.delim, column, &fl);
#endif
        if (!found) r = record(&scan, &p, final, column, &fl, &found);
        if (r == PARTIAL) {
            p = rec;
            break;
        }
        if (r != RECORD) {
            kind = r;
            where = p - begin;
            break;
        }
        if (!found) {
            kind = 4;
            where = rec - begin;
            break;
        }
        double f;
        int64_t i;
        int is_int, is_missing;
        int bad = field_number(&fl, &nulls, &is_missing, &f, &i, &is_int);
        if (bad || (is_missing && !skip_missing)) {
            kind = bad ? bad : 5;
            where = fl.raw - begin;
            p = rec;
            break;
        }
        if (is_missing) {
            missing++;
            continue;
        }
        all_int &= is_int;
        if (store) {
            fout[count] = f;
            if (all_int) iout[count] = i;
        } else if (is_int) {
            isum += i;
            if (i > (1LL << 53) || i < -(1LL << 53)) rounding += rounding_of(i);
        } else {
            batch[batched++] = f;
            if (batched == BIN_BATCH) {
                native_bin_values(batch, batched, hi, lo, &nan, &posinf, &neginf);
                batched = 0;
            }
        }
        count++;
    }
    native_bin_values(batch, batched, hi, lo, &nan, &posinf, &neginf);
    Py_END_ALLOW_THREADS
    Py_ssize_t next = p - begin;
    if (store) {
        PyBuffer_Release(&floats);
        PyBuffer_Release(&ints);
    }
    PyBuffer_Release(&src);
    PyBuffer_Release(&high);
    PyBuffer_Release(&low);
    return Py_BuildValue("(ninniinnnnLKL)", next, done, count, missing, all_int, kind, where, nan,
                         posinf, neginf, (long long)(isum >> 64), (unsigned long long)isum,
                         rounding);
}

/* count_byte(src, byte): how many times `byte` occurs in src, eight bytes a step. A rank
 * that starts mid-file counts the quotes before it (mlxrun/data/delimited.py). Matches are
 * added per byte lane and the lanes summed every 255 words: a popcount per word would be
 * a library call without -mpopcnt, several times slower. */
static inline uint64_t lanes_sum(uint64_t lanes) { /* 8 byte lanes of at most 255 each */
    uint64_t pairs = (lanes & 0x00FF00FF00FF00FFULL) + ((lanes >> 8) & 0x00FF00FF00FF00FFULL);
    return (pairs * 0x0001000100010001ULL) >> 48;
}

PyObject *native_count_byte(PyObject *self, PyObject *args) {
    Py_buffer src;
    char byte_char;
    if (!PyArg_ParseTuple(args, "y*c", &src, &byte_char)) return NULL;
    unsigned char byte = (unsigned char)byte_char;
    const unsigned char *p = (const unsigned char *)src.buf, *end = p + src.len;
    Py_ssize_t n = 0;
    Py_BEGIN_ALLOW_THREADS
    const uint64_t low7 = 0x7F7F7F7F7F7F7F7FULL, pattern = 0x0101010101010101ULL * byte;
    while (end - p >= 8) {
        uint64_t lanes = 0;
        for (int k = 0; k < 255 && end - p >= 8; k++, p += 8) {
            uint64_t v;
            memcpy(&v, p, sizeof v);
            v ^= pattern; /* a byte equal to `byte` is now 0 */
            lanes += (~(((v & low7) + low7) | v) & ~low7) >> 7; /* 1 per zero byte */
        }
        n += (Py_ssize_t)lanes_sum(lanes);
    }
    for (; p < end; p++) n += *p == byte;
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&src);
    return PyLong_FromSsize_t(n);
}
