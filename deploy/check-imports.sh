#!/usr/bin/env bash
# deploy/check-imports.sh checks the import rules of the architecture (see
# README.md, "Architecture"). A rule nobody checks drifts, so .ci/run runs
# this. The rules:
#
#  1. Only server/api imports Fiber (or fasthttp), tests included.
#  2. syncproto is pure: it imports no package of this module, and does not
#     import net, os, syscall, database/... or any driver (MongoDB, MinIO,
#     bbolt, Fiber, gomobile), directly; no driver even indirectly.
#  3. forms is pure the same way, except that it may import syncproto.
#  4. mobile never imports server, directly or indirectly.
#  5. webapp/core (the web app's WebAssembly core) is pure like forms, and
#     may import only syncproto and forms.
#  6. The in-memory stores (server/memstore) are for tests: no command
#     (fieldsyncd above all) depends on them, directly or through the test
#     helpers (internal/testenv), and outside _test.go files only the test
#     helpers import them.
#  7. client (the one Go client of the HTTP API, which the phone links)
#     imports only syncproto of this module: never server, never mobile.
#
# Rules 2 to 4 apply to the code that ships, not to _test.go files: a golden
# test may read testdata with os, and a mobile test may run an in-process
# server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MOD=$(go list -m)
failed=0
violation() {
	printf 'import rule: %s\n' "$*" >&2
	failed=1
}

# golist ARGS...: go list -e, without the warning for patterns that match
# nothing yet (a package may not exist in an early checkout).
golist() {
	go list -e "$@" 2> >(grep -v 'matched no packages' >&2)
}

# Standard-library packages that do I/O, forbidden as direct imports of the
# pure packages (indirectly, fmt alone imports os).
io_std='^(net|net/.*|os|os/.*|syscall|io/ioutil|database/.*|plugin|log/syslog)$'
# Drivers, forbidden in the pure packages even indirectly.
drivers='^(go\.mongodb\.org/.*|github\.com/minio/.*|go\.etcd\.io/bbolt.*|github\.com/gofiber/.*|github\.com/valyala/fasthttp.*|golang\.org/x/mobile.*)$'

# 1. Fiber only in server/api.
while read -r pkg imports; do
	[[ $pkg == "$MOD/server/api" ]] && continue
	for imp in $imports; do
		case $imp in
		github.com/gofiber/* | github.com/valyala/fasthttp*)
			violation "$pkg imports $imp: only $MOD/server/api may import Fiber"
			;;
		esac
	done
done < <(golist -f '{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./...)

# pure PATTERN ALLOWED_RE WHAT: rules 2 and 3.
pure() {
	local pattern=$1 allowed=$2 what=$3 pkg imports deps imp
	while IFS='|' read -r pkg imports deps; do
		[[ -n $pkg ]] || continue
		for imp in $imports; do
			if [[ $imp =~ $io_std ]]; then
				violation "$pkg imports $imp: ${pattern%/...} must do no I/O"
			fi
		done
		for imp in $deps; do
			if [[ $imp == "$MOD" || $imp == "$MOD/"* ]] && ! [[ $imp =~ $allowed ]]; then
				violation "$pkg depends on $imp: ${pattern%/...} may import $what"
			elif [[ $imp =~ $drivers ]]; then
				violation "$pkg depends on $imp: ${pattern%/...} must not use drivers"
				break # one is enough; the rest are usually its own packages
			fi
		done
	done < <(golist -f '{{.ImportPath}}|{{join .Imports " "}}|{{join .Deps " "}}' "$pattern")
}
pure ./syncproto/... "^$MOD/syncproto(/.*)?\$" "no other package of this module"
pure ./forms/... "^$MOD/(syncproto|forms)(/.*)?\$" "only syncproto of this module"
# 5. webapp/core, the browser app's core, is pure the same way: it may
#    import only syncproto and forms (it runs in the browser as WebAssembly).
pure ./webapp/core "^$MOD/(syncproto|forms|webapp/core)(/.*)?\$" "only syncproto and forms of this module"

# 4. mobile never imports server.
while IFS='|' read -r pkg deps; do
	for imp in $deps; do
		if [[ $imp == "$MOD/server" || $imp == "$MOD/server/"* ]]; then
			violation "$pkg depends on $imp: mobile must not import server"
			break
		fi
	done
done < <(golist -f '{{.ImportPath}}|{{join .Deps " "}}' ./mobile/...)

# 6. server/memstore only in tests and the test helpers, and in no command.
while read -r pkg imports; do
	[[ $pkg == "$MOD/internal/testenv" ]] && continue
	for imp in $imports; do
		if [[ $imp == "$MOD/server/memstore" ]]; then
			violation "$pkg imports $imp: the in-memory stores are for tests only"
		fi
	done
done < <(golist -f '{{.ImportPath}} {{join .Imports " "}}' ./...)
while IFS='|' read -r pkg name deps; do
	[[ $name == main ]] || continue
	for imp in $deps; do
		if [[ $imp == "$MOD/server/memstore" || $imp == "$MOD/internal/testenv" ]]; then
			violation "command $pkg depends on $imp: commands run on the real servers only"
			break
		fi
	done
done < <(golist -f '{{.ImportPath}}|{{.Name}}|{{join .Deps " "}}' ./...)

# 7. client speaks the wire format only.
while IFS='|' read -r pkg deps; do
	for imp in $deps; do
		if [[ $imp == "$MOD/"* ]] && ! [[ $imp =~ ^$MOD/(syncproto|client)(/.*)?$ ]]; then
			violation "$pkg depends on $imp: client may import only syncproto of this module"
		fi
	done
done < <(golist -f '{{.ImportPath}}|{{join .Deps " "}}' ./client/...)

if ((failed)); then
	exit 1
fi
echo "import rules: ok"
