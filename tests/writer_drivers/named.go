// Writes a trace given as plain text (tests/test_writers.py: one item a line) through microgpt_trace.go, each
// matrix under its name in the order the input gives it: init as rows (MatrixRows), params flat with cols
// (Matrix), grads streamed (BeginMatrix, Row, Value).
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

var inLines []string
var at int
var f32 bool

func inLine() string { at++; return inLines[at-1] }

func inInt() int {
	n, err := strconv.Atoi(inLine())
	if err != nil {
		panic(err)
	}
	return n
}

func inNumber() float64 {
	s := inLine()
	switch s { // ParseFloat reads "Inf", "+Inf", "NaN"; the input writes Infinity
	case "Infinity":
		s = "+Inf"
	case "-Infinity":
		s = "-Inf"
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic(err)
	}
	if f32 {
		x = float64(float32(x))
	}
	return x
}

func matrices(trace *Trace, k int, key string) {
	for j, m := 0, inInt(); j < m; j++ {
		name, rows, cols := inLine(), inInt(), inInt()
		v := make([]float64, rows*cols)
		for i := range v {
			v[i] = inNumber()
		}
		switch key {
		case "grads":
			trace.BeginMatrix(k, key, name)
			for i, x := range v {
				if i%cols == 0 {
					trace.Row()
				}
				trace.Value(x)
			}
			trace.End()
		case "init":
			r := make([][]float64, rows)
			for i := range r {
				r[i] = v[i*cols : (i+1)*cols]
			}
			trace.MatrixRows(k, key, name, r)
		default:
			trace.Matrix(k, key, name, v, cols)
		}
	}
}

func main() {
	text, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	inLines = strings.Split(string(text), "\n")
	trace, err := OpenTrace(os.Args[2])
	if err != nil {
		panic(err)
	}
	dtype := inLine()
	nLayer, nEmbd, nHead, blockSize, steps := inInt(), inInt(), inInt(), inInt(), inInt()
	chars := inLine()
	lr, beta1, beta2, eps := inNumber(), inNumber(), inNumber(), inNumber()
	f32 = dtype == "float32" // after Adam's numbers, which stay float64
	trace.Meta("named \"go\"", nLayer, nEmbd, nHead, blockSize, chars, steps, lr, beta1, beta2, eps, dtype)
	matrices(trace, 0, "init")
	for k, s := 1, inInt(); k <= s; k++ {
		doc := inLine()
		loss := inNumber()
		matrices(trace, k, "grads")
		trace.Step(k, doc, loss)
		matrices(trace, k, "params")
	}
	if err := trace.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(4)
	}
}
