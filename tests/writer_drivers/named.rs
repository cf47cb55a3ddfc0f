// Writes a trace given as plain text (tests/test_writers.py: one item a line) through microgpt_trace.rs, each matrix
// under its name in the order the input gives it: init as rows (matrix_rows), params flat with cols (matrix), grads
// streamed (begin_matrix, row, value); f32 for a float32 trace.
mod microgpt_trace;
use microgpt_trace::Trace;
use std::env;
use std::fs;

struct Input { lines: Vec<String>, at: usize }

impl Input {
    fn next(&mut self) -> String { self.at += 1; self.lines[self.at - 1].clone() }
    fn int(&mut self) -> usize { self.next().parse().unwrap() }
    fn num(&mut self) -> f64 { self.next().parse().unwrap() } // exact for repr decimals, NaN, Infinity, -Infinity
}

fn matrices(input: &mut Input, trace: &mut Trace, k: usize, key: &str, f32: bool) {
    for _ in 0..input.int() {
        let (name, rows, cols) = (input.next(), input.int(), input.int());
        let v: Vec<f64> = (0..rows * cols).map(|_| input.num()).collect();
        let v32: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        match key {
            "grads" => {
                trace.begin_matrix(k, key, &name);
                for i in 0..v.len() {
                    if i % cols == 0 { trace.row(); }
                    if f32 { trace.value(v32[i]) } else { trace.value(v[i]) }
                }
                trace.end();
            }
            "init" if f32 => trace.matrix_rows(k, key, &name, &v32.chunks(cols).collect::<Vec<&[f32]>>()),
            "init" => trace.matrix_rows(k, key, &name, &v.chunks(cols).map(|c| c.to_vec()).collect::<Vec<Vec<f64>>>()),
            _ if f32 => trace.matrix(k, key, &name, &v32, cols),
            _ => trace.matrix(k, key, &name, &v, cols),
        }
    }
}

fn main() {
    let args: Vec<String> = env::args().collect();
    let text = fs::read_to_string(&args[1]).expect("input");
    let mut input = Input { lines: text.split('\n').map(String::from).collect(), at: 0 };
    let mut trace = Trace::open(&args[2]).expect("open");
    let dtype = input.next();
    let f32 = dtype == "float32";
    let (n_layer, n_embd, n_head, block_size, steps) = (input.int(), input.int(), input.int(), input.int(), input.int());
    let chars = input.next();
    let (lr, beta1, beta2, eps) = (input.num(), input.num(), input.num(), input.num());
    trace.meta("named \"rust\"", n_layer, n_embd, n_head, block_size, &chars, steps, lr, beta1, beta2, eps, &dtype);
    matrices(&mut input, &mut trace, 0, "init", f32);
    for k in 1..=input.int() {
        let doc = input.next();
        let loss = input.num();
        matrices(&mut input, &mut trace, k, "grads", f32);
        if f32 { trace.step(k, &doc, loss as f32) } else { trace.step(k, &doc, loss) }
        matrices(&mut input, &mut trace, k, "params", f32);
    }
    trace.close();
}
