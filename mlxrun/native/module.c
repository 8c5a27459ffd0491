/* mlxrun's optional C extension: the text parser (textparse.c) and the exact-sum kernel
 * (exactsum.c) as one module, so that Python imports one shared object, once. */
#include "native.h"

static PyMethodDef methods[] = {
    {"parse", native_parse, METH_VARARGS,
     "parse(src, floats, ints) -> (count, all_int, error_kind, error_offset)"},
    {"sum_text", native_sum_text, METH_VARARGS,
     "sum_text(src, high, low) -> (count, all_int, error_kind, error_offset, nan, posinf, "
     "neginf, total_high, total_low, rounding)"},
    {"binned", native_binned, METH_VARARGS,
     "binned(values, high, low) -> (nan, posinf, neginf)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};

PyMODINIT_FUNC PyInit__native(void) {
    native_textparse_init();
    return PyModule_Create(&module);
}
