/* The functions of mlxrun's one C extension, `mlxrun.native._native` (module.c binds them). */
#ifndef MLXRUN_NATIVE_H
#define MLXRUN_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* textparse.c: numbers in text, parsed exactly. */
void native_textparse_init(void);
PyObject *native_parse(PyObject *self, PyObject *args);
PyObject *native_sum_text(PyObject *self, PyObject *args);

/* exactsum.c: float64 values added exactly into exponent bins. */
PyObject *native_binned(PyObject *self, PyObject *args);

#endif
