// Re-emits a trace given as plain text (tests/test_writers.py: one item a line) through microgpt_trace.rs.
mod microgpt_trace;
use std::env;
use std::fs;

fn main() {
    let args: Vec<String> = env::args().collect();
    let text = fs::read_to_string(&args[1]).expect("input");
    let mut lines = text.split('\n');
    let mut next = || lines.next().expect("input ended early").to_string();
    let mut trace = microgpt_trace::Trace::open(&args[2]).expect("open");
    let dtype = next();
    let f32 = dtype == "float32";
    let int = |s: String| s.parse::<usize>().unwrap();
    let num = |s: String| s.parse::<f64>().unwrap(); // exact for repr decimals, NaN, Infinity, -Infinity
    let (n_layer, n_embd, n_head, block_size, steps) = (int(next()), int(next()), int(next()), int(next()), int(next()));
    let chars = next();
    let (lr, beta1, beta2, eps) = (num(next()), num(next()), num(next()), num(next()));
    trace.meta("driver \"rust\" \\ tab\t nl\n ctl\u{1} é ✓", n_layer, n_embd, n_head, block_size, &chars, steps,
               lr, beta1, beta2, eps, &dtype);
    let n = int(next());
    let init: Vec<f64> = (0..n).map(|_| num(next())).collect();
    if f32 {
        trace.init(&init.iter().map(|&x| x as f32).collect::<Vec<f32>>());
    } else {
        trace.init(&init);
    }
    let n_steps = int(next());
    for k in 1..=n_steps {
        let doc = next();
        let loss = num(next());
        let g = int(next());
        if g > 0 { // the streaming form, as a port holding Value structs writes it
            trace.begin(k, "grads");
            for _ in 0..g {
                let x = num(next());
                if f32 { trace.value(x as f32) } else { trace.value(x) }
            }
            trace.end();
        }
        if f32 { trace.step(k, &doc, loss as f32) } else { trace.step(k, &doc, loss) }
        let p = int(next());
        if p > 0 {
            let v: Vec<f64> = (0..p).map(|_| num(next())).collect();
            if f32 { trace.params(k, &v.iter().map(|&x| x as f32).collect::<Vec<f32>>()) } else { trace.params(k, &v) }
        }
        let r = int(next());
        if r > 0 {
            let vocab = int(next());
            let rows: Vec<Vec<f64>> = (0..r).map(|_| (0..vocab).map(|_| num(next())).collect()).collect();
            trace.logits(k, &rows);
        }
    }
    trace.close();
}
