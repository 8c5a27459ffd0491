"""The vector number readers of mlxrun/native/numbers.h against the portable one, in a C
program of their own (readers.c): natively (AVX2 on x86-64, NEON on an arm64 Mac) and, where
a cross compiler and qemu are installed (make test installs them on Debian), the arm64 NEON
reader under emulation, as there is no arm64 machine here. 300,000 tokens each, from a
fixed seed; the Python tests compare the readers through the extension as well."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

HERE = Path(__file__).parent
NATIVE = HERE.parent.parent / "mlxrun" / "native"
TOKENS, SEED = "300000", "20261201"


def build(compiler: str, out: Path, *flags: str) -> None:
    command = [compiler, "-O2", "-Wall", "-Werror", *flags, f"-I{NATIVE}"]
    subprocess.run([*command, "-o", str(out), str(HERE / "readers.c"), "-lm"], check=True)


def test_the_native_vector_reader(tmp_path: Path) -> None:
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler})")
    build(compiler, tmp_path / "readers")
    run = subprocess.run(
        [tmp_path / "readers", TOKENS, SEED], capture_output=True, text=True, timeout=120
    )
    if run.stdout == "none\n":
        pytest.skip("no vector reader on this CPU")
    assert run.returncode == 0 and run.stdout.startswith(f"ok {TOKENS} "), run.stdout


def test_the_arm64_neon_reader_under_qemu(tmp_path: Path) -> None:
    compiler, qemu = shutil.which("aarch64-linux-gnu-gcc"), shutil.which("qemu-aarch64")
    if compiler is None or qemu is None:
        pytest.skip(
            "no aarch64-linux-gnu-gcc and qemu-aarch64 (Debian: gcc-aarch64-linux-gnu, qemu-user)"
        )
    build(compiler, tmp_path / "readers", "-static")
    run = subprocess.run(
        [qemu, tmp_path / "readers", TOKENS, SEED], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0 and run.stdout == f"ok {TOKENS} neon\n", run.stdout
