/* Writes a variant trace given as plain text (tests/test_writers.py: one item a line) through microgpt_trace.h:
 * declared facts and variant keys, then steps with an lr and over several documents. C99 and C++17 alike. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "microgpt_trace.h"

static FILE *in;
static char line[4096];

static char *next(void) {
    if (!fgets(line, sizeof line, in)) { fprintf(stderr, "variant: input ended early\n"); exit(3); }
    line[strcspn(line, "\n")] = 0;
    return line;
}
static long integer(void) { return strtol(next(), 0, 10); }
static double number(void) { return strtod(next(), 0); }

int main(int argc, char **argv) {
    MicrogptTrace t;
    char dtype[16], chars[256], kind[16], key[64], docs[8][256];
    const char *list[8];
    long n_layer, n_embd, n_head, block_size, steps, n, k, i, bad = 0;
    double lr, beta1, beta2, eps, loss, *init;
    if (argc != 3) { fprintf(stderr, "usage: variant INPUT TRACE\n"); return 2; }
    in = fopen(argv[1], "r");
    if (!in || trace_open(&t, argv[2]) != 0) { perror("variant"); return 3; }
    strcpy(dtype, next());
    n_layer = integer(); n_embd = integer(); n_head = integer(); block_size = integer(); steps = integer();
    strcpy(chars, next());
    lr = number(); beta1 = number(); beta2 = number(); eps = number();
    for (n = integer(), i = 0; i < n; i++) {  /* facts: number or int */
        strcpy(kind, next()); strcpy(key, next());
        if (!strcmp(kind, "int")) bad |= trace_meta_int(&t, key, integer());
        else bad |= trace_meta_number(&t, key, number());
    }
    for (n = integer(), i = 0; i < n; i++) {  /* the variant: string, number, bool or int */
        strcpy(kind, next()); strcpy(key, next());
        if (!strcmp(kind, "string")) bad |= trace_variant_string(&t, key, next());
        else if (!strcmp(kind, "int")) bad |= trace_variant_int(&t, key, integer());
        else if (!strcmp(kind, "bool")) bad |= trace_variant_bool(&t, key, !strcmp(next(), "true"));
        else bad |= trace_variant_number(&t, key, number());
    }
    trace_meta(&t, "variant \"c\"", (int)n_layer, (int)n_embd, (int)n_head, (int)block_size, chars, (int)steps,
               lr, beta1, beta2, eps, dtype);
    n = integer();
    init = (double *)malloc(sizeof(double) * (size_t)(n + 1));
    for (i = 0; i < n; i++) init[i] = number();
    trace_init(&t, init, n);
    free(init);
    for (n = integer(), k = 1; k <= n; k++) {  /* forms: doc, doc_lr, docs_lr */
        strcpy(kind, next());
        if (!strcmp(kind, "docs_lr")) {
            long count = integer();
            for (i = 0; i < count; i++) { strcpy(docs[i], next()); list[i] = docs[i]; }
            loss = number();
            trace_step_docs(&t, (int)k, list, (int)count, loss, number());
        } else {
            strcpy(docs[0], next());
            loss = number();
            if (!strcmp(kind, "doc_lr")) trace_step_lr(&t, (int)k, docs[0], loss, number());
            else trace_step(&t, (int)k, docs[0], loss);
        }
    }
    if (bad) fprintf(stderr, "variant: a declaration was refused\n");
    return trace_close(&t) == 0 ? 0 : 4;
}
