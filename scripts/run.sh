#!/usr/bin/env bash
# Launch the Jobdeck desktop app from this checkout, setting it up first if needed.
#
# Arguments go to the app unchanged. Without any display (e.g. over SSH or in a container)
# the app runs under a virtual X server, so it still starts instead of failing in Qt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"

APP="$ROOT/.venv/bin/jobdeck"
if [[ -z "${DISPLAY:-}" && -z "${WAYLAND_DISPLAY:-}" && -z "${QT_QPA_PLATFORM:-}" ]]; then
    if ! command -v xvfb-run >/dev/null 2>&1; then
        echo "run: no DISPLAY or WAYLAND_DISPLAY and no xvfb-run; install xvfb or set QT_QPA_PLATFORM" >&2
        exit 1
    fi
    echo "run: no DISPLAY or WAYLAND_DISPLAY: running Jobdeck under xvfb-run (a virtual, invisible X server)" >&2
    exec xvfb-run -a "$APP" "$@"
fi
exec "$APP" "$@"
