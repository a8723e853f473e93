#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed for the browser tests and the media benchmark, installing the
# `chromium` package with apt-get when it is missing. Prints the browser's path.
set -euo pipefail

browser="${OPENVISIT_CHROMIUM:-/usr/bin/chromium}"
if [[ -x "$browser" ]]; then
	echo "$browser"
	exit 0
fi

if [[ "$(id -u)" -eq 0 ]]; then
	run_as_root=()
elif command -v sudo >/dev/null 2>&1; then
	run_as_root=(sudo -n)
else
	echo "Chromium is missing at $browser and installing it needs root: apt-get install chromium" >&2
	exit 1
fi

echo "installing Debian's chromium (browser tests need it)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! "${run_as_root[@]}" apt-get install -y --no-install-recommends chromium fonts-dejavu-core >&2; then
	"${run_as_root[@]}" apt-get update >&2
	"${run_as_root[@]}" apt-get install -y --no-install-recommends chromium fonts-dejavu-core >&2
fi
[[ -x "$browser" ]] || { echo "apt-get installed chromium but $browser is not there" >&2; exit 1; }
echo "$browser"
