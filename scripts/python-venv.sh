# Sourced by scripts/python-interop.sh and scripts/bench-peer.sh: sets VENV to a Python 3.12
# venv holding the peer, atdata 0.7.0b1 from PyPI (and redis), made on first use and reused
# while its folder survives (PYATDATA_VENV chooses the folder; PYTHON the interpreter).
# The first Python 3.12 that runs (a pyenv shim on PATH may name a version it does not select).
if [ -z "${PYTHON:-}" ]; then
  for candidate in python3.12 "$HOME/.pyenv/versions/3.12.1/bin/python" "$HOME"/.pyenv/versions/3.12*/bin/python; do
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      PYTHON="$candidate"
      break
    fi
  done
fi
: "${PYTHON:?no Python 3.12 found (pyenv install 3.12, or set PYTHON)}"
VENV="${PYATDATA_VENV:-$(dirname "$(mktemp -u)")/test-services/pyatdata-venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import atdata' 2>/dev/null; then
  echo "[python] installing atdata 0.7.0b1 into $VENV (takes a few minutes)" >&2
  "$PYTHON" -m venv "$VENV"
  # Pinned to the versions resolved once (resolving atdata's pre-release from scratch takes
  # pip minutes of backtracking).
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    -c scripts/python-interop-constraints.txt "atdata==0.7.0b1" redis
fi

