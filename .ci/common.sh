# Sourced by .ci/run and .ci/lock (bash, set -euo pipefail, cwd = repository root).

# The README's test command: the one line of README.md that installs torch==2.13.0 and ends
# with `python -m pytest`. CI runs that line itself, so the two cannot drift apart.
readme_test_command() {
    local lines
    lines=$(grep -E '^pip install torch==2\.13\.0 && .* && python -m pytest$' README.md || true)
    if [[ -z "$lines" || $(printf '%s\n' "$lines" | wc -l) -ne 1 ]]; then
        echo "ci: expected exactly one test command line in README.md, found:" >&2
        printf '%s\n' "${lines:-<none>}" >&2
        return 1
    fi
    if [[ "$lines" != *" -c constraints.txt "* ]]; then
        echo "ci: the README's test command does not install with -c constraints.txt" >&2
        return 1
    fi
    printf '%s\n' "$lines"
}

# The same command with the lock file taken out: the newest releases pyproject.toml allows.
unlocked_command() {
    local cmd=$1
    printf '%s\n' "${cmd/ -c constraints.txt / }"
}

# A brand-new virtual environment at $1, put first on PATH for the calling (sub)shell.
enter_new_venv() {
    python3 -m venv "$1"
    export VIRTUAL_ENV=$1
    export PATH="$1/bin:$PATH"
    hash -r
}

# The browser test (tests/test_app.py) drives Debian's chromium through Playwright: pip cannot
# install a browser (Playwright's own download does not work here), so CI installs the system
# package when it is missing. If that fails the test fails, naming the missing browser.
ensure_chromium() {
    command -v chromium >/dev/null && return 0
    echo "ci: installing chromium (apt-get) for the browser test"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
        echo "ci: WARNING: could not install chromium; tests/test_app.py's browser test will fail" >&2
    fi
    return 0
}
