# Sourced by scripts/run and scripts/test: makes .venv with a Python >= 3.12 and installs the project into it.
# Usage: bootstrap_venv [EXTRAS]   (e.g. "test"); sets PY to the venv's python.

find_python() {
    local candidate version
    # PATH first (a pyenv shim for a version that is not installed fails here and is skipped), then pyenv's versions.
    for candidate in python3 python3.12 python3.13 python \
        $(ls -d "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -V); do
        version=$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2]) if sys.version_info >= (3, 12) else sys.exit(1)' 2>/dev/null) || continue
        command -v "$candidate" 2>/dev/null || echo "$candidate"
        return 0
    done
    return 1
}

bootstrap_venv() {
    local extras=${1:-} root python stamp want have_hash="" have_extras="" wanted
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    cd "$root" || return 1
    if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
        if ! python=$(find_python); then
            echo "llmtap needs Python 3.12 or newer, and none was found on PATH or under pyenv." >&2
            echo "Install one, e.g.: 'pyenv install 3.12', or 'apt-get install python3.12 python3.12-venv', or from python.org." >&2
            return 1
        fi
        echo "llmtap: creating .venv with $python ($("$python" --version))"
        rm -rf .venv
        "$python" -m venv .venv || return 1
    fi
    PY="$root/.venv/bin/python"
    # The stamp holds pyproject.toml's hash and the extras installed with it. Install again only when pyproject.toml
    # changed or an extra is asked for that was not installed: an install with more extras serves a request for fewer
    # (pip leaves installed packages in place), so scripts/test then scripts/run then scripts/test install once. A new
    # install keeps the extras the last one had, so it does not flip between them either.
    stamp=.venv/.llmtap-installed
    read -r have_hash have_extras 2>/dev/null < "$stamp" || true
    wanted=$(printf '%s\n' ${have_extras//,/ } ${extras//,/ } | sort -u | paste -sd, -)
    want="$(sha256sum pyproject.toml | cut -c1-16) ${wanted}"
    extras=$wanted
    if [ "$have_hash $have_extras" != "$want" ]; then
        echo "llmtap: installing the project${extras:+ with [$extras]} into .venv"
        # pip's output goes to a log, shown only when the install fails
        if ! { "$PY" -m pip install --disable-pip-version-check --upgrade pip &&
               "$PY" -m pip install --disable-pip-version-check -e ".${extras:+[$extras]}"; } > .venv/install.log 2>&1; then
            tail -n 40 .venv/install.log >&2
            echo "llmtap: installing failed; the whole log is .venv/install.log" >&2
            return 1
        fi
        echo "$want" > "$stamp"
    fi
}
