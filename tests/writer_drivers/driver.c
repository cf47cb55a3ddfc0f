/* Re-emits a trace given as plain text (tests/test_writers.py: one item a line) through microgpt_trace.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "microgpt_trace.h"

static FILE *in;
static char line[1 << 16];

static char *next(void) {
    if (!fgets(line, sizeof line, in)) { fprintf(stderr, "driver: input ended early\n"); exit(3); }
    line[strcspn(line, "\n")] = 0;
    return line;
}
static long integer(void) { return strtol(next(), 0, 10); }
static double number(void) { return strtod(next(), 0); }

int main(int argc, char **argv) {
    MicrogptTrace t;
    char dtype[16], chars[256], doc[256];
    long n_layer, n_embd, n_head, block_size, steps, n, s, k, i, count;
    double lr, beta1, beta2, eps, *d;
    float *f;
    int f32;
    if (argc != 3) { fprintf(stderr, "usage: driver INPUT TRACE\n"); return 2; }
    in = fopen(argv[1], "r");
    if (!in || trace_open(&t, argv[2]) != 0) { perror("driver"); return 3; }
    strcpy(dtype, next()); f32 = strcmp(dtype, "float32") == 0;
    n_layer = integer(); n_embd = integer(); n_head = integer(); block_size = integer(); steps = integer();
    strcpy(chars, next());
    lr = number(); beta1 = number(); beta2 = number(); eps = number();
    trace_meta(&t, "driver \"c\" \\ tab\t nl\n ctl\x01 é ✓", (int)n_layer, (int)n_embd, (int)n_head,
               (int)block_size, chars, (int)steps, lr, beta1, beta2, eps, dtype);
    n = integer();
    d = malloc(sizeof(double) * (size_t)(n > 4096 ? n : 4096));
    f = malloc(sizeof(float) * (size_t)(n > 4096 ? n : 4096));
    for (i = 0; i < n; i++) { d[i] = number(); f[i] = (float)d[i]; }
    if (f32) trace_init_f(&t, f, n); else trace_init(&t, d, n);
    s = integer();
    for (k = 1; k <= s; k++) {
        double loss;
        strcpy(doc, next());
        loss = number();
        count = integer();
        if (count) {  /* the streaming form, as a port holding Value structs writes it */
            trace_begin(&t, (int)k, "grads");
            for (i = 0; i < count; i++) { if (f32) trace_value(&t, strtof(next(), 0)); else trace_value(&t, number()); }
            trace_end(&t);
        }
        trace_step(&t, (int)k, doc, f32 ? (double)(float)loss : loss);
        count = integer();
        for (i = 0; i < count; i++) { d[i] = number(); f[i] = (float)d[i]; }
        if (count) { if (f32) trace_params_f(&t, (int)k, f, count); else trace_params(&t, (int)k, d, count); }
        count = integer();
        if (count) {
            long vocab = integer();
            for (i = 0; i < count * vocab; i++) d[i] = number();
            trace_logits(&t, (int)k, d, count, vocab);
        }
    }
    return trace_close(&t) == 0 ? 0 : 4;
}
