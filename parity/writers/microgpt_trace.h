/* microgpt_trace.h: write a port trace (format 1) for `python -m parity check TRACE`. Header-only C99, stdio.
 *
 *   #include "microgpt_trace.h"
 *   MicrogptTrace t; trace_open(&t, "run.jsonl");            // "-": stdout; or trace_open_file(&t, fp)
 *   trace_meta(&t, "my C port", n_layer, n_embd, n_head, block_size, chars, num_steps,
 *              0.01, 0.85, 0.99, 1e-8, "float64");           // chars: the vocabulary in id order; "float32"?
 *   for (m..) trace_matrix(&t, 0, "init", name[m], data[m], rows[m], cols[m]);  // each matrix by name, any order
 *   for (step = 0; step < num_steps; step++) {
 *       ... forward, loss, backward ...                     // then, before Adam zeroes the gradients:
 *       for (m..) trace_matrix(&t, step + 1, "grads", name[m], grad[m], rows[m], cols[m]);
 *       trace_step(&t, step + 1, doc, loss->data);          // or trace_step_lr(.., lr_t): the lr it used
 *       ... Adam update ...                                 // then the updated weights:
 *       for (m..) trace_matrix(&t, step + 1, "params", name[m], data[m], rows[m], cols[m]);
 *   }
 *   trace_close(&t);
 * A variant, before trace_meta: trace_variant_string(&t, "activation", "relu2"), trace_variant_number(&t, "beta1",
 * 0.9), trace_variant_bool(&t, "tie_embeddings", 1), trace_variant_int(&t, "docs_per_step", 2); other facts than
 * meta's arguments: trace_meta_number(&t, "weight_decay", 0.1), trace_meta_int(&t, "bos", 0). Several documents
 * a step: trace_step_docs(&t, step + 1, docs, n_docs, loss->data, lr_t) (docs: const char *const *). A matrix by
 * name (wte, wpe, lm_head, layer0.attn_wq, ...: a hash map's order is fine; other names: check --names FILE):
 * trace_matrix(&t, k, "grads" | "params", name, v, rows, cols) (k 0 and "init" for the initial weights), v: the
 * doubles row by row (trace_matrix_f: floats); streamed: trace_begin_matrix(&t, k, key, name), then per row
 * trace_row and trace_value per number, trace_end. One flat array instead: trace_init(&t, v, n), trace_grads and
 * trace_params(&t, k, v, n) (_f: float *), in the seed's order: wte, wpe, lm_head, then per layer attn_wq,
 * attn_wk, attn_wv, attn_wo, mlp_fc1, mlp_fc2, each row by row (or trace_begin(&t, k, "grads"), trace_value...,
 * trace_end). trace_logits(&t, k, v, rows, vocab): a row per position. Numbers: %.17g, or %.9g of a float after
 * meta dtype "float32"; nan and inf as NaN, Infinity, -Infinity. C++ too: trace_matrix(&t, k, "grads",
 * name.c_str(), v.data(), rows, cols).
 */
#ifndef MICROGPT_TRACE_H
#define MICROGPT_TRACE_H
#include <stdio.h>

typedef struct { char key[24], value[40]; int kind; } MicrogptTraceKey; /* kind: 1 a fact, 2 variant; +4 string */
typedef struct { FILE *f; int own, f32, n, rows, meta, bad, nkeys; MicrogptTraceKey keys[24]; } MicrogptTrace;

static inline int trace_open_file(MicrogptTrace *t, FILE *f) {
    t->f = f; t->own = 0; t->f32 = 0; t->n = 0; t->rows = 0; t->meta = 0; t->bad = 0; t->nkeys = 0;
    return f ? 0 : -1;
}
static inline int trace_open(MicrogptTrace *t, const char *path) { /* 0, or -1 (errno says why) */
    if (path[0] == '-' && !path[1]) return trace_open_file(t, stdout);
    if (trace_open_file(t, fopen(path, "w")) != 0) return -1;
    t->own = 1;
    return 0;
}
static inline void trace_string(MicrogptTrace *t, const char *s) {
    fputc('"', t->f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { fputc('\\', t->f); fputc(c, t->f); }
        else if (c < 0x20) fprintf(t->f, "\\u%04x", c);
        else fputc(c, t->f);
    }
    fputc('"', t->f);
}
static inline const char *trace_format(char *buf, double x, int f32) { /* buf: 40 chars */
    if (x != x) return "NaN";
    if (x > 1.7976931348623157e308) return "Infinity";
    if (x < -1.7976931348623157e308) return "-Infinity";
    if (f32) snprintf(buf, 40, "%.9g", (double)(float)x);
    else snprintf(buf, 40, "%.17g", x);
    return buf[0] == '-' && buf[1] == '0' && !buf[2] ? "-0.0" : buf; /* JSON's -0 reads as +0 */
}
static inline void trace_number(MicrogptTrace *t, double x) { char buf[40]; fputs(trace_format(buf, x, t->f32), t->f); }
/* Before trace_meta, written in the order called: facts (weight_decay, grad_clip, norm_eps; bos, eos) and meta.variant.
 * 0, or -1 (and trace_close fails) after trace_meta, past 24 keys, a key over 23 bytes or a string over 39. */
static inline int trace_key(MicrogptTrace *t, int kind, const char *key, const char *value, double x) {
    MicrogptTraceKey *d = &t->keys[t->nkeys < 24 ? t->nkeys : 23];
    char v[40];
    if (t->meta || t->nkeys == 24 || snprintf(d->key, sizeof d->key, "%s", key) >= (int)sizeof d->key
        || snprintf(d->value, sizeof d->value, "%s", value ? value : trace_format(v, x, 0)) >= (int)sizeof d->value)
        return t->bad = -1;
    d->kind = kind; t->nkeys++;
    return 0;
}
static inline int trace_meta_number(MicrogptTrace *t, const char *key, double x) { return trace_key(t, 1, key, 0, x); }
static inline int trace_meta_int(MicrogptTrace *t, const char *key, long n) { return trace_key(t, 1, key, 0, n); }
static inline int trace_variant_number(MicrogptTrace *t, const char *key, double x) {
    return trace_key(t, 2, key, 0, x); }
static inline int trace_variant_int(MicrogptTrace *t, const char *key, long n) { return trace_key(t, 2, key, 0, n); }
static inline int trace_variant_bool(MicrogptTrace *t, const char *key, int b) {
    return trace_key(t, 2, key, b ? "true" : "false", 0); }
static inline int trace_variant_string(MicrogptTrace *t, const char *key, const char *s) {
    return trace_key(t, 6, key, s, 0); }
static inline void trace_meta(MicrogptTrace *t, const char *implementation, int n_layer, int n_embd,
                              int n_head, int block_size, const char *chars, int steps, double lr,
                              double beta1, double beta2, double eps, const char *dtype) {
    const char *a = dtype, *b = "float32";
    int i, v = 0;
    while (*a && *a == *b) { a++; b++; }
    fputs("{\"meta\": {\"format\": 1, \"implementation\": ", t->f);
    trace_string(t, implementation);
    fprintf(t->f, ", \"n_layer\": %d, \"n_embd\": %d, \"n_head\": %d, \"block_size\": %d, \"chars\": ",
            n_layer, n_embd, n_head, block_size);
    trace_string(t, chars);
    fprintf(t->f, ", \"steps\": %d, \"lr\": %.17g, \"beta1\": %.17g, \"beta2\": %.17g, \"eps\": %.17g, "
            "\"dtype\": ", steps, lr, beta1, beta2, eps);
    trace_string(t, dtype);
    for (i = 0; i < 2 * t->nkeys; i++) { /* the facts, then the variant */
        MicrogptTraceKey *d = &t->keys[i % t->nkeys];
        if ((d->kind & 1) != (i < t->nkeys)) continue;
        fputs(i < t->nkeys || v++ ? ", " : ", \"variant\": {", t->f);
        trace_string(t, d->key); fputs(": ", t->f);
        if (d->kind & 4) trace_string(t, d->value); else fputs(d->value, t->f);
    }
    fputs(v ? "}}}\n" : "}}\n", t->f);
    t->f32 = *a == *b; t->meta = 1;
}
/* Streaming: trace_begin(t, k, "grads" | "params" | "logits") or (t, 0, "init"); trace_value per number
 * (trace_row before each row of logits); trace_end. */
static inline void trace_begin(MicrogptTrace *t, int k, const char *key) {
    if (key[0] == 'i') fputs("{\"init\": [", t->f);
    else fprintf(t->f, "{\"step\": %d, \"%s\": [", k, key);
    t->rows = key[0] == 'l';
    if (t->rows) fputc('[', t->f);
    t->n = 0;
}
static inline void trace_value(MicrogptTrace *t, double x) { if (t->n++) fputs(", ", t->f); trace_number(t, x); }
static inline void trace_row(MicrogptTrace *t) { if (t->n) fputs("], [", t->f); t->n = 0; }
static inline void trace_end(MicrogptTrace *t) { fputs(t->rows ? t->rows > 1 ? "]]}}\n" : "]]}\n" : "]}\n", t->f); }
static inline void trace_begin_matrix(MicrogptTrace *t, int k, const char *key, const char *name) {
    if (key[0] == 'i') fputs("{\"init\": {", t->f); else fprintf(t->f, "{\"step\": %d, \"%s\": {", k, key);
    trace_string(t, name);
    fputs(": [[", t->f); t->rows = 2; t->n = 0;
}
/* n < 0: one document, "doc"; else n of them, "docs". lr: the learning rate the update used, or 0 for none. */
static inline void trace_step_line(MicrogptTrace *t, int k, const char *const *docs, int n, double loss,
                                   const double *lr) {
    char v[40];
    int i;
    fprintf(t->f, "{\"step\": %d, \"doc%s", k, n < 0 ? "\": " : "s\": [");
    for (i = 0; i < (n < 0 ? 1 : n); i++) { if (i) fputs(", ", t->f); trace_string(t, docs[i]); }
    fputs(n < 0 ? ", \"loss\": " : "], \"loss\": ", t->f);
    trace_number(t, loss);
    if (lr) fprintf(t->f, ", \"lr\": %s", trace_format(v, *lr, 0));
    fputs("}\n", t->f);
    fflush(t->f);
}
static inline void trace_step(MicrogptTrace *t, int k, const char *doc, double loss) {
    trace_step_line(t, k, &doc, -1, loss, 0); }
static inline void trace_step_lr(MicrogptTrace *t, int k, const char *doc, double loss, double lr) {
    trace_step_line(t, k, &doc, -1, loss, &lr); }
static inline void trace_step_docs(MicrogptTrace *t, int k, const char *const *docs, int n, double loss, double lr) {
    trace_step_line(t, k, docs, n, loss, &lr); }
static inline void trace_array(MicrogptTrace *t, int k, const char *key, const double *d, const float *f, long n) {
    long i;
    trace_begin(t, k, key);
    for (i = 0; i < n; i++) trace_value(t, d ? d[i] : f[i]);
    trace_end(t);
}
static inline void trace_init(MicrogptTrace *t, const double *v, long n) { trace_array(t, 0, "init", v, 0, n); }
static inline void trace_init_f(MicrogptTrace *t, const float *v, long n) { trace_array(t, 0, "init", 0, v, n); }
static inline void trace_grads(MicrogptTrace *t, int k, const double *v, long n) { trace_array(t, k, "grads", v, 0, n); }
static inline void trace_grads_f(MicrogptTrace *t, int k, const float *v, long n) { trace_array(t, k, "grads", 0, v, n); }
static inline void trace_params(MicrogptTrace *t, int k, const double *v, long n) { trace_array(t, k, "params", v, 0, n); }
static inline void trace_params_f(MicrogptTrace *t, int k, const float *v, long n) { trace_array(t, k, "params", 0, v, n); }
static inline void trace_rows(MicrogptTrace *t, const double *d, const float *f, long rows, long cols) {
    long i;
    for (i = 0; i < rows * cols; i++) { if (i % cols == 0) trace_row(t); trace_value(t, d ? d[i] : f[i]); }
    trace_end(t);
}
static inline void trace_logits(MicrogptTrace *t, int k, const double *v, long rows, long vocab) {
    trace_begin(t, k, "logits"); trace_rows(t, v, 0, rows, vocab); }
static inline void trace_matrix(MicrogptTrace *t, int k, const char *key, const char *name, const double *v, long rows,
                                long cols) { trace_begin_matrix(t, k, key, name); trace_rows(t, v, 0, rows, cols); }
static inline void trace_matrix_f(MicrogptTrace *t, int k, const char *key, const char *name, const float *v,
                                  long rows, long cols) {
    trace_begin_matrix(t, k, key, name); trace_rows(t, 0, v, rows, cols); }
static inline int trace_close(MicrogptTrace *t) { /* 0, or EOF if a write (or a declaration) failed */
    int bad = fflush(t->f) != 0 || ferror(t->f) || t->bad;
    if (t->own && fclose(t->f) != 0) bad = 1;
    t->f = 0;
    return bad ? EOF : 0;
}
#endif
