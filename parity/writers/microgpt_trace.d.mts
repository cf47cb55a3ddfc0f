// Types for microgpt_trace.mjs: TypeScript finds them for `import { openTrace } from './microgpt_trace.mjs';`
// (tsc, module nodenext or bundler; bun, deno and tsx run the .mjs itself).
export type Numbers = Iterable<number>; // number[], Float64Array, Float32Array, ...
// meta.variant: the deviations from microgpt the port means to have (its intent), written in the order given
export interface TraceVariant {
  activation?: 'relu' | 'relu2' | 'gelu' | 'gelu_tanh' | 'silu';
  lr_schedule?: 'linear' | 'cosine' | 'constant' | 'custom';
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weight_decay?: number;
  grad_clip?: number; // the max global L2 norm of the gradients
  norm_eps?: number; // rmsnorm's eps
  tie_embeddings?: boolean; // lm_head is wte: no lm_head in the parameters
  docs_per_step?: number; // an integer >= 1
  loss_reduction?: 'token_mean' | 'doc_mean';
}
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
  // facts about the port beyond the above, written after them in the order given
  weight_decay?: number; // default 0
  grad_clip?: number; // the max global L2 norm of the gradients; none when absent
  norm_eps?: number; // rmsnorm's eps; default 1e-5
  bos?: number; // an integer, the id of BOS; default chars.length (0: chars holds the other tokens in id order)
  eos?: number; // an integer, a separate end token's id; default bos
  variant?: TraceVariant;
  names?: Record<string, string>; // the port's names for its matrices: { tok_emb: 'wte', ... }
}
export type TraceKey = 'init' | 'grads' | 'params' | 'logits';
export type MatrixKey = 'init' | 'grads' | 'params'; // 'init' with k 0
export declare class Trace {
  constructor(path?: string); // a file, or '-' (the default) for standard output
  meta(meta: TraceMeta): void;
  init(values: Numbers): void; // every parameter before training, in the seed's order
  // k counts from 1; doc: a list of documents for a step over several; lr: the learning rate the update used
  step(k: number, doc: string | readonly string[], loss: number, lr?: number): void;
  grads(k: number, values: Numbers): void; // after backward, before the gradients are zeroed
  params(k: number, values: Numbers): void; // after the update
  logits(k: number, rows: Iterable<Numbers>): void; // one row per position
  // one matrix under its name (wte, layer0.attn_wq, ...), in any order: its rows, or a flat array row by row and cols
  matrix(k: number, key: MatrixKey, name: string, rows: Iterable<Numbers>): void;
  matrix(k: number, key: MatrixKey, name: string, values: Numbers, cols: number): void;
  beginMatrix(k: number, key: MatrixKey, name: string): void; // streaming: row() before each row, value()..., end()
  begin(k: number, key: TraceKey): void; // streaming: begin, value()..., end(); row() between logits rows
  value(x: number): void;
  row(): void;
  end(): void;
  close(): void;
}
export declare function openTrace(path?: string): Trace;
