// Writes a variant trace given as plain text (tests/test_writers.py: one item a line) through microgpt_trace.rs:
// declared facts and variant keys, then steps with an lr and over several documents.
mod microgpt_trace;
use std::env;
use std::fs;

fn main() {
    let args: Vec<String> = env::args().collect();
    let text = fs::read_to_string(&args[1]).expect("input");
    let mut lines = text.split('\n');
    let mut next = || lines.next().expect("input ended early").to_string();
    let mut trace = microgpt_trace::Trace::open(&args[2]).expect("open");
    let int = |s: String| s.parse::<usize>().unwrap();
    let num = |s: String| s.parse::<f64>().unwrap();
    let dtype = next();
    let (n_layer, n_embd, n_head, block_size, steps) = (int(next()), int(next()), int(next()), int(next()), int(next()));
    let chars = next();
    let (lr, beta1, beta2, eps) = (num(next()), num(next()), num(next()), num(next()));
    for _ in 0..int(next()) { // facts: number or int
        let (kind, key) = (next(), next());
        if kind == "int" { trace.meta_int(&key, int(next())) } else { trace.meta_number(&key, num(next())) }
    }
    for _ in 0..int(next()) { // the variant: string, number, bool or int
        let (kind, key) = (next(), next());
        match kind.as_str() {
            "string" => trace.variant_str(&key, &next()),
            "int" => trace.variant_int(&key, int(next())),
            "bool" => trace.variant_bool(&key, next() == "true"),
            _ => trace.variant_number(&key, num(next())),
        }
    }
    trace.meta("variant \"rust\"", n_layer, n_embd, n_head, block_size, &chars, steps, lr, beta1, beta2, eps, &dtype);
    let init: Vec<f64> = (0..int(next())).map(|_| num(next())).collect();
    trace.init(&init);
    for k in 1..=int(next()) { // forms: doc, doc_lr, docs_lr
        let form = next();
        if form == "docs_lr" {
            let docs: Vec<String> = (0..int(next())).map(|_| next()).collect();
            let loss = num(next());
            trace.step_docs(k, &docs, loss, num(next()));
        } else {
            let doc = next();
            let loss = num(next());
            if form == "doc_lr" { trace.step_lr(k, &doc, loss, num(next())) } else { trace.step(k, &doc, loss) }
        }
    }
    trace.close();
}
