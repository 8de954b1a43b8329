// Command corewasm is the inspector web app's core (package
// webapp/core: syncproto and forms) built for the browser:
//
//	GOOS=js GOARCH=wasm go build -trimpath -ldflags="-s -w" ./webapp/cmd/corewasm
//
// "make app" builds it and stores it gzipped as webapp/static/core.wasm.gz.
// Loaded by webapp/static/js/core.js, it defines the global fieldsyncCore
// with one function, call(name, requestJSON) → answerJSON (core.Call),
// and then calls fieldsyncCoreReady() if the page defined it.
//
// Built for any other platform it only says how to build it.
package main
