// Writes a variant trace given as plain text (tests/test_writers.py: one item a line) through microgpt_trace.go:
// declared facts and variant keys, then steps with an lr and over several documents.
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
	integer := func() int {
		v, err := strconv.Atoi(next())
		if err != nil {
			panic(err)
		}
		return v
	}
	num := func() float64 {
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
	nLayer, nEmbd, nHead, blockSize, steps := integer(), integer(), integer(), integer(), integer()
	chars := next()
	lr, beta1, beta2, eps := num(), num(), num(), num()
	var keys []TraceKey
	for i, n := 0, integer(); i < n; i++ { // facts: number or int
		kind, key := next(), next()
		if kind == "int" {
			keys = append(keys, TraceFact(key, integer()))
		} else {
			keys = append(keys, TraceFact(key, num()))
		}
	}
	for i, n := 0, integer(); i < n; i++ { // the variant: string, number, bool or int
		kind, key := next(), next()
		var value interface{}
		switch kind {
		case "string":
			value = next()
		case "int":
			value = integer()
		case "bool":
			value = next() == "true"
		default:
			value = num()
		}
		keys = append(keys, TraceVariant(key, value))
	}
	trace.Meta("variant \"go\"", nLayer, nEmbd, nHead, blockSize, chars, steps, lr, beta1, beta2, eps, dtype, keys...)
	init := make([]float64, integer())
	for i := range init {
		init[i] = num()
	}
	trace.Init(init)
	for k, n := 1, integer(); k <= n; k++ { // forms: doc, doc_lr, docs_lr
		switch form := next(); form {
		case "docs_lr":
			docs := make([]string, integer())
			for i := range docs {
				docs[i] = next()
			}
			loss := num()
			trace.StepDocs(k, docs, loss, num())
		case "doc_lr":
			doc, loss := next(), num()
			trace.Step(k, doc, loss, num())
		default:
			doc, loss := next(), num()
			trace.Step(k, doc, loss)
		}
	}
	if err := trace.Close(); err != nil {
		panic(err)
	}
}
