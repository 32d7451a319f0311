#!/usr/bin/env bash
# Install what the browser test (tests/e2e/test_browser.py) needs, and nothing else:
#   - Debian's chromium (+ chromium-driver, for selenium users) from apt, skipped when
#     /usr/bin/chromium already exists;
#   - the playwright Python package into the control-plane virtualenv (its wheel ships the
#     driver). We never run `playwright install`: the test launches /usr/bin/chromium itself,
#     so nothing is downloaded at run time.
# Idempotent and quiet; safe to call from `make` on every run.
set -euo pipefail

VENV="${1:-.venv}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

say() { echo "install-browser: $*"; }

if [ ! -x "$CHROMIUM" ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        say "no $CHROMIUM and no apt-get here; install Chromium yourself (the browser test will skip)"
        exit 0
    fi
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
            say "not root and no sudo: cannot install chromium (the browser test will skip)"
            exit 0
        fi
    fi
    say "installing Debian chromium (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi

if ! "$VENV/bin/python" -c "import playwright" >/dev/null 2>&1; then
    say "installing playwright into $VENV (no browser download)"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$VENV/bin/pip" install --quiet \
        --disable-pip-version-check "playwright>=1.40" 2>&1 \
        | grep -v "is ignored: it is neither a file nor a directory" || true
    "$VENV/bin/python" -c "import playwright"
fi
