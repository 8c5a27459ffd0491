"""Builds the optional C kernels; without a compiler mlxrun falls back to numpy."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            f"mlxrun.{name}",
            [f"src/mlxrun/{name}.c"],
            depends=["src/mlxrun/_pow5.h", "src/mlxrun/_bins.h"],
            extra_compile_args=["-O2"],
            optional=True,
        )
        for name in ("_textparse", "_exactsum")
    ]
)
