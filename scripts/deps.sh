#!/usr/bin/env bash
# Installs the Debian packages Switchboard needs, only those that are absent.
# Used by `make run`, `make test` and .ci/run; safe to run again and again.
set -euo pipefail
pkgs=(cmake make gcc clang pkg-config libuv1-dev libhttp-parser-dev libwslay-dev
      libprotobuf-c-dev protobuf-c-compiler libjansson-dev libsqlite3-dev
      libpq-dev postgresql-15
      libssl-dev zlib1g-dev libutf8proc-dev libcmocka-dev libclang-rt-14-dev
      sqlite3 curl procps chromium fonts-wqy-microhei clang-format
      libsystemd-dev systemd prometheus jq tzdata
      libnats-dev nats-server haproxy libcurl4-openssl-dev
      libmagic-dev libmagic-mgc libimage-exiftool-perl libjpeg-dev)
# The web side needs node and npm; the system's own are kept if present.
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
