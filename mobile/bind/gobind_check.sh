#!/usr/bin/env bash
# Checks that gobind (golang.org/x/mobile/cmd/gobind, pinned in go.mod)
# generates the Java and Objective-C bindings of the phone facade without
# error, and that it skipped no exported member for an unsupported type.
# Needs neither the Android SDK nor Xcode: only the generation is checked.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go tool gobind -lang=java,objc -outdir "$out" ./mobile/bind
for f in java/fieldsync/Phone.java java/fieldsync/Fieldsync.java src/gobind/Fieldsync.objc.h; do
	test -s "$out/$f" || { echo "gobind: $f was not generated" >&2; exit 1; }
done
if grep -rn "skipped" "$out/java/fieldsync" "$out/src/gobind/Fieldsync.objc.h"; then
	echo "gobind: the facade has members gomobile cannot bind" >&2
	exit 1
fi
echo "gobind: Java and Objective-C bindings of mobile/bind generated"
