#!/usr/bin/env bash
# Downloads the Debian packages the GPU machine lacks into .gpu-debs/ (ignored; carried to the device).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-debs
cd .gpu-debs
pkgs=(libtbb-dev libtbb12 libtbbmalloc2 libtbbbind-2-5 libtomlplusplus-dev libtomlplusplus3
      libcli11-dev nlohmann-json3-dev libspdlog-dev libspdlog1.10 libfmt-dev libfmt9)
missing=()
for p in "${pkgs[@]}"; do ls "${p}"_*.deb >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get download "${missing[@]}"
fi
ls -1 *.deb | wc -l
