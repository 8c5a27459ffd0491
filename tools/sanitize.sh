#!/usr/bin/env bash
# The C extension built with AddressSanitizer and UndefinedBehaviorSanitizer, then the
# in-process tests that drive it (parsers, CSV tokenizer, exact sums, arrays), on a copy of
# the tree so the normal build is untouched. Any report fails: halt_on_error.
# Usage: tools/sanitize.sh PYTHON
set -euo pipefail
python=$(realpath "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# setup.py alone: the build needs only its extension (the venv's setuptools may predate
# pyproject's metadata); pytest gets its markers from a config of its own.
cp -r "$here/mlxrun" "$here/tests" "$here/configs" "$here/setup.py" "$work/"
printf '[pytest]\nmarkers =\n    mpi: Open MPI 5\n    slow: slow\n' > "$work/pytest.ini"
find "$work/mlxrun" -name '*.so' -delete
cd "$work"
flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g"
CFLAGS="$flags" LDFLAGS="-fsanitize=address,undefined" "$python" setup.py -q build_ext --inplace 2>/dev/null
ls mlxrun/native/_native*.so >/dev/null  # the build is optional in setup.py: insist here
cc=$("$python" -c 'import sysconfig; print((sysconfig.get_config_var("CC") or "cc").split()[0])')
preload="$($cc -print-file-name=libasan.so) $($cc -print-file-name=libubsan.so)"
LD_PRELOAD="$preload" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$python" -m pytest -q -p no:cacheprovider \
    tests/data/test_textparse.py tests/reduce/test_algebra.py \
    tests/data/test_sources.py tests/data/test_delimited.py \
    -k "${SANITIZE_TESTS:-not job and not worker and not cli and not run_}"
