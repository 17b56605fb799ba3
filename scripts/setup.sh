#!/usr/bin/env bash
# Prepare this checkout for running and testing Jobdeck: Debian packages, .venv, editable install.
#
# Idempotent and cheap on repeat (stamp files in .venv), because run.sh and test.sh call it
# every time: a fresh clone or a changed pyproject.toml then just works.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=.venv
APT_STAMP="$VENV/.setup-apt-packages"
PIP_STAMP="$VENV/.setup-pip-install"

# Qt's xcb/EGL runtime libraries, a virtual X server for headless runs, and a real Secret
# Service (gnome-keyring on a D-Bus session bus) for the keyring tests.
APT_PACKAGES=(
    python3-venv python3-dev build-essential
    libegl1 libgl1 libfontconfig1 libglib2.0-0 libxkbcommon0 libdbus-1-3
    libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0
    libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0
    xvfb xauth gnome-keyring dbus dbus-x11 fonts-dejavu-core
)

say() { printf 'setup: %s\n' "$*" >&2; }

missing_apt_packages() {
    local package
    for package in "${APT_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
            printf '%s\n' "$package"
        fi
    done
}

install_apt_packages() {
    command -v apt-get >/dev/null 2>&1 || { say "no apt-get: install Qt's xcb libraries, xvfb, gnome-keyring and dbus yourself"; return 0; }
    local wanted="${APT_PACKAGES[*]}"
    if [[ -f "$APT_STAMP" && "$(cat "$APT_STAMP")" == "$wanted" ]]; then
        return 0
    fi
    if [[ "$(id -u)" -eq 0 ]]; then
        say "installing Debian packages: $wanted"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update
        apt-get install -y --no-install-recommends "${APT_PACKAGES[@]}"
        mkdir -p "$VENV"
        printf '%s' "$wanted" > "$APT_STAMP"
        return 0
    fi
    local missing
    missing="$(missing_apt_packages | paste -sd ' ')"
    if [[ -n "$missing" ]]; then
        say "not root, so not installing these missing Debian packages; please run:"
        say "    sudo apt-get install -y $missing"
        say "continuing without them (GUI or keyring tests may fail or skip)"
    fi
}

find_python() {
    local candidate
    for candidate in python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

create_venv() {
    if [[ -x "$VENV/bin/python" ]]; then
        return 0
    fi
    local python
    python="$(find_python)" || { say "error: Python >= 3.11 is required (tried python3.12, python3.11, python3)"; exit 1; }
    say "creating $VENV with $python"
    "$python" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
}

install_project() {
    if [[ -f "$PIP_STAMP" && ! pyproject.toml -nt "$PIP_STAMP" ]]; then
        return 0
    fi
    say "installing Jobdeck and its test/bundle extras into $VENV"
    "$VENV/bin/python" -m pip install --quiet -e '.[test,bundle]'
    touch "$PIP_STAMP"
}

install_apt_packages
create_venv
install_project
