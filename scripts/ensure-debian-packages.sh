#!/usr/bin/env bash
# Installs the named Debian packages with apt-get (as root, or through sudo), refreshing the package lists
# once if the first attempt cannot find them.
set -euo pipefail
(( $# > 0 )) || { echo "usage: $0 PACKAGE..." >&2; exit 2; }

if [[ "$(id -u)" -eq 0 ]]; then
	run_as_root=()
elif command -v sudo >/dev/null 2>&1; then
	run_as_root=(sudo -n)
else
	echo "installing $* needs root: apt-get install $*" >&2
	exit 1
fi

echo "installing Debian packages: $*" >&2
export DEBIAN_FRONTEND=noninteractive
if ! "${run_as_root[@]}" apt-get install -y --no-install-recommends "$@" >&2; then
	"${run_as_root[@]}" apt-get update >&2
	"${run_as_root[@]}" apt-get install -y --no-install-recommends "$@" >&2
fi
