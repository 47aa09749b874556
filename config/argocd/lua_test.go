package argocd_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

// The Lua runtime as Argo CD sets it up for scripts from argocd-cm (util/lua in Argo CD):
// gopher-lua without the standard libraries but package, base and table (Argo CD adds a
// reduced os library, which these scripts do not use), a one-second budget, and the resource
// in the global obj. Numbers arrive as Lua numbers, objects and arrays as tables.

// runLua runs script on obj and returns what it returns, as JSON-like Go values.
func runLua(script string, obj map[string]any) (any, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	ret := l.Get(-1)
	if ret.Type() != lua.LTTable {
		return nil, fmt.Errorf("the script returned a %s, Argo CD wants a table", ret.Type())
	}
	return fromLua(ret), nil
}

func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, x := range v {
			t.Append(toLua(l, x))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for k, x := range v {
			t.RawSetString(k, toLua(l, x))
		}
		return t
	}
	panic(fmt.Sprintf("no Lua value for %T", v))
}

// fromLua encodes a Lua value as Argo CD's JSON encoding of it does: a table whose keys are
// 1..n is an array, an empty table is an empty array, any other table an object.
func fromLua(v lua.LValue) any {
	switch v := v.(type) {
	case *lua.LNilType:
		return nil
	case lua.LBool:
		return bool(v)
	case lua.LString:
		return string(v)
	case lua.LNumber:
		f := float64(v)
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f)
		}
		return f
	case *lua.LTable:
		n := v.Len()
		keys := 0
		v.ForEach(func(lua.LValue, lua.LValue) { keys++ })
		if keys == n {
			arr := make([]any, 0, n)
			for i := 1; i <= n; i++ {
				arr = append(arr, fromLua(v.RawGetInt(i)))
			}
			return arr
		}
		m := map[string]any{}
		v.ForEach(func(k, x lua.LValue) { m[k.String()] = fromLua(x) })
		return m
	}
	return v.String()
}

// restoreEmptyObjects undoes the encoding's one loss, as Argo CD does before it patches: an
// object the script left empty comes back as an empty array (also inside arrays, such as a
// canary step's "pause: {}").
func restoreEmptyObjects(out, in map[string]any) {
	for k, was := range in {
		out[k] = restoreEmpty(out[k], was)
	}
}

func restoreEmpty(now, was any) any {
	switch n := now.(type) {
	case map[string]any:
		if w, ok := was.(map[string]any); ok {
			restoreEmptyObjects(n, w)
		}
	case []any:
		switch w := was.(type) {
		case map[string]any:
			if len(n) == 0 {
				return w
			}
		case []any:
			for i := range n {
				if i < len(w) {
					n[i] = restoreEmpty(n[i], w[i])
				}
			}
		}
	}
	return now
}

func readObject(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := yaml.Unmarshal(data, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return normalize(obj), nil
}

// normalize makes every number an int64 or float64, as the API's JSON decoding does.
func normalize(obj map[string]any) map[string]any {
	var walk func(any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				v[k] = walk(x)
			}
		case []any:
			for i, x := range v {
				v[i] = walk(x)
			}
		case float64:
			if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
				return int64(v)
			}
		case int:
			return int64(v)
		}
		return v
	}
	return walk(obj).(map[string]any)
}
