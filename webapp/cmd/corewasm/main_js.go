//go:build js && wasm

package main

import (
	"syscall/js"

	"github.com/fieldsync/fieldsync/webapp/core"
)

func main() {
	call := js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) != 2 {
			return string(core.Call("", nil))
		}
		return string(core.Call(args[0].String(), []byte(args[1].String())))
	})
	js.Global().Set("fieldsyncCore", js.ValueOf(map[string]any{"call": call}))
	if ready := js.Global().Get("fieldsyncCoreReady"); ready.Type() == js.TypeFunction {
		ready.Invoke()
	}
	select {} // serve calls until the page goes away
}
