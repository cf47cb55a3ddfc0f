// Writes a variant trace given as plain text (tests/test_writers.py: one item a line) through microgpt_trace.mjs:
// declared facts and variant keys, then steps with an lr and over several documents.
import { readFileSync } from 'node:fs';
import { openTrace } from './microgpt_trace.mjs';

const lines = readFileSync(process.argv[2], 'utf8').split('\n');
let at = 0;
const next = () => lines[at++];
const int = () => parseInt(next(), 10);
const num = () => Number(next());
const trace = openTrace(process.argv[3]);
const dtype = next();
const [n_layer, n_embd, n_head, block_size, steps] = [int(), int(), int(), int(), int()];
const chars = next();
const [lr, beta1, beta2, eps] = [num(), num(), num(), num()];
const value = (kind) => (kind === 'string' ? next() : kind === 'bool' ? next() === 'true' : kind === 'int' ? int() : num());
const facts = {};
for (let i = 0, n = int(); i < n; i++) { const kind = next(); facts[next()] = value(kind); }
let variant;
for (let i = 0, n = int(); i < n; i++) { const kind = next(); (variant ??= {})[next()] = value(kind); }
trace.meta({ implementation: 'variant "js"', n_layer, n_embd, n_head, block_size, chars, steps, lr, beta1, beta2, eps,
  dtype, ...facts, variant });
trace.init(Array.from({ length: int() }, num));
for (let k = 1, n = int(); k <= n; k++) {
  const form = next();
  const doc = form === 'docs_lr' ? Array.from({ length: int() }, next) : next();
  const loss = num();
  if (form === 'doc') trace.step(k, doc, loss);
  else trace.step(k, doc, loss, num());
}
trace.close();
