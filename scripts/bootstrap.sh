#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian/Ubuntu machine; safe to run from anywhere, any number of times.
#
#   1. Debian packages the ODBC client stacks need (unixODBC driver manager, FreeTDS ODBC driver,
#      Kerberos GSSAPI library for Microsoft ODBC Driver 18, venv support), and those of the system
#      tests (PostgreSQL, Chromium, Redis) -- only when missing.
#   2. A virtualenv at <repo>/.venv made with this machine's python3 (>= 3.10).
#   3. pip install -e '.[test]' -- skipped when pyproject.toml and the interpreter are unchanged
#      since the last successful install (stamp file .venv/.bootstrap-stamp).
#
# Environment: PYTHON=/path/to/python3 picks another interpreter for a new venv;
#              BOOTSTRAP_FORCE=1 reruns the pip step even when the stamp matches.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT="$(pwd)"
VENV="$REPO_ROOT/.venv"
STAMP="$VENV/.bootstrap-stamp"
PYTHON="${PYTHON:-python3}"

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { printf 'bootstrap: ERROR: %s\n' "$*" >&2; exit 1; }

# --- 1. Debian packages -------------------------------------------------------------------------
pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    # libgssapi-krb5-2: a load-time dependency of libmsodbcsql-18 (usually present already).
    # postgresql: the system tests' throwaway metadata database (initdb/postgres, no service used).
    # chromium: the system tests' headless browser (Playwright drives /usr/bin/chromium).
    # redis-server: the distributed system tests' Celery broker (started by the tests, no service used).
    for pkg in unixodbc tdsodbc libgssapi-krb5-2 postgresql chromium redis-server; do
        pkg_installed "$pkg" || missing+=("$pkg")
    done
    # Debian's own python3 ships venv/ensurepip in a separate package.
    if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        missing+=("python3-venv")
    fi
else
    say "not a Debian-like system (no dpkg-query); install unixODBC and the FreeTDS ODBC driver yourself"
fi

if ((${#missing[@]})); then
    if ! command -v apt-get >/dev/null 2>&1; then
        die "missing packages ${missing[*]} and no apt-get to install them"
    fi
    if [[ $(id -u) -eq 0 ]]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        die "missing packages ${missing[*]}: run as root or install sudo"
    fi
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq >/dev/null
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- 2. virtualenv ------------------------------------------------------------------------------
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (need Python >= 3.10)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "$("$PYTHON" -V 2>&1) is too old: need Python >= 3.10"

venv_ok() {
    [[ -x "$VENV/bin/python" ]] \
        && "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1
}

if ! venv_ok; then
    if [[ -e "$VENV" ]]; then
        say "existing .venv is broken; recreating it"
        rm -rf "$VENV"
    fi
    say "creating .venv with $("$PYTHON" -V 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi

# --- 3. pip install -e '.[test]' ---------------------------------------------------------------
want_stamp="$(
    {
        cat pyproject.toml
        "$VENV/bin/python" -VV
        echo "$VENV"
    } | sha256sum | cut -d' ' -f1
)"
have_stamp="$(cat "$STAMP" 2>/dev/null || true)"

if [[ "$want_stamp" != "$have_stamp" || "${BOOTSTRAP_FORCE:-0}" == 1 ]]; then
    say "installing the project into .venv (pip install -e '.[test]'); this takes a while the first time"
    rm -f "$STAMP"
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
    # pip's and the build backend's chatter goes to a log that is shown only when pip fails.
    PIP_LOG="$VENV/bootstrap-pip.log"
    : >"$PIP_LOG"
    run_pip() {
        if ! "$VENV/bin/python" -m pip "$@" >>"$PIP_LOG" 2>&1; then
            printf 'bootstrap: ERROR: pip %s failed; last lines of %s:\n' "$*" "$PIP_LOG" >&2
            tail -n 40 "$PIP_LOG" >&2
            exit 1
        fi
    }
    run_pip install -q --upgrade pip
    run_pip install -q -e '.[test]'
    # setuptools leaves <package>.egg-info in the repo root; the editable install does not need it, and with
    # the repo root on sys.path (tests, DAG runs started from here) the project's plugin and provider would
    # be found twice, which keeps the OpenLineage listener from emitting task events.
    rm -rf "$REPO_ROOT"/*.egg-info
    echo "$want_stamp" >"$STAMP"
    say "done (pip output in .venv/bootstrap-pip.log)"
fi
