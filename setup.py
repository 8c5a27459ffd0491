"""Builds the optional C extension; without a compiler mlxrun falls back to numpy."""

from setuptools import Extension, setup

NATIVE = "mlxrun/native"

setup(
    ext_modules=[
        Extension(
            "mlxrun.native._native",
            [f"{NATIVE}/module.c", f"{NATIVE}/textparse.c", f"{NATIVE}/csvparse.c", f"{NATIVE}/exactsum.c"],
            depends=[f"{NATIVE}/{h}" for h in ("native.h", "bins.h", "cpu.h", "pow5.h", "numbers.h")],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
