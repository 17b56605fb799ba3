#!/usr/bin/env bash
# Build the desktop bundle dist/jobdeck/ (one folder, one executable: GUI, CLI and worker) from this checkout.
#
# Sets the checkout up first (.venv with the bundle extra, see setup.sh), then runs PyInstaller on build.spec.
# Arguments go to PyInstaller unchanged (e.g. --distpath DIR --workpath DIR). docs/bundle.md explains the result.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

.venv/bin/pyinstaller build.spec --noconfirm --clean "$@"

if [[ -x dist/jobdeck/jobdeck ]]; then
    echo "build: $(du -sh dist/jobdeck | cut -f1) in dist/jobdeck/ — run dist/jobdeck/jobdeck (no arguments opens the window)" >&2
fi
