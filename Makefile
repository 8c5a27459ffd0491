# Every target sets itself up: a fresh machine needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-deps plot-deps lint check bench clean

# What the tests need from the system: an ssh client and server (the loopback hosts of
# tests/hosts), Debian's Open MPI 4 (the check must recognise it as the wrong mpirun),
# eu-stack (the stall watchdog reads the native stacks of ranks waiting in a collective)
# and, on x86-64, an arm64 cross compiler and qemu (tests/native runs the NEON reader).
SYSTEM_TOOLS := /usr/bin/ssh /usr/sbin/sshd /usr/bin/mpirun /usr/bin/eu-stack
SYSTEM_PACKAGES := openssh-client openssh-server openmpi-bin elfutils
ifeq ($(shell uname -m),x86_64)
SYSTEM_TOOLS += /usr/bin/aarch64-linux-gnu-gcc /usr/bin/qemu-aarch64
SYSTEM_PACKAGES += gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
endif

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV) || { apt-get update && apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,mpi]'
	@# Byte-code now: where PYTHONDONTWRITEBYTECODE is set, every rank would recompile.
	$(BIN)/python -m compileall -q mlxrun
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/mlxrun run configs/demo.toml

lint: install
	$(BIN)/ruff check mlxrun tests benchmarks tools
	$(BIN)/ruff format --check mlxrun tests benchmarks tools
	$(BIN)/mypy

test-deps:
	@for tool in $(SYSTEM_TOOLS); do test -x $$tool || missing=1; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; \
	elif [ -n "$$missing" ]; then \
		echo "note: $(SYSTEM_TOOLS) not all present; the tests that need them are skipped"; \
	fi

# The PNG test of `mlxrun bench --plot` needs the plot extra; `make install` stays without it.
plot-deps: install
	@$(BIN)/python -c 'import matplotlib' 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[plot]'

test: plot-deps lint test-deps
	$(BIN)/python -m pytest
	@# The pure paths, as a machine without a C compiler runs them: the same answers.
	MLXRUN_NO_NATIVE=1 $(BIN)/python -m pytest -q tests/data tests/reduce/test_algebra.py
	@# The C extension under AddressSanitizer and UBSan, where gcc or clang has them (Linux:
	@# the runtimes are preloaded with LD_PRELOAD, which macOS does not honour).
	@if [ "$$(uname)" = Linux ] && printf 'int main(void){return 0;}' | $${CC:-cc} -fsanitize=address,undefined -x c -o /dev/null - 2>/dev/null; then \
		tools/sanitize.sh $(BIN)/python; else echo "note: no sanitizer runtime here: the sanitized C test is skipped"; fi

check: install
	$(BIN)/mlxrun check

# The peers mlxrun is measured against: installed for benchmarks only. torch is pinned:
# the CPU build of that version is the one this machine has on local disk.
bench: install
	$(BIN)/python -m pip install --quiet pandas pyarrow polars matplotlib mpi4py torch==2.13.0
	command -v datamash >/dev/null || { apt-get update -qq && apt-get install -y -qq datamash >/dev/null; }
	test -e /usr/include/fast_float/fast_float.h || ! command -v apt-get >/dev/null || { apt-get update -qq && apt-get install -y -qq libfast-float-dev >/dev/null; }
	$(BIN)/python benchmarks/launcher.py
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/kernels.py
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/startup.py --np 1
	$(BIN)/python benchmarks/ringstart.py
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python benchmarks/collectives.py
	$(BIN)/python benchmarks/tables.py
	$(BIN)/python benchmarks/output.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
