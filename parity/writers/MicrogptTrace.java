/* MicrogptTrace.java: write a port trace (format 1) for `python -m parity check TRACE`. No dependencies.
 * Add your own `package ...;` line when the port has one.
 *
 *   MicrogptTrace trace = new MicrogptTrace("run.jsonl");        // "-": System.out
 *   trace.meta("my Java port", nLayer, nEmbd, nHead, blockSize, chars, numSteps,
 *              0.01, 0.85, 0.99, 1e-8, "float64");               // chars: the vocabulary in id order
 *   for (var e : state.entrySet()) trace.matrix(0, "init", e.getKey(), data(e.getValue())); // by name, any order
 *   for (int step = 0; step < numSteps; step++) {
 *       // ... forward, loss, loss.backward(); then, before Adam zeroes the gradients:
 *       for (var e : state.entrySet()) trace.matrix(step + 1, "grads", e.getKey(), grad(e.getValue()));
 *       trace.step(step + 1, doc, loss.data);                  // or step(.., lr): the lr the update used
 *       // ... Adam update; then the updated weights:
 *       for (var e : state.entrySet()) trace.matrix(step + 1, "params", e.getKey(), data(e.getValue()));
 *   }
 *   trace.close();
 * A matrix (wte, wpe, lm_head, layer0.attn_wq, ...; other names: parity check --names FILE; a HashMap's order
 * is fine): matrix(k, key, name, double[][] | float[][]) or (k, key, name, double[] | float[] row by row, cols), or
 * streamed: beginMatrix(k, key, name), row() before each row, value(x) per number, end(); key "init" (k 0),
 * "grads" or "params". One flat list instead: init(double[] | float[]), grads/params(k, double[] | float[]), or
 * begin(k, "grads"), value(x)..., end(), in the seed's order: wte, wpe, lm_head, then per layer attn_wq, attn_wk,
 * attn_wv, attn_wo, mlp_fc1, mlp_fc2, each row by row. logits(k, double[][]). Numbers: Double.toString, or
 * Float.toString after meta dtype "float32"; NaN, Infinity, -Infinity as such. Write errors: UncheckedIOException.
 * A variant, before meta: trace.variant("activation", "relu2"); variant("beta1", 0.9); variant("tie_embeddings",
 * true); variant("docs_per_step", 2); facts beyond meta's arguments: metaNumber("weight_decay", 0.1),
 * metaInt("bos", 0). Several documents a step: step(k, docs, loss, lr) (a String[] or a List<String>).
 */
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.StringJoiner;

public final class MicrogptTrace implements AutoCloseable {
    private final Writer out;
    private final boolean stdout;
    private boolean f32, metaWritten;
    private int n, rows; // rows: 1 logits, 2 a named matrix
    private final StringBuilder facts = new StringBuilder(), variant = new StringBuilder(); // ", \"key\": value"...

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

    /** Before meta, each written in the order called: facts beyond meta's arguments (weight_decay, grad_clip,
     *  norm_eps; bos, eos) and meta.variant, the deviations from microgpt the port means to have. */
    public void metaNumber(String key, double x) { declare(facts, key, Double.toString(x)); }
    public void metaInt(String key, long n) { declare(facts, key, Long.toString(n)); }
    public void variant(String key, String s) { declare(variant, key, string(s)); }
    public void variant(String key, double x) { declare(variant, key, Double.toString(x)); }
    public void variant(String key, boolean b) { declare(variant, key, Boolean.toString(b)); }
    public void variant(String key, long n) { declare(variant, key, Long.toString(n)); }

    private void declare(StringBuilder to, String key, String value) {
        if (metaWritten) throw new IllegalStateException("microgpt trace: " + key + " declared after meta");
        to.append(", ").append(string(key)).append(": ").append(value);
    }

    public void meta(String implementation, int nLayer, int nEmbd, int nHead, int blockSize, String chars,
                     int steps, double lr, double beta1, double beta2, double eps, String dtype) {
        put("{\"meta\": {\"format\": 1, \"implementation\": " + string(implementation) + ", \"n_layer\": " + nLayer
            + ", \"n_embd\": " + nEmbd + ", \"n_head\": " + nHead + ", \"block_size\": " + blockSize + ", \"chars\": "
            + string(chars) + ", \"steps\": " + steps + ", \"lr\": " + lr + ", \"beta1\": " + beta1 + ", \"beta2\": "
            + beta2 + ", \"eps\": " + eps + ", \"dtype\": " + string(dtype) + facts
            + (variant.length() > 0 ? ", \"variant\": {" + variant.substring(2) + "}" : "") + "}}\n");
        f32 = dtype.equals("float32");
        metaWritten = true;
    }

    /** Streaming: begin(k, "grads" | "params" | "logits") or begin(0, "init"); value(x) for each number
     *  (row() before each row of logits); end(). */
    public void begin(int k, String key) {
        put(key.equals("init") ? "{\"init\": [" : "{\"step\": " + k + ", " + string(key) + ": [");
        rows = key.equals("logits") ? 1 : 0;
        if (rows > 0) put("[");
        n = 0;
    }

    /** One matrix under its name: beginMatrix(0, "init", name) or (k, "grads" | "params", name); row() before each
     *  row, value(x) per number; end(). */
    public void beginMatrix(int k, String key, String name) {
        put((key.equals("init") ? "{" : "{\"step\": " + k + ", ") + string(key) + ": {" + string(name) + ": [[");
        rows = 2;
        n = 0;
    }

    public void matrix(int k, String key, String name, double[][] m) {
        beginMatrix(k, key, name);
        for (double[] r : m) { row(); for (double x : r) value(x); }
        end();
    }
    public void matrix(int k, String key, String name, float[][] m) {
        beginMatrix(k, key, name);
        for (float[] r : m) { row(); for (float x : r) value(x); }
        end();
    }
    public void matrix(int k, String key, String name, double[] v, int cols) {
        beginMatrix(k, key, name);
        for (int i = 0; i < v.length; i++) { if (i % cols == 0) row(); value(v[i]); }
        end();
    }
    public void matrix(int k, String key, String name, float[] v, int cols) {
        beginMatrix(k, key, name);
        for (int i = 0; i < v.length; i++) { if (i % cols == 0) row(); value(v[i]); }
        end();
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
        put(rows == 2 ? "]]}}\n" : rows == 1 ? "]]}\n" : "]}\n");
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

    public void step(int k, String doc, double loss) { stepLine(k, "\"doc\": " + string(doc), loss, ""); }

    /** lr: the learning rate the step's update used; docs: a step over several documents ("docs") */
    public void step(int k, String doc, double loss, double lr) {
        stepLine(k, "\"doc\": " + string(doc), loss, ", \"lr\": " + lr);
    }
    public void step(int k, String[] docs, double loss, double lr) { step(k, Arrays.asList(docs), loss, lr); }
    public void step(int k, List<String> docs, double loss, double lr) {
        StringJoiner list = new StringJoiner(", ", "\"docs\": [", "]");
        for (String d : docs) list.add(string(d));
        stepLine(k, list.toString(), loss, ", \"lr\": " + lr);
    }

    private void stepLine(int k, String docs, double loss, String lr) {
        put("{\"step\": " + k + ", " + docs + ", \"loss\": " + number(loss) + lr + "}\n");
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
