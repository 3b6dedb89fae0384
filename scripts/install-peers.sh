#!/usr/bin/env bash
# Build the real peers the tests run against (Jaeger, VictoriaMetrics, VictoriaLogs,
# Alertmanager 0.35, Toxiproxy, the OpenTelemetry Collector) from their Go modules into
# peers/bin/.
#
# Each peer is a `tool` of a small Go module of ours (peers/<name>/go.mod, go.sum committed),
# one module per peer so their dependency graphs never meet (one shared module would let
# Go's minimal version selection lift Jaeger's OpenTelemetry modules for Alertmanager's sake).
# The Collector publishes no ready-made command module (otelcorecol is not one), so
# peers/otelcol holds a main package of ours that wires the collector's components.
# Idempotent: a peer whose binary was built from the same go.mod/go.sum and Go version is
# not rebuilt. Modules and build results are cached in the user's GOMODCACHE and GOCACHE.
#
#   scripts/install-peers.sh                  # all peers
#   scripts/install-peers.sh jaeger           # only these
#   PEERS_JOBS=2 scripts/install-peers.sh     # go build -p (default 1: leave a core free)
#
# Exit 0 when every asked-for peer is built; otherwise one line naming the peer and the
# reason, and exit 1 (3 when Go itself is missing).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
peers_dir="$root/peers"
bin_dir="$peers_dir/bin"
jobs="${PEERS_JOBS:-1}"

# name | module dir | package | binary | module whose version is printed (default: the
# package's own module)
table=(
  "jaeger|jaeger|github.com/jaegertracing/jaeger/cmd/jaeger|jaeger"
  "victoriametrics|victoriametrics|github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics|victoria-metrics"
  "victorialogs|victorialogs|github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs|victoria-logs"
  "alertmanager|alertmanager|github.com/prometheus/alertmanager/cmd/alertmanager|alertmanager"
  "toxiproxy|toxiproxy|github.com/Shopify/toxiproxy/v2/cmd/server|toxiproxy-server"
  "otelcol|otelcol|readygate.local/peers/otelcol|otelcol|go.opentelemetry.io/collector/otelcol"
)

go_bin="$(command -v go || true)"
[ -n "$go_bin" ] || { [ -x /usr/local/go/bin/go ] && go_bin=/usr/local/go/bin/go; }
if [ -z "$go_bin" ]; then
  echo "install-peers: Go is not installed (need Go >= 1.26 on PATH or at /usr/local/go/bin/go)" >&2
  exit 3
fi
# Never fetch another toolchain: the versions in peers/*/go.mod build with Go 1.26.
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
go_version="$("$go_bin" env GOVERSION)"

wanted=("$@")
known=" $(for row in "${table[@]}"; do printf '%s ' "${row%%|*}"; done)"
for name in "${wanted[@]}"; do
  case "$known" in *" $name "*) ;; *)
    echo "install-peers: unknown peer '$name' (one of:$known)" >&2; exit 1;; esac
done

mkdir -p "$bin_dir"
# One build at a time per checkout, even when two `make test` start together.
exec 9>"$bin_dir/.lock"
flock 9

# The module version the binary was built from, read from its embedded build info: the
# programs' own --version flags print nothing without their release ldflags.
version_of() { "$go_bin" version -m "$1" | awk -v p="$2" '($1 == "mod" || $1 == "dep") && index(p, $2) == 1 {print $2 " " $3; exit}'; }

# A writable copy of the Alertmanager module (as go.mod pins it) with placeholder UI assets.
alertmanager_source() {
  local mod="$1" dir version src
  dir="$(cd "$mod" && "$go_bin" mod download -json github.com/prometheus/alertmanager |
         sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')" || return 1
  [ -d "$dir" ] || { echo "go mod download gave no directory"; return 1; }
  version="$(basename "$dir")"
  src="$bin_dir/.src/$version"
  if [ ! -f "$src/.ready" ]; then
    rm -rf "$src" && mkdir -p "$bin_dir/.src" && cp -r "$dir" "$src" && chmod -R u+w "$src" || return 1
    for ui in elm mantine; do
      mkdir -p "$src/ui/app/dist/$ui" && cp "$mod/ui-placeholder.html" "$src/ui/app/dist/$ui/index.html" || return 1
    done
    touch "$src/.ready"
  fi
  echo "$src"
}

for row in "${table[@]}"; do
  IFS='|' read -r name dir pkg binary versioned <<<"$row"
  versioned="${versioned:-$pkg}"
  if [ ${#wanted[@]} -gt 0 ] && [[ " ${wanted[*]} " != *" $name "* ]]; then
    continue
  fi
  mod="$peers_dir/$dir"
  out="$bin_dir/$binary"
  stamp="$bin_dir/.$binary.stamp"
  # our own Go sources (peers/otelcol/main.go) count too; the other peers have none
  want="$({ cat "$mod/go.mod" "$mod/go.sum"
            find "$mod" -maxdepth 1 -name '*.go' -print0 | sort -z | xargs -0 -r cat; } |
          sha256sum | cut -c1-16) $go_version"
  if [ -x "$out" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "peer $name: up to date: $(version_of "$out" "$versioned")"
    continue
  fi
  log="$bin_dir/.$binary.build.log"
  start=$(date +%s)
  echo "peer $name: building $pkg (cold builds take minutes)" >&2
  modfile=()
  if [ "$name" = alertmanager ]; then
    # Alertmanager's module leaves out its built web UI (ui/app/dist, which it embeds), so it
    # does not build from the proxy as is: build a copy with a one-page placeholder UI (the
    # API, all readygate reads, is untouched). Overlays may not touch GOMODCACHE, hence a copy.
    if ! src="$(alertmanager_source "$mod" 2>"$log")"; then
      echo "install-peers: $name: cannot prepare its source: $(tail -n1 "$log") (log: $log)" >&2
      exit 1
    fi
    cp "$mod/go.mod" "$bin_dir/.alertmanager.go.mod"
    cp "$mod/go.sum" "$bin_dir/.alertmanager.go.sum"
    echo "replace github.com/prometheus/alertmanager => $src" >>"$bin_dir/.alertmanager.go.mod"
    modfile=(-modfile "$bin_dir/.alertmanager.go.mod")
  fi
  if ! (cd "$mod" && "$go_bin" build "${modfile[@]}" -p "$jobs" -o "$out.tmp" "$pkg") >"$log" 2>&1; then
    reason="$(grep -v '^go: downloading' "$log" | grep -m1 -v '^#' || true)"
    echo "install-peers: $name failed to build: ${reason:-see $log} (log: $log)" >&2
    rm -f "$out.tmp"
    exit 1
  fi
  mv -f "$out.tmp" "$out"
  echo "$want" >"$stamp"
  echo "peer $name: built in $(( $(date +%s) - start ))s: $(version_of "$out" "$versioned")"
done
