//go:build !(js && wasm)

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "corewasm runs in a browser: build it with GOOS=js GOARCH=wasm (make app)")
	os.Exit(2)
}
