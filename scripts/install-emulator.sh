#!/usr/bin/env bash
# Installs the pinned AWS API emulator (fakecloud) once into a stable per-user cache and prints its path.
# fakecloud is AGPL: it is only ever run as a separate process, never linked.
# A debug build with no debug info takes ~8 minutes on 2 cores; a release build takes 35-56, so don't.
set -euo pipefail

version="0.51.0"
tools_dir="${FLEETLOG_TOOLS_DIR:-$HOME/.cache/fleetlog}"
root="$tools_dir/fakecloud-$version"
bin="$root/bin/fakecloud"

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

if ! command -v pkg-config >/dev/null || ! pkg-config --exists openssl 2>/dev/null; then
  echo "fleetlog: installing pkg-config and libssl-dev (needed to build fakecloud)" >&2
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >&2 && apt-get install -y -qq pkg-config libssl-dev >&2
  else
    sudo apt-get update -qq >&2 && sudo apt-get install -y -qq pkg-config libssl-dev >&2
  fi
fi

echo "fleetlog: building fakecloud $version into $root (once; ~8 min on 2 cores)" >&2
mkdir -p "$tools_dir"
CARGO_PROFILE_DEV_DEBUG=0 CARGO_TARGET_DIR="$tools_dir/fakecloud-build" \
  cargo install fakecloud --version "$version" --locked --debug --root "$root" >&2
rm -rf "$tools_dir/fakecloud-build"
echo "$bin"
