#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed for the browser tests and the media benchmark, installing the
# `chromium` package when it is missing. Prints the browser's path.
set -euo pipefail

browser="${OPENVISIT_CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$browser" ]]; then
	"$(dirname "$0")/ensure-debian-packages.sh" chromium fonts-dejavu-core
	[[ -x "$browser" ]] || { echo "apt-get installed chromium but $browser is not there" >&2; exit 1; }
fi
echo "$browser"
