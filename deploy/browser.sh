#!/usr/bin/env bash
# deploy/browser.sh [install|check|node ARGS...]: the browser-test tooling
# of fieldsync, installed on first use.
#
#   install   (the default) installs what is missing: Debian's chromium,
#             fonts-noto-cjk and fonts-noto-color-emoji (so Chinese and the
#             icons render in screenshots as on a phone) and nodejs
#             with apt-get, and playwright-core and axe-core with npm ci from
#             deploy/browser/package-lock.json into deploy/browser/node_modules
#             (git-ignored, kept between runs). Needs root for apt-get when a
#             package is missing; prints nothing when all is there.
#   check     exits 0 if everything is installed, 1 otherwise, installing
#             nothing.
#   node ...  installs, then runs node with NODE_PATH set to the tooling,
#             so a script can require('playwright-core').
#
# Chromium is Debian's (/usr/bin/chromium): Playwright's own browser
# downloads cannot be reached from the build machines, so the tests launch
# it with executablePath (internal/browsertest does). Runs of this script
# at the same time (parallel test packages) wait for each other on a lock.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$ROOT/deploy/browser
CHROMIUM=/usr/bin/chromium

have_debs() {
	[[ -x $CHROMIUM ]] && command -v node >/dev/null && command -v npm >/dev/null || return 1
	local pkg
	for pkg in fonts-noto-cjk fonts-noto-color-emoji; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || return 1
	done
}

have_npm() {
	[[ -f $DIR/node_modules/.package-lock.json ]] &&
		cmp -s <(sed -n '/"packages"/,$p' "$DIR/package-lock.json" | grep -E '"(version|resolved)"' | sort) \
			<(sed -n '/"packages"/,$p' "$DIR/node_modules/.package-lock.json" | grep -E '"(version|resolved)"' | sort)
}

install() {
	have_debs && have_npm && return 0
	exec 9>"$DIR/.install.lock"
	flock 9
	if ! have_debs; then
		local sudo=()
		((EUID == 0)) || sudo=(sudo)
		echo "deploy/browser.sh: installing chromium, fonts-noto-cjk and nodejs with apt-get" >&2
		"${sudo[@]}" apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
			chromium fonts-noto-cjk fonts-noto-color-emoji $(command -v node >/dev/null || echo nodejs) $(command -v npm >/dev/null || echo npm) >&2
	fi
	if ! have_npm; then
		echo "deploy/browser.sh: installing playwright-core and axe-core with npm ci" >&2
		(cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error >&2)
	fi
}

case ${1:-install} in
install) install ;;
check) have_debs && have_npm ;;
node)
	shift
	install
	NODE_PATH=$DIR/node_modules exec node "$@"
	;;
*)
	echo "usage: deploy/browser.sh [install|check|node ARGS...]" >&2
	exit 2
	;;
esac
