// microgpt_trace.mjs: write a port trace (format 1) for `python -m parity check TRACE`. No dependencies
// (node:fs; Node, Bun, Deno). Types for TypeScript: microgpt_trace.d.mts beside this file.
//
//   import { openTrace } from './microgpt_trace.mjs';
//   const trace = openTrace('run.jsonl');                   // '-': stdout
//   trace.meta({ implementation: 'my JS port', n_layer: nLayer, n_embd: nEmbd, n_head: nHead,
//     block_size: blockSize, chars: uchars.join(''), steps: numSteps, lr: learningRate, beta1, beta2,
//     eps: epsAdam, dtype: 'float64',                      // and, for a variant (facts, then the intent):
//     weight_decay: 0.1, variant: { activation: 'relu2', lr_schedule: 'cosine', docs_per_step: 2 } });
//   const rows = (m, get) => m.map((row) => row.map(get)); // a matrix of Values as numbers
//   for (const [name, m] of Object.entries(stateDict)) trace.matrix(0, 'init', name, rows(m, p => p.data));
//   for (let step = 0; step < numSteps; step++) {
//     ... forward, loss, loss.backward();                   // then, before the Adam loop zeroes the gradients:
//     for (const [name, m] of Object.entries(stateDict)) trace.matrix(step + 1, 'grads', name, rows(m, p => p.grad));
//     trace.step(step + 1, doc, loss.data, lr);             // lr (optional): the rate the update used;
//                                                           // doc: a list of them for several documents a step
//     ... Adam update ...                                   // then the updated weights:
//     for (const [name, m] of Object.entries(stateDict)) trace.matrix(step + 1, 'params', name, rows(m, p => p.data));
//   }
//   trace.close();
// A matrix (wte, wpe, lm_head, layer0.attn_wq, ...; the port's own names: meta({ ..., names: { tok_emb: 'wte' } }))
// is its rows, or a flat array row by row and its column count: trace.matrix(k, 'grads', name, flat, cols);
// streamed: trace.beginMatrix(k, key, name), then row() before each row and value(x) per number, end(). One flat
// list instead, in the seed's order (wte, wpe, lm_head, then per layer attn_wq, attn_wk, attn_wv, attn_wo, mlp_fc1,
// mlp_fc2, each row by row): trace.init(values), trace.grads(k, values), trace.params(k, values), or trace.begin(k,
// 'grads'), value(x)..., end() ('init' takes no step: trace.begin(0, 'init')). Numbers are doubles, written exactly
// (String(x)); NaN and infinities as NaN, Infinity, -Infinity.
import { closeSync, openSync, writeSync } from 'node:fs';

function num(x, what = 'a number') {
  if (typeof x !== 'number') throw new TypeError(`microgpt trace: expected ${what}, got ${typeof x}`);
  return Object.is(x, -0) ? '-0.0' : String(x); // String(NaN) is NaN, String(-Infinity) is -Infinity
}

const FACTS = ['weight_decay', 'grad_clip', 'norm_eps', 'bos', 'eos']; // meta keys beyond the config and Adam's
const INTS = ['bos', 'eos', 'docs_per_step'];

function declared(key, v, fact) { // a fact: a number (bos, eos: an integer); a variant's key: a string or boolean too
  if (!fact && (typeof v === 'string' || typeof v === 'boolean')) return JSON.stringify(v);
  if (INTS.includes(key) && !Number.isInteger(v)) throw new TypeError(`microgpt trace: ${key} must be an integer`);
  return num(v, `${fact ? 'a number' : 'a string, a boolean or a number'} for ${key}`);
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

  // Facts beyond the config and Adam's (weight_decay, grad_clip, norm_eps, bos, eos) go in the order given, then
  // variant: { key: value, ... }, the deviations from microgpt the port means to have, in its own order.
  meta({ implementation = '', n_layer, n_embd, n_head, block_size, chars, steps,
    lr = 0.01, beta1 = 0.85, beta2 = 0.99, eps = 1e-8, dtype = 'float64', variant, names, ...rest }) {
    const m = { format: 1, implementation, n_layer, n_embd, n_head, block_size, chars, steps, lr, beta1, beta2,
      eps, dtype };
    const fields = Object.entries(m).map(([key, v]) => {
      if (v === undefined) throw new TypeError(`microgpt trace: meta needs ${key}`);
      return `"${key}": ${typeof v === 'number' ? num(v) : JSON.stringify(v)}`;
    });
    const pair = (fact) => ([key, v]) => `${JSON.stringify(key)}: ${declared(key, v, fact)}`;
    fields.push(...Object.entries(rest).filter(([key, v]) => FACTS.includes(key) && v != null).map(pair(true)));
    if (variant != null) fields.push(`"variant": {${Object.entries(variant).map(pair(false)).join(', ')}}`);
    if (names != null) fields.push(`"names": ${JSON.stringify(names)}`); // { portName: 'wte', ... }
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

  // one matrix under its name: k 0 with 'init', or step k's 'grads' / 'params'; then row() and value(x), end()
  beginMatrix(k, key, name) {
    const head = key === 'init' ? '{"init": ' : `{"step": ${k}, ${JSON.stringify(key)}: `;
    this.buf = `${head}{${JSON.stringify(name)}: [[`;
    this.rows = 2;
    this.n = 0;
  }

  // values: the rows, or with cols a flat array row by row
  matrix(k, key, name, values, cols) {
    this.beginMatrix(k, key, name);
    let i = 0;
    for (const x of values) {
      if (cols === undefined) {
        this.row();
        for (const y of x) this.value(y);
      } else {
        if (i++ % cols === 0) this.row();
        this.value(x);
      }
    }
    this.end();
  }

  row() {
    if (this.n) this.buf += '], [';
    this.n = 0;
  }

  end() {
    this.write(this.buf + (this.rows === 2 ? ']]}}\n' : this.rows ? ']]}\n' : ']}\n'));
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

  // doc: the document, or a list of them (a step over several documents: "docs"); lr: the rate the update used
  step(k, doc, loss, lr) {
    const docs = Array.isArray(doc) ? `"docs": [${doc.map((d) => JSON.stringify(d)).join(', ')}]`
      : `"doc": ${JSON.stringify(doc)}`;
    const rate = lr === undefined ? '' : `, "lr": ${num(lr)}`;
    this.write(`{"step": ${k}, ${docs}, "loss": ${num(loss)}${rate}}\n`);
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
