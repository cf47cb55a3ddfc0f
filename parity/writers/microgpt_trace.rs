//! microgpt_trace.rs: write a port trace (format 1) for `python -m parity check TRACE`. std only.
//!
//!     mod microgpt_trace;                                   // this file beside main.rs
//!     let mut trace = microgpt_trace::Trace::open("run.jsonl").unwrap(); // "-": stdout
//!     trace.meta("my Rust port", n_layer, n_embd, n_head, block_size, &chars, num_steps,
//!                0.01, 0.85, 0.99, 1e-8, "float64");        // chars: the vocabulary in id order
//!     for (name, m) in &state { trace.matrix(0, "init", name, &m.data(), m.cols); } // by name, any order
//!     for step in 0..num_steps {
//!         // ... forward, loss, loss.backward(); then, before Adam zeroes the gradients:
//!         for (name, m) in &state { trace.matrix(step + 1, "grads", name, &m.grad(), m.cols); }
//!         trace.step(step + 1, doc, loss.data());           // or step_lr(.., lr_t): the lr the update used
//!         // ... Adam update; then the updated weights:
//!         for (name, m) in &state { trace.matrix(step + 1, "params", name, &m.data(), m.cols); }
//!     }
//!     trace.close();
//! A variant, before meta: trace.variant_str("activation", "relu2"), variant_number("beta1", 0.9),
//! variant_bool("tie_embeddings", true), variant_int("docs_per_step", 2); facts beyond meta's arguments:
//! meta_number("weight_decay", 0.1), meta_int("bos", 0). Several documents a step: step_docs(k, &docs, loss, lr).
//! A matrix (wte, wpe, lm_head, layer0.attn_wq, ...; other names: parity check --names FILE; a HashMap's order
//! is fine): matrix(k, key, name, values row by row, cols), matrix_rows(k, key, name, &rows), or streamed:
//! begin_matrix(k, key, name), row() before each row, value(x) per number, end(); key "init" (k 0), "grads" or
//! "params". One flat list instead, in the seed's order (wte, wpe, lm_head, then per layer attn_wq, attn_wk,
//! attn_wv, attn_wo, mlp_fc1, mlp_fc2, each row by row): init(&v), grads(k, &v), params(k, &v), or begin(k,
//! "grads"), value(x)..., end(). Arrays may be &[f64] or &[f32]. Numbers are
//! printed exactly: as f64, or as f32 after meta dtype "float32"; nan and inf as NaN, Infinity, -Infinity.
//! A failed write panics ("microgpt trace: ..."), as does a declaration (variant_*, meta_*) after meta.
#![allow(dead_code)]
use std::fs::File;
use std::io::{self, BufWriter, Write};

pub struct Trace {
    out: Box<dyn Write>,
    f32: bool,
    n: usize,
    rows: u8, // 1: logits, 2: a named matrix
    meta: bool,
    facts: String, variant: String, // `, "key": value` per meta_number and meta_int, per variant_*: meta writes them
}

fn json_string(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o + "\""
}

fn number(x: f64, f32: bool) -> String { // the shortest digits that give back the same f64 (f32); -0.0 stays -0.0
    if x.is_nan() { "NaN".into() } else if x.is_infinite() { (if x > 0.0 { "Infinity" } else { "-Infinity" }).into() }
    else if f32 { format!("{:?}", x as f32) } else { format!("{:?}", x) }
}

impl Trace {
    pub fn open(path: &str) -> io::Result<Trace> {
        let out: Box<dyn Write> = if path == "-" { Box::new(io::stdout()) } else { Box::new(File::create(path)?) };
        let (facts, variant) = (String::new(), String::new());
        Ok(Trace { out: Box::new(BufWriter::new(out)), f32: false, n: 0, rows: 0, meta: false, facts, variant })
    }

    fn put(&mut self, text: &str) {
        self.out.write_all(text.as_bytes()).expect("microgpt trace: write failed");
    }

    /// Before meta, each written in the order called: facts beyond meta's arguments (weight_decay, grad_clip,
    /// norm_eps; bos, eos) and meta.variant, the deviations from microgpt the port means to have.
    pub fn meta_number(&mut self, key: &str, x: f64) { self.declare(false, key, number(x, false)); }
    pub fn meta_int(&mut self, key: &str, n: usize) { self.declare(false, key, n.to_string()); }
    pub fn variant_str(&mut self, key: &str, s: &str) { self.declare(true, key, json_string(s)); }
    pub fn variant_number(&mut self, key: &str, x: f64) { self.declare(true, key, number(x, false)); }
    pub fn variant_bool(&mut self, key: &str, b: bool) { self.declare(true, key, b.to_string()); }
    pub fn variant_int(&mut self, key: &str, n: usize) { self.declare(true, key, n.to_string()); }

    fn declare(&mut self, variant: bool, key: &str, value: String) {
        assert!(!self.meta, "microgpt trace: {} declared after meta", key);
        let to = if variant { &mut self.variant } else { &mut self.facts };
        to.push_str(&format!(", {}: {}", json_string(key), value));
    }

    #[allow(clippy::too_many_arguments)]
    pub fn meta(&mut self, implementation: &str, n_layer: usize, n_embd: usize, n_head: usize, block_size: usize,
                chars: &str, steps: usize, lr: f64, beta1: f64, beta2: f64, eps: f64, dtype: &str) {
        let variant = if self.variant.is_empty() { String::new() }
                      else { format!(", \"variant\": {{{}}}", &self.variant[2..]) };
        let line = format!("{{\"meta\": {{\"format\": 1, \"implementation\": {}, \"n_layer\": {}, \"n_embd\": {}, \
            \"n_head\": {}, \"block_size\": {}, \"chars\": {}, \"steps\": {}, \"lr\": {:?}, \"beta1\": {:?}, \
            \"beta2\": {:?}, \"eps\": {:?}, \"dtype\": {}{}{}}}}}\n", json_string(implementation), n_layer, n_embd,
            n_head, block_size, json_string(chars), steps, lr, beta1, beta2, eps, json_string(dtype), self.facts,
            variant);
        self.put(&line);
        self.f32 = dtype == "float32";
        self.meta = true;
    }

    /// Streaming: begin(k, "grads" | "params" | "logits") or begin(0, "init"); value(x) for each number
    /// (row() before each row of logits); end().
    pub fn begin(&mut self, k: usize, key: &str) {
        let head = if key == "init" { "{\"init\": [".to_string() } else { format!("{{\"step\": {}, \"{}\": [", k, key) };
        self.put(&head);
        self.rows = (key == "logits") as u8;
        if self.rows > 0 { self.put("["); }
        self.n = 0;
    }

    /// One matrix under its name: begin_matrix(0, "init", name) or (k, "grads" | "params", name); row() before each
    /// row, value(x) per number; end().
    pub fn begin_matrix(&mut self, k: usize, key: &str, name: &str) {
        let head = if key == "init" { String::new() } else { format!("\"step\": {}, ", k) };
        self.put(&format!("{{{}{}: {{{}: [[", head, json_string(key), json_string(name)));
        self.rows = 2;
        self.n = 0;
    }

    pub fn matrix<T: Into<f64> + Copy>(&mut self, k: usize, key: &str, name: &str, values: &[T], cols: usize) {
        self.begin_matrix(k, key, name);
        for (i, &x) in values.iter().enumerate() { if i % cols == 0 { self.row(); } self.value(x); }
        self.end();
    }

    pub fn matrix_rows<T, R>(&mut self, k: usize, key: &str, name: &str, rows: &[R])
    where T: Into<f64> + Copy, R: AsRef<[T]> {
        self.begin_matrix(k, key, name);
        for r in rows { self.row(); for &x in r.as_ref() { self.value(x); } }
        self.end();
    }

    pub fn value<T: Into<f64>>(&mut self, x: T) {
        let text = number(x.into(), self.f32);
        if self.n > 0 { self.put(", "); }
        self.n += 1;
        self.put(&text);
    }

    pub fn row(&mut self) {
        if self.n > 0 { self.put("], ["); }
        self.n = 0;
    }

    pub fn end(&mut self) {
        self.put(["]}\n", "]]}\n", "]]}}\n"][self.rows as usize]);
        self.out.flush().expect("microgpt trace: write failed");
    }

    fn array<T: Into<f64> + Copy>(&mut self, k: usize, key: &str, values: &[T]) {
        self.begin(k, key);
        for &x in values { self.value(x); }
        self.end();
    }

    pub fn init<T: Into<f64> + Copy>(&mut self, values: &[T]) { self.array(0, "init", values); }
    pub fn grads<T: Into<f64> + Copy>(&mut self, k: usize, values: &[T]) { self.array(k, "grads", values); }
    pub fn params<T: Into<f64> + Copy>(&mut self, k: usize, values: &[T]) { self.array(k, "params", values); }

    pub fn logits<T: Into<f64> + Copy>(&mut self, k: usize, rows: &[Vec<T>]) {
        self.begin(k, "logits");
        for r in rows { self.row(); for &x in r { self.value(x); } }
        self.end();
    }

    pub fn step<T: Into<f64>>(&mut self, k: usize, doc: &str, loss: T) {
        self.step_line(k, format!("\"doc\": {}", json_string(doc)), loss.into(), None);
    }
    /// lr: the learning rate the step's update used; step_docs: a step over several documents ("docs")
    pub fn step_lr<T: Into<f64>>(&mut self, k: usize, doc: &str, loss: T, lr: f64) {
        self.step_line(k, format!("\"doc\": {}", json_string(doc)), loss.into(), Some(lr));
    }
    pub fn step_docs<S: AsRef<str>, T: Into<f64>>(&mut self, k: usize, docs: &[S], loss: T, lr: f64) {
        let docs: Vec<String> = docs.iter().map(|d| json_string(d.as_ref())).collect();
        self.step_line(k, format!("\"docs\": [{}]", docs.join(", ")), loss.into(), Some(lr));
    }

    fn step_line(&mut self, k: usize, docs: String, loss: f64, lr: Option<f64>) {
        let lr = lr.map_or(String::new(), |x| format!(", \"lr\": {}", number(x, false)));
        let line = format!("{{\"step\": {}, {}, \"loss\": {}{}}}\n", k, docs, number(loss, self.f32), lr);
        self.put(&line);
        self.out.flush().expect("microgpt trace: write failed");
    }

    pub fn close(mut self) {
        self.out.flush().expect("microgpt trace: write failed");
    }
}
