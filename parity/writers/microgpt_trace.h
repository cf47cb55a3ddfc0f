/* microgpt_trace.h: write a port trace (format 1) for `python -m parity check TRACE`. Header-only C99, stdio.
 *
 *   #include "microgpt_trace.h"
 *   MicrogptTrace t; trace_open(&t, "run.jsonl");            // "-": stdout; or trace_open_file(&t, fp)
 *   trace_meta(&t, "my C port", n_layer, n_embd, n_head, block_size, chars, num_steps,
 *              0.01, 0.85, 0.99, 1e-8, "float64");           // chars: the vocabulary in id order; "float32"?
 *   trace_begin(&t, 0, "init"); for (i..) trace_value(&t, params[i]->data); trace_end(&t);
 *   for (step = 0; step < num_steps; step++) {
 *       ... forward, loss, backward ...                     // then, before Adam zeroes the gradients:
 *       trace_begin(&t, step + 1, "grads"); for (i..) trace_value(&t, params[i]->grad); trace_end(&t);
 *       trace_step(&t, step + 1, doc, loss->data);
 *       ... Adam update ...                                 // then the updated weights:
 *       trace_begin(&t, step + 1, "params"); for (i..) trace_value(&t, params[i]->data); trace_end(&t);
 *   }
 *   trace_close(&t);
 * Arrays: trace_init(&t, v, n), trace_grads/trace_params(&t, k, v, n) take double *, the _f forms float *;
 * trace_logits(&t, k, v, rows, vocab). Parameters go in the seed's order: wte, wpe, lm_head, then per layer
 * attn_wq, attn_wk, attn_wv, attn_wo, mlp_fc1, mlp_fc2, each row by row. Numbers: %.17g, or %.9g of a float
 * after meta dtype "float32"; nan and inf as NaN, Infinity, -Infinity.
 */
#ifndef MICROGPT_TRACE_H
#define MICROGPT_TRACE_H
#include <stdio.h>

typedef struct { FILE *f; int own, f32, n, rows; } MicrogptTrace;

static inline int trace_open_file(MicrogptTrace *t, FILE *f) {
    t->f = f; t->own = 0; t->f32 = 0; t->n = 0; t->rows = 0;
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
static inline void trace_number(MicrogptTrace *t, double x) {
    char buf[40];
    if (x != x) { fputs("NaN", t->f); return; }
    if (x > 1.7976931348623157e308) { fputs("Infinity", t->f); return; }
    if (x < -1.7976931348623157e308) { fputs("-Infinity", t->f); return; }
    if (t->f32) snprintf(buf, sizeof buf, "%.9g", (double)(float)x);
    else snprintf(buf, sizeof buf, "%.17g", x);
    fputs(buf[0] == '-' && buf[1] == '0' && !buf[2] ? "-0.0" : buf, t->f); /* JSON's -0 reads as +0 */
}
static inline void trace_meta(MicrogptTrace *t, const char *implementation, int n_layer, int n_embd,
                              int n_head, int block_size, const char *chars, int steps, double lr,
                              double beta1, double beta2, double eps, const char *dtype) {
    const char *a = dtype, *b = "float32";
    while (*a && *a == *b) { a++; b++; }
    t->f32 = *a == *b;
    fputs("{\"meta\": {\"format\": 1, \"implementation\": ", t->f);
    trace_string(t, implementation);
    fprintf(t->f, ", \"n_layer\": %d, \"n_embd\": %d, \"n_head\": %d, \"block_size\": %d, \"chars\": ",
            n_layer, n_embd, n_head, block_size);
    trace_string(t, chars);
    fprintf(t->f, ", \"steps\": %d, \"lr\": %.17g, \"beta1\": %.17g, \"beta2\": %.17g, \"eps\": %.17g, "
            "\"dtype\": ", steps, lr, beta1, beta2, eps);
    trace_string(t, dtype);
    fputs("}}\n", t->f);
}
/* Streaming: trace_begin(t, k, "grads" | "params" | "logits"), or (t, 0, "init"); then trace_value for
 * each number (and trace_row before each row of logits); then trace_end. */
static inline void trace_begin(MicrogptTrace *t, int k, const char *key) {
    if (key[0] == 'i') fputs("{\"init\": [", t->f);
    else fprintf(t->f, "{\"step\": %d, \"%s\": [", k, key);
    t->rows = key[0] == 'l';
    if (t->rows) fputc('[', t->f);
    t->n = 0;
}
static inline void trace_value(MicrogptTrace *t, double x) {
    if (t->n++) fputs(", ", t->f);
    trace_number(t, x);
}
static inline void trace_row(MicrogptTrace *t) {
    if (t->n) fputs("], [", t->f);
    t->n = 0;
}
static inline void trace_end(MicrogptTrace *t) { fputs(t->rows ? "]]}\n" : "]}\n", t->f); }

static inline void trace_step(MicrogptTrace *t, int k, const char *doc, double loss) {
    fprintf(t->f, "{\"step\": %d, \"doc\": ", k);
    trace_string(t, doc);
    fputs(", \"loss\": ", t->f);
    trace_number(t, loss);
    fputs("}\n", t->f);
    fflush(t->f);
}
static inline void trace_array(MicrogptTrace *t, int k, const char *key, const double *d, const float *f,
                               long n) {
    long i;
    trace_begin(t, k, key);
    for (i = 0; i < n; i++) trace_value(t, d ? d[i] : f[i]);
    trace_end(t);
}
static inline void trace_init(MicrogptTrace *t, const double *v, long n) { trace_array(t, 0, "init", v, 0, n); }
static inline void trace_init_f(MicrogptTrace *t, const float *v, long n) { trace_array(t, 0, "init", 0, v, n); }
static inline void trace_grads(MicrogptTrace *t, int k, const double *v, long n) {
    trace_array(t, k, "grads", v, 0, n);
}
static inline void trace_grads_f(MicrogptTrace *t, int k, const float *v, long n) {
    trace_array(t, k, "grads", 0, v, n);
}
static inline void trace_params(MicrogptTrace *t, int k, const double *v, long n) {
    trace_array(t, k, "params", v, 0, n);
}
static inline void trace_params_f(MicrogptTrace *t, int k, const float *v, long n) {
    trace_array(t, k, "params", 0, v, n);
}
/* logits: rows (one per position) x vocab numbers, row by row */
static inline void trace_logits(MicrogptTrace *t, int k, const double *v, long rows, long vocab) {
    long i;
    trace_begin(t, k, "logits");
    for (i = 0; i < rows * vocab; i++) {
        if (i % vocab == 0) trace_row(t);
        trace_value(t, v[i]);
    }
    trace_end(t);
}
static inline int trace_close(MicrogptTrace *t) { /* 0, or EOF if a write failed */
    int bad = fflush(t->f) != 0 || ferror(t->f);
    if (t->own && fclose(t->f) != 0) bad = 1;
    t->f = 0;
    return bad ? EOF : 0;
}
#endif
