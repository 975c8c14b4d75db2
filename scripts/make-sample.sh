#!/usr/bin/env bash
# Speaks a short sample lecture with espeak-ng and writes it as 16 kHz FLAC.
set -euo pipefail
out=${1:-build/demo/lecture.flac}
mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
i=0
while IFS= read -r line; do
  [ -n "$line" ] || continue
  espeak-ng -v en-us -s 150 -w "$tmp/$i.wav" "$line"
  sox "$tmp/$i.wav" -r 16000 -c 1 -b 16 "$tmp/s$i.wav" pad 0.3 1.2
  i=$((i + 1))
done <<'TEXT'
Good morning everyone, and welcome to the second lecture on thermodynamics.
Today we look at the first law, which says that energy is conserved.
The change in internal energy equals the heat added minus the work done by the system.
Think of a piston in a cylinder: when the gas expands, it does work on the piston.
If no heat flows in, the gas cools down as it expands.
For next week, please read chapter three and try the exercises at the end.
TEXT
sox $(ls "$tmp"/s*.wav | sort -V) "$out"
echo "sample lecture: $out ($(soxi -D "$out") s)"
