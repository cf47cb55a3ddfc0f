/* Writes a trace given as plain text (tests/test_writers.py: one item a line) through microgpt_trace.h, each
 * matrix under its name in the order the input gives it: init and params whole (trace_matrix, trace_matrix_f for a
 * float32 trace), grads streamed (trace_begin_matrix, trace_row, trace_value). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "microgpt_trace.h"

static FILE *in;
static char line[1 << 12];
static double d[1 << 16];
static float f[1 << 16];
static int f32;

static char *next(void) {
    if (!fgets(line, sizeof line, in)) { fprintf(stderr, "named: input ended early\n"); exit(3); }
    line[strcspn(line, "\n")] = 0;
    return line;
}
static long integer(void) { return strtol(next(), 0, 10); }
static double number(void) { return strtod(next(), 0); }

static void matrices(MicrogptTrace *t, int k, const char *key, int streamed) {
    long m = integer(), j, i, rows, cols;
    char name[64];
    for (j = 0; j < m; j++) {
        strcpy(name, next()); rows = integer(); cols = integer();
        if (streamed) {
            trace_begin_matrix(t, k, key, name);
            for (i = 0; i < rows * cols; i++) {
                if (i % cols == 0) trace_row(t);
                if (f32) trace_value(t, strtof(next(), 0)); else trace_value(t, number());
            }
            trace_end(t);
            continue;
        }
        for (i = 0; i < rows * cols; i++) { d[i] = number(); f[i] = (float)d[i]; }
        if (f32) trace_matrix_f(t, k, key, name, f, rows, cols); else trace_matrix(t, k, key, name, d, rows, cols);
    }
}

int main(int argc, char **argv) {
    MicrogptTrace t;
    char dtype[16], chars[256], doc[256];
    long n_layer, n_embd, n_head, block_size, steps, s, k;
    double lr, beta1, beta2, eps, loss;
    if (argc != 3) { fprintf(stderr, "usage: named INPUT TRACE\n"); return 2; }
    in = fopen(argv[1], "r");
    if (!in || trace_open(&t, argv[2]) != 0) { perror("named"); return 3; }
    strcpy(dtype, next()); f32 = strcmp(dtype, "float32") == 0;
    n_layer = integer(); n_embd = integer(); n_head = integer(); block_size = integer(); steps = integer();
    strcpy(chars, next());
    lr = number(); beta1 = number(); beta2 = number(); eps = number();
    trace_meta(&t, "named \"c\"", (int)n_layer, (int)n_embd, (int)n_head, (int)block_size, chars, (int)steps, lr,
               beta1, beta2, eps, dtype);
    matrices(&t, 0, "init", 0);
    for (s = integer(), k = 1; k <= s; k++) {
        strcpy(doc, next());
        loss = number();
        matrices(&t, (int)k, "grads", 1);
        trace_step(&t, (int)k, doc, f32 ? (double)(float)loss : loss);
        matrices(&t, (int)k, "params", 0);
    }
    return trace_close(&t) == 0 ? 0 : 4;
}
