#!/usr/bin/env bash
# Install the OS packages readygate runs for real: Prometheus, Alertmanager, Chromium,
# and python3-venv where the interpreter lacks it. Exit 3 with the exact command when
# they are missing and this script cannot install them (not root, no sudo, no apt-get).
set -euo pipefail

missing=()
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
# READYGATE_CHROMIUM names another browser (GitHub's Ubuntu runners have no Debian chromium,
# only a snap stub: there Playwright's own is installed instead; docs/ci.md)
[ -x /usr/bin/chromium ] || [ -n "${READYGATE_CHROMIUM:-}" ] || missing+=(chromium)
# only for `make bench` (bench.probe_throughput compares readygate with it)
command -v prometheus-blackbox-exporter >/dev/null 2>&1 || missing+=(prometheus-blackbox-exporter)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)

[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; fi
fi
if ! command -v apt-get >/dev/null 2>&1 || { [ "$(id -u)" -ne 0 ] && [ -z "$sudo" ]; }; then
  echo "readygate needs these OS packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 3
fi

echo "installing OS packages: ${missing[*]} (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}" >&2
