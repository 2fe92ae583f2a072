# Sourced by scripts/demo and scripts/test: make ./.venv (Python >= 3.11) with StationWatch
# installed (agent, HQ and test tools), re-installing only when pyproject.toml changed.
set -euo pipefail
PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null; then
    echo "error: $PY not found; install Python 3.11 (Debian 12: apt-get install python3)" >&2
    exit 1
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: StationWatch needs Python >= 3.11; $PY is $("$PY" -V 2>&1)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    if ! "$PY" -c 'import ensurepip' 2>/dev/null; then
        # Debian ships venv's pip bootstrap separately.
        echo "installing python3-venv (Debian) ..." >&2
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
    "$PY" -m venv .venv
fi
stamp=.venv/.stationwatch-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "installing StationWatch and its dependencies into .venv (log: .venv/install.log) ..." >&2
    if ! { .venv/bin/python -m pip install --disable-pip-version-check -U pip &&
           .venv/bin/python -m pip install --disable-pip-version-check -e '.[hq,dev]'; } \
           > .venv/install.log 2>&1; then
        tail -n 30 .venv/install.log >&2
        echo "error: installing into .venv failed; see .venv/install.log" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi
