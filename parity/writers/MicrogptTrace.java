/* MicrogptTrace.java: write a port trace (format 1) for `python -m parity check TRACE`. No dependencies.
 * Add your own `package ...;` line when the port has one.
 *
 *   MicrogptTrace trace = new MicrogptTrace("run.jsonl");        // "-": System.out
 *   trace.meta("my Java port", nLayer, nEmbd, nHead, blockSize, chars, numSteps,
 *              0.01, 0.85, 0.99, 1e-8, "float64");               // chars: the vocabulary in id order
 *   trace.begin(0, "init"); for (Value p : params) trace.value(p.data); trace.end();
 *   for (int step = 0; step < numSteps; step++) {
 *       // ... forward, loss, loss.backward(); then, before Adam zeroes the gradients:
 *       trace.begin(step + 1, "grads"); for (Value p : params) trace.value(p.grad); trace.end();
 *       trace.step(step + 1, doc, loss.data);
 *       // ... Adam update; then the updated weights:
 *       trace.begin(step + 1, "params"); for (Value p : params) trace.value(p.data); trace.end();
 *   }
 *   trace.close();
 * Arrays: init(double[] | float[]), grads/params(k, double[] | float[]), logits(k, double[][]). Parameters go
 * in the seed's order: wte, wpe, lm_head, then per layer attn_wq, attn_wk, attn_wv, attn_wo, mlp_fc1, mlp_fc2,
 * each row by row (not a HashMap's order). Numbers: Double.toString, or Float.toString after meta dtype
 * "float32"; NaN, Infinity, -Infinity as such. Write errors surface as UncheckedIOException.
 */
import java.io.*;
import java.nio.charset.StandardCharsets;

public final class MicrogptTrace implements AutoCloseable {
    private final Writer out;
    private final boolean stdout;
    private boolean f32, rows;
    private int n;

    public MicrogptTrace(String path) throws IOException {
        stdout = path.equals("-");
        OutputStream os = stdout ? System.out : new FileOutputStream(path);
        out = new BufferedWriter(new OutputStreamWriter(os, StandardCharsets.UTF_8), 1 << 16);
    }

    private void put(String s) {
        try { out.write(s); } catch (IOException e) { throw new UncheckedIOException(e); }
    }

    private void flush() {
        try { out.flush(); } catch (IOException e) { throw new UncheckedIOException(e); }
    }

    private static String string(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    private String number(double x) {
        return f32 ? Float.toString((float) x) : Double.toString(x); // NaN, Infinity, -0.0, 1.0E-7: all JSON
    }

    public void meta(String implementation, int nLayer, int nEmbd, int nHead, int blockSize, String chars,
                     int steps, double lr, double beta1, double beta2, double eps, String dtype) {
        put("{\"meta\": {\"format\": 1, \"implementation\": " + string(implementation) + ", \"n_layer\": " + nLayer
            + ", \"n_embd\": " + nEmbd + ", \"n_head\": " + nHead + ", \"block_size\": " + blockSize + ", \"chars\": "
            + string(chars) + ", \"steps\": " + steps + ", \"lr\": " + lr + ", \"beta1\": " + beta1 + ", \"beta2\": "
            + beta2 + ", \"eps\": " + eps + ", \"dtype\": " + string(dtype) + "}}\n");
        f32 = dtype.equals("float32");
    }

    /** Streaming: begin(k, "grads" | "params" | "logits") or begin(0, "init"); value(x) for each number
     *  (row() before each row of logits); end(). */
    public void begin(int k, String key) {
        put(key.equals("init") ? "{\"init\": [" : "{\"step\": " + k + ", " + string(key) + ": [");
        rows = key.equals("logits");
        if (rows) put("[");
        n = 0;
    }

    public void value(double x) {
        if (n++ > 0) put(", ");
        put(number(x));
    }

    public void row() {
        if (n > 0) put("], [");
        n = 0;
    }

    public void end() {
        put(rows ? "]]}\n" : "]}\n");
        flush();
    }

    public void init(double[] v) { begin(0, "init"); for (double x : v) value(x); end(); }
    public void init(float[] v) { begin(0, "init"); for (float x : v) value(x); end(); }
    public void grads(int k, double[] v) { begin(k, "grads"); for (double x : v) value(x); end(); }
    public void grads(int k, float[] v) { begin(k, "grads"); for (float x : v) value(x); end(); }
    public void params(int k, double[] v) { begin(k, "params"); for (double x : v) value(x); end(); }
    public void params(int k, float[] v) { begin(k, "params"); for (float x : v) value(x); end(); }

    public void logits(int k, double[][] rowsOfLogits) {
        begin(k, "logits");
        for (double[] r : rowsOfLogits) {
            row();
            for (double x : r) value(x);
        }
        end();
    }

    public void step(int k, String doc, double loss) {
        put("{\"step\": " + k + ", \"doc\": " + string(doc) + ", \"loss\": " + number(loss) + "}\n");
        flush();
    }

    @Override
    public void close() {
        flush();
        if (!stdout) {
            try { out.close(); } catch (IOException e) { throw new UncheckedIOException(e); }
        }
    }
}
