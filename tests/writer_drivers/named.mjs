// Writes a trace given as plain text (tests/test_writers.py: one item a line) through microgpt_trace.mjs, each
// matrix under its name in the order the input gives it: init as rows, params flat with cols, grads streamed.
import { readFileSync } from 'node:fs';
import { openTrace } from './microgpt_trace.mjs';

const lines = readFileSync(process.argv[2], 'utf8').split('\n');
let at = 0;
const next = () => lines[at++];
const int = () => parseInt(next(), 10);
const num = () => Number(next());
const trace = openTrace(process.argv[3]);
const dtype = next();
const f32 = dtype === 'float32';
const real = () => (f32 ? Math.fround(num()) : num());
const [n_layer, n_embd, n_head, block_size, steps] = [int(), int(), int(), int(), int()];
const chars = next();
const [lr, beta1, beta2, eps] = [num(), num(), num(), num()];
trace.meta({ implementation: 'named "js"', n_layer, n_embd, n_head, block_size, chars, steps, lr, beta1, beta2, eps,
  dtype });
const matrices = (k, key, form) => {
  for (let j = 0, m = int(); j < m; j++) {
    const [name, rows, cols] = [next(), int(), int()];
    if (form === 'rows') {
      trace.matrix(k, key, name, Array.from({ length: rows }, () => Array.from({ length: cols }, real)));
    } else if (form === 'flat') {
      trace.matrix(k, key, name, Float64Array.from({ length: rows * cols }, real), cols);
    } else {
      trace.beginMatrix(k, key, name);
      for (let i = 0; i < rows * cols; i++) {
        if (i % cols === 0) trace.row();
        trace.value(real());
      }
      trace.end();
    }
  }
};
matrices(0, 'init', 'rows');
for (let k = 1, n = int(); k <= n; k++) {
  const doc = next();
  const loss = real();
  matrices(k, 'grads', 'streamed');
  trace.step(k, doc, loss);
  matrices(k, 'params', 'flat');
}
trace.close();
