#!/usr/bin/env bash
# test-deps.sh: install what the tests need beyond Go, when missing.
# kcat (Debian package) is the independent librdkafka client the broker
# tests run against.
set -euo pipefail
need=()
command -v kcat >/dev/null 2>&1 || need+=(kcat)
if [ ${#need[@]} -gt 0 ]; then
  echo "test-deps: installing ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
