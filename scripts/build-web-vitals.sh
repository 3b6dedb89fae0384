#!/usr/bin/env bash
# Re-create probes/webvitals/web-vitals.iife.js from probes/webvitals/package-lock.json and
# check that the committed copy is byte-identical (exit 1 when it is not).
#
#   bash scripts/build-web-vitals.sh           # check: npm ci, compare, compare bundle.json
#   bash scripts/build-web-vitals.sh --write   # after changing the pinned version: copy the
#                                              # file, its LICENSE and bundle.json into place
#
# The "bundle" is web-vitals' own dist/web-vitals.iife.js (already a self-contained IIFE
# defining `webVitals`), copied out of node_modules: pip installs and `make demo` need no npm.
# npm runs in a temporary directory (no node_modules in the checkout) with --ignore-scripts.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$root/probes/webvitals"
source_file="dist/web-vitals.iife.js"
mode="${1:-check}"
case "$mode" in check|--check) mode=check ;; --write) mode=write ;;
  *) echo "usage: $0 [--check|--write]" >&2; exit 2 ;; esac

command -v npm >/dev/null 2>&1 || { echo "npm not found (Debian: apt-get install npm)" >&2; exit 3; }

work="$(mktemp -d "${TMPDIR:-/tmp}/readygate-web-vitals.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cp "$dir/package.json" "$dir/package-lock.json" "$work/"
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)

pkg="$work/node_modules/web-vitals"
version="$(node -p 'require(process.argv[1]).version' "$pkg/package.json")"
built="$pkg/$source_file"
sha="$(sha256sum "$built" | cut -d' ' -f1)"
manifest="$(printf '{\n  "package": "web-vitals",\n  "version": "%s",\n  "source": "%s",\n  "sha256": "%s"\n}\n' \
  "$version" "$source_file" "$sha")"

if [ "$mode" = write ]; then
  cp "$built" "$dir/web-vitals.iife.js"
  cp "$pkg/LICENSE" "$dir/LICENSE"
  printf '%s\n' "$manifest" >"$dir/bundle.json"
  echo "wrote web-vitals $version ($source_file, sha256 $sha) to probes/webvitals/"
  exit 0
fi

status=0
cmp -s "$built" "$dir/web-vitals.iife.js" || {
  echo "probes/webvitals/web-vitals.iife.js differs from web-vitals $version's $source_file" >&2
  status=1; }
[ "$(cat "$dir/bundle.json" 2>/dev/null)" = "$manifest" ] || {
  echo "probes/webvitals/bundle.json does not record web-vitals $version sha256 $sha" >&2
  status=1; }
[ "$status" -eq 0 ] && echo "probes/webvitals/web-vitals.iife.js is web-vitals $version's $source_file (sha256 $sha)"
exit "$status"
