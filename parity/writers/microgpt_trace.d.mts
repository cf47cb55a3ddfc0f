// Types for microgpt_trace.mjs: TypeScript finds them for `import { openTrace } from './microgpt_trace.mjs';`
// (tsc, module nodenext or bundler; bun, deno and tsx run the .mjs itself).
export type Numbers = Iterable<number>; // number[], Float64Array, Float32Array, ...
export interface TraceMeta {
  implementation?: string; // free text: the port's name, language, version
  n_layer: number;
  n_embd: number;
  n_head: number;
  block_size: number;
  chars: string; // the vocabulary's characters in id order; BOS is id chars.length
  steps: number; // the number of training steps (the length of the linear lr decay)
  lr?: number; // default 0.01
  beta1?: number; // default 0.85
  beta2?: number; // default 0.99
  eps?: number; // default 1e-8
  dtype?: 'float64' | 'float32'; // default 'float64'
}
export type TraceKey = 'init' | 'grads' | 'params' | 'logits';
export declare class Trace {
  constructor(path?: string); // a file, or '-' (the default) for standard output
  meta(meta: TraceMeta): void;
  init(values: Numbers): void; // every parameter before training, in the seed's order
  step(k: number, doc: string, loss: number): void; // k counts from 1
  grads(k: number, values: Numbers): void; // after backward, before the gradients are zeroed
  params(k: number, values: Numbers): void; // after the update
  logits(k: number, rows: Iterable<Numbers>): void; // one row per position
  begin(k: number, key: TraceKey): void; // streaming: begin, value()..., end(); row() between logits rows
  value(x: number): void;
  row(): void;
  end(): void;
  close(): void;
}
export declare function openTrace(path?: string): Trace;
