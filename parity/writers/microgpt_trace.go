// microgpt_trace.go: write a port trace (format 1) for `python -m parity check TRACE`. Standard library only.
// Put it beside the port's main.go; change the package line below to the port's package when it is not main.
//
//	trace, err := OpenTrace("run.jsonl") // "-": stdout
//	trace.Meta("my Go port", nLayer, nEmbd, nHead, blockSize, chars, numSteps,
//		0.01, 0.85, 0.99, 1e-8, "float64") // chars: the vocabulary in id order
//	trace.Begin(0, "init"); for _, p := range params { trace.Value(p.Data) }; trace.End()
//	for step := 0; step < numSteps; step++ {
//		// ... forward, loss, loss.Backward(); then, before Adam zeroes the gradients:
//		trace.Begin(step+1, "grads"); for _, p := range params { trace.Value(p.Grad) }; trace.End()
//		trace.Step(step+1, doc, loss.Data)
//		// ... Adam update; then the updated weights:
//		trace.Begin(step+1, "params"); for _, p := range params { trace.Value(p.Data) }; trace.End()
//	}
//	err = trace.Close()
//
// Arrays: Init(v), Grads(k, v), Params(k, v) take []float64, Logits(k, rows) [][]float64; a float32 port
// passes float64(x) to Value. Parameters go in the seed's order: wte, wpe, lm_head, then per layer attn_wq,
// attn_wk, attn_wv, attn_wo, mlp_fc1, mlp_fc2, each row by row (not a map's order). Numbers are printed exactly
// (FormatFloat -1; as float32 after Meta's dtype "float32"), nan and inf as NaN, Infinity, -Infinity (not
// with encoding/json, which refuses NaN). The first write error is returned by Close.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
)

type Trace struct {
	w       *bufio.Writer
	f       *os.File // nil for stdout
	bits, n int      // bits: 64, or 32 after Meta(..., "float32")
	rows    bool
}

// OpenTrace opens a trace file, or standard output when path is "-".
func OpenTrace(path string) (*Trace, error) {
	if path == "-" {
		return &Trace{w: bufio.NewWriter(os.Stdout), bits: 64}, nil
	}
	f, err := os.Create(path)
	return &Trace{w: bufio.NewWriterSize(f, 1<<16), f: f, bits: 64}, err
}

func jsonString(s string) string {
	b, _ := json.Marshal(s) // strings only: encoding/json refuses NaN, so numbers are written below
	return string(b)
}

func (t *Trace) number(x float64) string {
	switch {
	case math.IsNaN(x):
		return "NaN"
	case math.IsInf(x, 1):
		return "Infinity"
	case math.IsInf(x, -1):
		return "-Infinity"
	case x == 0 && math.Signbit(x):
		return "-0.0" // JSON's -0 reads as +0
	}
	return strconv.FormatFloat(x, 'g', -1, t.bits)
}

func (t *Trace) Meta(implementation string, nLayer, nEmbd, nHead, blockSize int, chars string, steps int,
	lr, beta1, beta2, eps float64, dtype string) {
	fmt.Fprintf(t.w, "{\"meta\": {\"format\": 1, \"implementation\": %s, \"n_layer\": %d, \"n_embd\": %d, "+
		"\"n_head\": %d, \"block_size\": %d, \"chars\": %s, \"steps\": %d, \"lr\": %s, \"beta1\": %s, "+
		"\"beta2\": %s, \"eps\": %s, \"dtype\": %s}}\n", jsonString(implementation), nLayer, nEmbd, nHead,
		blockSize, jsonString(chars), steps, t.number(lr), t.number(beta1), t.number(beta2), t.number(eps),
		jsonString(dtype))
	if dtype == "float32" {
		t.bits = 32
	}
}

// Begin starts a streamed array: Begin(k, "grads" | "params" | "logits") or Begin(0, "init"); then Value for
// each number (Row before each row of logits); then End.
func (t *Trace) Begin(k int, key string) {
	if key == "init" {
		t.w.WriteString("{\"init\": [")
	} else {
		fmt.Fprintf(t.w, "{\"step\": %d, %s: [", k, jsonString(key))
	}
	t.rows, t.n = key == "logits", 0
	if t.rows {
		t.w.WriteByte('[')
	}
}

func (t *Trace) Value(x float64) {
	if t.n > 0 {
		t.w.WriteString(", ")
	}
	t.n++
	t.w.WriteString(t.number(x))
}

func (t *Trace) Row() {
	if t.n > 0 {
		t.w.WriteString("], [")
	}
	t.n = 0
}

func (t *Trace) End() {
	if t.rows {
		t.w.WriteByte(']')
	}
	t.w.WriteString("]}\n")
	t.w.Flush()
}

func (t *Trace) array(k int, key string, v []float64) {
	t.Begin(k, key)
	for _, x := range v {
		t.Value(x)
	}
	t.End()
}

func (t *Trace) Init(v []float64)          { t.array(0, "init", v) }
func (t *Trace) Grads(k int, v []float64)  { t.array(k, "grads", v) }
func (t *Trace) Params(k int, v []float64) { t.array(k, "params", v) }

func (t *Trace) Logits(k int, rows [][]float64) {
	t.Begin(k, "logits")
	for _, r := range rows {
		t.Row()
		for _, x := range r {
			t.Value(x)
		}
	}
	t.End()
}

func (t *Trace) Step(k int, doc string, loss float64) {
	fmt.Fprintf(t.w, "{\"step\": %d, \"doc\": %s, \"loss\": %s}\n", k, jsonString(doc), t.number(loss))
	t.w.Flush()
}

func (t *Trace) Close() error {
	err := t.w.Flush()
	if t.f != nil {
		if cerr := t.f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
