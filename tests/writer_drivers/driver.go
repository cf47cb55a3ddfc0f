// Re-emits a trace given as plain text (tests/test_writers.py: one item a line) through microgpt_trace.go.
package main

import (
	"os"
	"strconv"
	"strings"
)

func main() {
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	lines, at := strings.Split(string(data), "\n"), 0
	next := func() string { at++; return lines[at-1] }
	integer := func() int { v, err := strconv.Atoi(next()); if err != nil { panic(err) }; return v }
	num := func() float64 { // exact for repr decimals, NaN, Infinity, -Infinity
		v, err := strconv.ParseFloat(next(), 64)
		if err != nil {
			panic(err)
		}
		return v
	}
	trace, err := OpenTrace(os.Args[2])
	if err != nil {
		panic(err)
	}
	dtype := next()
	f32 := dtype == "float32"
	single := func(x float64) float64 { if f32 { return float64(float32(x)) }; return x }
	nLayer, nEmbd, nHead, blockSize, steps := integer(), integer(), integer(), integer(), integer()
	chars := next()
	lr, beta1, beta2, eps := num(), num(), num(), num()
	trace.Meta("driver \"go\" \\ tab\t nl\n ctl\x01 é ✓", nLayer, nEmbd, nHead, blockSize, chars, steps,
		lr, beta1, beta2, eps, dtype)
	array := func(count int) []float64 {
		v := make([]float64, count)
		for i := range v {
			v[i] = single(num())
		}
		return v
	}
	trace.Init(array(integer()))
	nSteps := integer()
	for k := 1; k <= nSteps; k++ {
		doc := next()
		loss := single(num())
		if g := integer(); g > 0 { // the streaming form, as a port holding Value structs writes it
			trace.Begin(k, "grads")
			for i := 0; i < g; i++ {
				trace.Value(single(num()))
			}
			trace.End()
		}
		trace.Step(k, doc, loss)
		if p := integer(); p > 0 {
			trace.Params(k, array(p))
		}
		if r := integer(); r > 0 {
			vocab := integer()
			rows := make([][]float64, r)
			for i := range rows {
				rows[i] = array(vocab)
			}
			trace.Logits(k, rows)
		}
	}
	if err := trace.Close(); err != nil {
		panic(err)
	}
}
