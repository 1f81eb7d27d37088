#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed (the dashboard test drives it headless with playwright-core).
# Installs it with apt-get when missing: as root directly, else through sudo.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
echo "[chromium] /usr/bin/chromium missing: installing Debian's chromium package" >&2
run() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
run apt-get update -qq
DEBIAN_FRONTEND=noninteractive run apt-get install -y -qq chromium >/dev/null
[ -x /usr/bin/chromium ] || { echo "[chromium] install failed: apt-get install chromium" >&2; exit 1; }
