// Writes a trace given as plain text (tests/test_writers.py: one item a line) through microgpt_trace.h compiled as
// C++17: a C++ port's way, its matrices in a std::unordered_map<std::string, Matrix> written in the map's own order
// (std::string names, std::vector values; float ones for a float32 trace).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <unordered_map>
#include <vector>
#include "microgpt_trace.h"

struct Matrix {
    long rows = 0, cols = 0;
    std::vector<double> data;
    std::vector<float> data_f;
};
using State = std::unordered_map<std::string, Matrix>;

static std::ifstream in;
static std::string next() {
    std::string s;
    if (!std::getline(in, s)) { std::cerr << "named: input ended early\n"; std::exit(3); }
    return s;
}
static long integer() { return std::stol(next()); }
static double number() { return std::strtod(next().c_str(), nullptr); }

static State read_state() {
    State state;
    for (long m = integer(), j = 0; j < m; j++) {
        std::string name = next();
        Matrix &x = state[name];
        x.rows = integer();
        x.cols = integer();
        for (long i = 0; i < x.rows * x.cols; i++) {
            x.data.push_back(number());
            x.data_f.push_back(static_cast<float>(x.data.back()));
        }
    }
    return state;
}

static void write_state(MicrogptTrace &t, int k, const char *key, const State &state, bool f32) {
    for (const auto &[name, m] : state) {
        if (f32) trace_matrix_f(&t, k, key, name.c_str(), m.data_f.data(), m.rows, m.cols);
        else trace_matrix(&t, k, key, name.c_str(), m.data.data(), m.rows, m.cols);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) { std::cerr << "usage: named INPUT TRACE\n"; return 2; }
    in.open(argv[1]);
    MicrogptTrace t;
    if (!in || trace_open(&t, argv[2]) != 0) { std::perror("named"); return 3; }
    std::string dtype = next();
    bool f32 = dtype == "float32";
    int n_layer = integer(), n_embd = integer(), n_head = integer(), block_size = integer(), steps = integer();
    std::string chars = next();
    double lr = number(), beta1 = number(), beta2 = number(), eps = number();
    trace_meta(&t, "named \"c++\"", n_layer, n_embd, n_head, block_size, chars.c_str(), steps, lr, beta1, beta2, eps,
               dtype.c_str());
    write_state(t, 0, "init", read_state(), f32);
    for (long s = integer(), k = 1; k <= s; k++) {
        std::string doc = next();
        double loss = number();
        write_state(t, static_cast<int>(k), "grads", read_state(), f32);
        trace_step(&t, static_cast<int>(k), doc.c_str(), f32 ? static_cast<double>(static_cast<float>(loss)) : loss);
        write_state(t, static_cast<int>(k), "params", read_state(), f32);
    }
    return trace_close(&t) == 0 ? 0 : 4;
}
