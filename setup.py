"""Builds the optional C parser; without a compiler mlxrun falls back to numpy's parsing."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "mlxrun._textparse",
            ["mlxrun/_textparse.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
