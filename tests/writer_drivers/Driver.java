// Re-emits a trace given as plain text (tests/test_writers.py: one item a line) through MicrogptTrace.java.
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

public class Driver {
    static List<String> lines;
    static int at = 0;

    static String next() { return lines.get(at++); }
    static int integer() { return Integer.parseInt(next()); }
    static double num() { return Double.parseDouble(next()); } // exact for repr decimals, NaN, Infinity

    public static void main(String[] args) throws Exception {
        lines = Files.readAllLines(Path.of(args[0]), StandardCharsets.UTF_8);
        MicrogptTrace trace = new MicrogptTrace(args[1]);
        String dtype = next();
        boolean f32 = dtype.equals("float32");
        int nLayer = integer(), nEmbd = integer(), nHead = integer(), blockSize = integer(), steps = integer();
        String chars = next();
        double lr = num(), beta1 = num(), beta2 = num(), eps = num();
        trace.meta("driver \"java\" \\ tab\t nl\n ctl\u0001 é ✓", nLayer, nEmbd, nHead, blockSize, chars, steps,
                   lr, beta1, beta2, eps, dtype);
        int n = integer();
        double[] d = new double[n];
        float[] f = new float[n];
        for (int i = 0; i < n; i++) { d[i] = num(); f[i] = (float) d[i]; }
        if (f32) trace.init(f); else trace.init(d);
        int nSteps = integer();
        for (int k = 1; k <= nSteps; k++) {
            String doc = next();
            double loss = num();
            int g = integer();
            if (g > 0) { // the streaming form, as a port holding Value objects writes it
                trace.begin(k, "grads");
                for (int i = 0; i < g; i++) { double x = num(); trace.value(f32 ? (float) x : x); }
                trace.end();
            }
            trace.step(k, doc, f32 ? (float) loss : loss);
            int p = integer();
            if (p > 0) {
                for (int i = 0; i < p; i++) { d[i] = num(); f[i] = (float) d[i]; }
                if (f32) trace.params(k, f); else trace.params(k, d);
            }
            int r = integer();
            if (r > 0) {
                int vocab = integer();
                double[][] rows = new double[r][vocab];
                for (int i = 0; i < r; i++) for (int j = 0; j < vocab; j++) rows[i][j] = num();
                trace.logits(k, rows);
            }
        }
        trace.close();
    }
}
