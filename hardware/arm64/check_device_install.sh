#!/bin/sh
# Prove the device install on arm64 (Debian bookworm under qemu-user-static); see hardware/README.md.
# Runs check_device_install.py with the Python that has pip and the host's forcecast (the venv when active).
# Usage: sudo -E hardware/arm64/check_device_install.sh [--json] [--strict-lean] [--cache DIR] [--dry-run] ...
set -eu
here=$(dirname "$0")
exec "${PYTHON:-python3}" "$here/check_device_install.py" "$@"
