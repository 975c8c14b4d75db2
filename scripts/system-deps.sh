#!/usr/bin/env bash
# Debian packages the tests and the demo need. Installs the missing ones when run
# as root (after apt-get update); otherwise names them and how to install them.
set -euo pipefail
PACKAGES=(ffmpeg espeak-ng sox libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins nginx chromium fonts-noto-cjk)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing system packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install ${missing[*]}" >&2
  echo "(macOS: brew install ffmpeg espeak-ng sox portaudio nginx)" >&2
  exit 1
fi
