//! microgpt_trace.rs: write a port trace (format 1) for `python -m parity check TRACE`. std only.
//!
//!     mod microgpt_trace;                                   // this file beside main.rs
//!     let mut trace = microgpt_trace::Trace::open("run.jsonl").unwrap(); // "-": stdout
//!     trace.meta("my Rust port", n_layer, n_embd, n_head, block_size, &chars, num_steps,
//!                0.01, 0.85, 0.99, 1e-8, "float64");        // chars: the vocabulary in id order
//!     trace.init(&params.iter().map(|p| p.data()).collect::<Vec<f64>>());
//!     for step in 0..num_steps {
//!         // ... forward, loss, loss.backward(); then, before Adam zeroes the gradients:
//!         trace.begin(step + 1, "grads"); for p in &params { trace.value(p.grad()); } trace.end();
//!         trace.step(step + 1, doc, loss.data());
//!         // ... Adam update; then the updated weights:
//!         trace.begin(step + 1, "params"); for p in &params { trace.value(p.data()); } trace.end();
//!     }
//!     trace.close();
//! Parameters go in the seed's order: wte, wpe, lm_head, then per layer attn_wq, attn_wk, attn_wv, attn_wo,
//! mlp_fc1, mlp_fc2, each row by row (not a HashMap's order). Arrays may be &[f64] or &[f32]. Numbers are
//! printed exactly: as f64, or as f32 after meta dtype "float32"; nan and inf as NaN, Infinity, -Infinity.
//! A failed write panics ("microgpt trace: ...").
#![allow(dead_code)]
use std::fs::File;
use std::io::{self, BufWriter, Write};

pub struct Trace {
    out: Box<dyn Write>,
    f32: bool,
    n: usize,
    rows: bool,
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

impl Trace {
    pub fn open(path: &str) -> io::Result<Trace> {
        let out: Box<dyn Write> = if path == "-" { Box::new(io::stdout()) } else { Box::new(File::create(path)?) };
        Ok(Trace { out: Box::new(BufWriter::new(out)), f32: false, n: 0, rows: false })
    }

    fn put(&mut self, text: &str) {
        self.out.write_all(text.as_bytes()).expect("microgpt trace: write failed");
    }

    fn number(&self, x: f64) -> String {
        if x.is_nan() {
            "NaN".into()
        } else if x.is_infinite() {
            (if x > 0.0 { "Infinity" } else { "-Infinity" }).into()
        } else if self.f32 {
            format!("{:?}", x as f32) // the shortest digits that give back the same f32
        } else {
            format!("{:?}", x) // the shortest digits that give back the same f64; -0.0 stays -0.0
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn meta(&mut self, implementation: &str, n_layer: usize, n_embd: usize, n_head: usize, block_size: usize,
                chars: &str, steps: usize, lr: f64, beta1: f64, beta2: f64, eps: f64, dtype: &str) {
        let line = format!("{{\"meta\": {{\"format\": 1, \"implementation\": {}, \"n_layer\": {}, \"n_embd\": {}, \
            \"n_head\": {}, \"block_size\": {}, \"chars\": {}, \"steps\": {}, \"lr\": {:?}, \"beta1\": {:?}, \
            \"beta2\": {:?}, \"eps\": {:?}, \"dtype\": {}}}}}\n", json_string(implementation), n_layer, n_embd,
            n_head, block_size, json_string(chars), steps, lr, beta1, beta2, eps, json_string(dtype));
        self.put(&line);
        self.f32 = dtype == "float32";
    }

    /// Streaming: begin(k, "grads" | "params" | "logits") or begin(0, "init"); value(x) for each number
    /// (row() before each row of logits); end().
    pub fn begin(&mut self, k: usize, key: &str) {
        let head = if key == "init" { "{\"init\": [".to_string() } else { format!("{{\"step\": {}, \"{}\": [", k, key) };
        self.put(&head);
        self.rows = key == "logits";
        if self.rows { self.put("["); }
        self.n = 0;
    }

    pub fn value<T: Into<f64>>(&mut self, x: T) {
        let text = self.number(x.into());
        if self.n > 0 { self.put(", "); }
        self.n += 1;
        self.put(&text);
    }

    pub fn row(&mut self) {
        if self.n > 0 { self.put("], ["); }
        self.n = 0;
    }

    pub fn end(&mut self) {
        let tail = if self.rows { "]]}\n" } else { "]}\n" };
        self.put(tail);
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
        for r in rows {
            self.row();
            for &x in r { self.value(x); }
        }
        self.end();
    }

    pub fn step<T: Into<f64>>(&mut self, k: usize, doc: &str, loss: T) {
        let line = format!("{{\"step\": {}, \"doc\": {}, \"loss\": {}}}\n", k, json_string(doc), self.number(loss.into()));
        self.put(&line);
        self.out.flush().expect("microgpt trace: write failed");
    }

    pub fn close(mut self) {
        self.out.flush().expect("microgpt trace: write failed");
    }
}
