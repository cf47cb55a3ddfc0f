// microgpt_trace.go: write a port trace (format 1) for `python -m parity check TRACE`. Standard library only.
// Put it beside the port's main.go; change the package line below to the port's package when it is not main.
//
//	trace, err := OpenTrace("run.jsonl") // "-": stdout
//	trace.Meta("my Go port", nLayer, nEmbd, nHead, blockSize, chars, numSteps,
//		0.01, 0.85, 0.99, 1e-8, "float64") // chars: the vocabulary in id order; a variant: TraceVariant below
//	for name, m := range state { trace.Matrix(0, "init", name, m.Data(), m.Cols) } // by name, a map's order
//	for step := 0; step < numSteps; step++ {
//		// ... forward, loss, loss.Backward(); then, before Adam zeroes the gradients:
//		for name, m := range state { trace.Matrix(step+1, "grads", name, m.Grad(), m.Cols) }
//		trace.Step(step+1, doc, loss.Data) // or Step(.., lr): the lr the update used; StepDocs(k, docs, loss, lr)
//		// ... Adam update; then the updated weights:
//		for name, m := range state { trace.Matrix(step+1, "params", name, m.Data(), m.Cols) }
//	}
//	err = trace.Close()
//
// A matrix (wte, wpe, lm_head, layer0.attn_wq, ...; other names: parity check --names FILE): Matrix(k, key, name,
// values row by row, cols), MatrixRows(k, key, name, rows), or streamed: BeginMatrix(k, key, name), Row before
// each row, Value per number, End; key "init" (k 0), "grads" or "params". One flat list instead: Init(v), Grads(k,
// v), Params(k, v), or Begin(k, "grads"), Value..., End, in the seed's order: wte, wpe, lm_head, then per layer
// attn_wq, attn_wk, attn_wv, attn_wo, mlp_fc1, mlp_fc2, each row by row. Arrays are []float64 (Logits(k, rows):
// [][]float64); a float32 port passes float64(x) to Value. Numbers are printed exactly (FormatFloat
// -1; float32 after dtype "float32"); NaN, Infinity, -Infinity (not encoding/json, which refuses NaN). Close
// returns the first write error.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
)

type Trace struct {
	w         *bufio.Writer
	f         *os.File // nil for stdout
	bits      int      // 64, or 32 after Meta(..., "float32")
	sep, tail string   // before the next Value; after the last
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

var special = map[string]string{"+Inf": "Infinity", "-Inf": "-Infinity", "-0": "-0.0"} // JSON's -0 reads as +0
func number(x float64, bits int) string {
	s := strconv.FormatFloat(x, 'g', -1, bits) // NaN stays NaN
	if j, ok := special[s]; ok {
		return j
	}
	return s
}

// Meta's optional last arguments, written after its own keys in the order given: TraceFact(key, value), a fact
// beyond them (weight_decay, grad_clip, norm_eps; bos, eos), and TraceVariant(key, value), in meta.variant: the
// port's deviations from microgpt: TraceVariant("activation", "relu2"), TraceVariant("docs_per_step", 2), ...
type TraceKey [2]string

func TraceFact(key string, value interface{}) TraceKey    { return TraceKey{jsonKey(key, value), ""} }
func TraceVariant(key string, value interface{}) TraceKey { return TraceKey{"", jsonKey(key, value)} }

func jsonKey(key string, value interface{}) string {
	b, _ := json.Marshal(value) // a string, a bool, an int
	if x, ok := value.(float64); ok {
		b = []byte(number(x, 64)) // NaN and infinities too
	}
	return ", " + jsonString(key) + ": " + string(b)
}

func (t *Trace) Meta(implementation string, nLayer, nEmbd, nHead, blockSize int, chars string, steps int,
	lr, beta1, beta2, eps float64, dtype string, keys ...TraceKey) {
	var part TraceKey // the facts, the variant
	for _, key := range keys {
		part[0], part[1] = part[0]+key[0], part[1]+key[1]
	}
	if part[1] != "" {
		part[1] = ", \"variant\": {" + part[1][2:] + "}"
	}
	fmt.Fprintf(t.w, "{\"meta\": {\"format\": 1, \"implementation\": %s, \"n_layer\": %d, \"n_embd\": %d, "+
		"\"n_head\": %d, \"block_size\": %d, \"chars\": %s, \"steps\": %d, \"lr\": %s, \"beta1\": %s, "+
		"\"beta2\": %s, \"eps\": %s, \"dtype\": %s%s%s}}\n", jsonString(implementation), nLayer, nEmbd, nHead,
		blockSize, jsonString(chars), steps, number(lr, 64), number(beta1, 64), number(beta2, 64), number(eps, 64),
		jsonString(dtype), part[0], part[1])
	if dtype == "float32" {
		t.bits = 32
	}
}

// Begin starts a streamed array: Begin(k, "grads" | "params" | "logits") or Begin(0, "init"); then Value for
// each number (Row before each row of logits); then End.
func (t *Trace) Begin(k int, key string) {
	head, tail := fmt.Sprintf("{\"step\": %d, %s: [", k, jsonString(key)), "]}\n"
	if key == "init" {
		head = "{\"init\": ["
	} else if key == "logits" {
		head, tail = head+"[", "]]}\n"
	}
	t.w.WriteString(head)
	t.sep, t.tail = "", tail
}

func (t *Trace) Value(x float64) { t.w.WriteString(t.sep + number(x, t.bits)); t.sep = ", " }
func (t *Trace) End()            { t.w.WriteString(t.tail); t.w.Flush() }
func (t *Trace) Row() {
	if t.sep != "" {
		t.w.WriteString("], [")
	}
	t.sep = ""
}

// BeginMatrix starts one matrix under its name: BeginMatrix(0, "init", name) or (k, "grads" | "params", name);
// then Row before each row, Value for each number, End.
func (t *Trace) BeginMatrix(k int, key, name string) {
	head := fmt.Sprintf("{\"step\": %d, ", k)
	if key == "init" {
		head = "{"
	}
	t.w.WriteString(head + jsonString(key) + ": {" + jsonString(name) + ": [[")
	t.sep, t.tail = "", "]]}}\n"
}

// Matrix writes one matrix under its name, v row by row, cols to a row; MatrixRows, its rows.
func (t *Trace) Matrix(k int, key, name string, v []float64, cols int) {
	t.BeginMatrix(k, key, name)
	for i, x := range v {
		if i%cols == 0 {
			t.Row()
		}
		t.Value(x)
	}
	t.End()
}

func (t *Trace) MatrixRows(k int, key, name string, rows [][]float64) {
	t.BeginMatrix(k, key, name)
	for _, r := range rows {
		t.Row()
		t.values(r)
	}
	t.End()
}

func (t *Trace) values(v []float64) {
	for _, x := range v {
		t.Value(x)
	}
}

func (t *Trace) Init(v []float64)          { t.Begin(0, "init"); t.values(v); t.End() }
func (t *Trace) Grads(k int, v []float64)  { t.Begin(k, "grads"); t.values(v); t.End() }
func (t *Trace) Params(k int, v []float64) { t.Begin(k, "params"); t.values(v); t.End() }

func (t *Trace) Logits(k int, rows [][]float64) {
	t.Begin(k, "logits")
	for _, r := range rows {
		t.Row()
		t.values(r)
	}
	t.End()
}

func (t *Trace) Step(k int, doc string, loss float64, lr ...float64) { t.step(k, "doc", doc, loss, lr) }
func (t *Trace) StepDocs(k int, docs []string, loss float64, lr ...float64) {
	t.step(k, "docs", docs, loss, lr)
}

func (t *Trace) step(k int, key string, docs interface{}, loss float64, lr []float64) {
	b, _ := json.Marshal(docs) // a string, or a list of them
	fmt.Fprintf(t.w, "{\"step\": %d, \"%s\": %s, \"loss\": %s", k, key, b, number(loss, t.bits))
	for _, x := range lr {
		t.w.WriteString(", \"lr\": " + number(x, 64))
	}
	t.w.WriteString("}\n")
	t.w.Flush()
}

func (t *Trace) Close() (err error) {
	if err = t.w.Flush(); t.f != nil {
		if cerr := t.f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
