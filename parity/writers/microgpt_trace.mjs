// microgpt_trace.mjs: write a port trace (format 1) for `python -m parity check TRACE`. No dependencies
// (node:fs; Node, Bun, Deno). Types for TypeScript: microgpt_trace.d.mts beside this file.
//
//   import { openTrace } from './microgpt_trace.mjs';
//   const trace = openTrace('run.jsonl');                   // '-': stdout
//   trace.meta({ implementation: 'my JS port', n_layer: nLayer, n_embd: nEmbd, n_head: nHead,
//     block_size: blockSize, chars: uchars.join(''), steps: numSteps, lr: learningRate, beta1, beta2,
//     eps: epsAdam, dtype: 'float64' });
//   trace.init(params.map(p => p.data));
//   for (let step = 0; step < numSteps; step++) {
//     ... forward, loss, loss.backward();
//     trace.grads(step + 1, params.map(p => p.grad));       // before the Adam loop zeroes them
//     trace.step(step + 1, doc, loss.data);
//     ... Adam update ...
//     trace.params(step + 1, params.map(p => p.data));      // after the update
//   }
//   trace.close();
// Streaming, without building an array: trace.begin(step + 1, 'grads'); for (const p of params)
// trace.value(p.grad); trace.end();  ('init' takes no step: trace.begin(0, 'init')). Parameters go in the
// seed's order: wte, wpe, lm_head, then per layer attn_wq, attn_wk, attn_wv, attn_wo, mlp_fc1, mlp_fc2, each
// row by row. Numbers are doubles, written exactly (String(x)); NaN and infinities as NaN, Infinity, -Infinity.
import { closeSync, openSync, writeSync } from 'node:fs';

function num(x) {
  if (typeof x !== 'number') throw new TypeError(`microgpt trace: expected a number, got ${typeof x}`);
  return Object.is(x, -0) ? '-0.0' : String(x); // String(NaN) is NaN, String(-Infinity) is -Infinity
}

export class Trace {
  /** @param {string} path a file, or '-' for standard output */
  constructor(path = '-') {
    this.fd = path === '-' ? null : openSync(path, 'w');
    this.buf = '';
    this.n = 0;
    this.rows = false;
    this.closed = false;
  }

  write(text) {
    if (this.closed) throw new Error('microgpt trace: written after close()');
    if (this.fd === null) process.stdout.write(text); // in order with the port's own console.log
    else writeSync(this.fd, text);
  }

  meta({ implementation = '', n_layer, n_embd, n_head, block_size, chars, steps,
    lr = 0.01, beta1 = 0.85, beta2 = 0.99, eps = 1e-8, dtype = 'float64' }) {
    const m = { format: 1, implementation, n_layer, n_embd, n_head, block_size, chars, steps, lr, beta1, beta2,
      eps, dtype };
    const fields = Object.entries(m).map(([key, v]) => {
      if (v === undefined) throw new TypeError(`microgpt trace: meta needs ${key}`);
      return `"${key}": ${typeof v === 'number' ? num(v) : JSON.stringify(v)}`;
    });
    this.write(`{"meta": {${fields.join(', ')}}}\n`);
  }

  begin(k, key) {
    this.buf = key === 'init' ? '{"init": [' : `{"step": ${k}, ${JSON.stringify(key)}: [`;
    this.rows = key === 'logits';
    if (this.rows) this.buf += '[';
    this.n = 0;
  }

  value(x) {
    this.buf += (this.n++ ? ', ' : '') + num(x);
  }

  row() {
    if (this.n) this.buf += '], [';
    this.n = 0;
  }

  end() {
    this.write(this.buf + (this.rows ? ']]}\n' : ']}\n'));
    this.buf = '';
  }

  array(k, key, values) {
    this.begin(k, key);
    for (const x of values) this.value(x);
    this.end();
  }

  init(values) { this.array(0, 'init', values); }
  grads(k, values) { this.array(k, 'grads', values); }
  params(k, values) { this.array(k, 'params', values); }

  logits(k, rows) {
    this.begin(k, 'logits');
    for (const r of rows) {
      this.row();
      for (const x of r) this.value(x);
    }
    this.end();
  }

  step(k, doc, loss) {
    this.write(`{"step": ${k}, "doc": ${JSON.stringify(doc)}, "loss": ${num(loss)}}\n`);
  }

  close() {
    if (this.fd !== null && !this.closed) closeSync(this.fd);
    this.closed = true;
  }
}

/** @param {string} path a file, or '-' for standard output */
export function openTrace(path = '-') {
  return new Trace(path);
}
