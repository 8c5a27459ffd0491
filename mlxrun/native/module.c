/* mlxrun's optional C extension: the text parser (textparse.c), the CSV column reader (csvparse.c) and
 * the exact-sum kernel (exactsum.c) as one module, so that Python imports one shared object, once. */
#include "native.h"

static PyMethodDef methods[] = {
    {"parse", native_parse, METH_VARARGS,
     "parse(src, floats, ints) -> (count, all_int, error_kind, error_offset)"},
    {"sum_text", native_sum_text, METH_VARARGS,
     "sum_text(src, high, low) -> (count, all_int, error_kind, error_offset, nan, posinf, "
     "neginf, total_high, total_low, rounding)"},
    {"csv_column", native_csv_column, METH_VARARGS,
     "csv_column(src, stop, final, delim, column, nulls, skip_missing, floats, ints, high, low) "
     "-> (next, done, count, missing, all_int, error_kind, error_offset, nan, posinf, neginf, "
     "total_high, total_low, rounding)"},
    {"count_byte", native_count_byte, METH_VARARGS, "count_byte(src, byte) -> count"},
    {"use_simd", native_use_simd, METH_VARARGS, "use_simd(on) -> whether it was on"},
    {"binned", native_binned, METH_VARARGS,
     "binned(values, high, low) -> (nan, posinf, neginf)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};

PyMODINIT_FUNC PyInit__native(void) {
    native_textparse_init();
    native_csvparse_init();
    return PyModule_Create(&module);
}
