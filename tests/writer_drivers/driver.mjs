// Re-emits a trace given as plain text (tests/test_writers.py: one item a line) through microgpt_trace.mjs.
import { readFileSync } from 'node:fs';
import { openTrace } from './microgpt_trace.mjs';

const lines = readFileSync(process.argv[2], 'utf8').split('\n');
let at = 0;
const next = () => lines[at++];
const int = () => parseInt(next(), 10);
const num = () => Number(next()); // exact for repr decimals, NaN, Infinity, -Infinity
const trace = openTrace(process.argv[3]);
const dtype = next();
const f32 = dtype === 'float32';
const [n_layer, n_embd, n_head, block_size, steps] = [int(), int(), int(), int(), int()];
const chars = next();
const [lr, beta1, beta2, eps] = [num(), num(), num(), num()];
trace.meta({ implementation: 'driver "js" \\ tab\t nl\n ctl\x01 é ✓', n_layer, n_embd, n_head, block_size, chars,
  steps, lr, beta1, beta2, eps, dtype });
const array = (count) => {
  const v = f32 ? new Float32Array(count) : new Float64Array(count);
  for (let i = 0; i < count; i++) v[i] = num();
  return v;
};
trace.init(array(int()));
const nSteps = int();
for (let k = 1; k <= nSteps; k++) {
  const doc = next();
  const loss = f32 ? Math.fround(num()) : num();
  const g = int();
  if (g) { // the streaming form, as a port holding Value objects writes it
    trace.begin(k, 'grads');
    for (let i = 0; i < g; i++) trace.value(f32 ? Math.fround(num()) : num());
    trace.end();
  }
  trace.step(k, doc, loss);
  const p = int();
  if (p) trace.params(k, array(p));
  const r = int();
  if (r) {
    const vocab = int();
    trace.logits(k, Array.from({ length: r }, () => Array.from({ length: vocab }, num)));
  }
}
trace.close();
