// Writes a trace given as plain text (tests/test_writers.py: one item a line) through MicrogptTrace.java, each
// matrix under its name in the order the input gives it: init as rows (double[][] or float[][]), params flat with
// cols (double[] or float[]), grads streamed (beginMatrix, row, value).
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;

public class Named {
    private static String[] lines;
    private static int at;
    private static boolean f32;

    private static String next() { return lines[at++]; }
    private static int integer() { return Integer.parseInt(next()); }
    private static double number() { return Double.parseDouble(next()); } // NaN, Infinity, -Infinity too

    private static void matrices(MicrogptTrace trace, int k, String key) {
        for (int j = 0, m = integer(); j < m; j++) {
            String name = next();
            int rows = integer(), cols = integer();
            double[] v = new double[rows * cols];
            float[] w = new float[rows * cols];
            for (int i = 0; i < v.length; i++) { v[i] = number(); w[i] = (float) v[i]; }
            if (key.equals("grads")) {
                trace.beginMatrix(k, key, name);
                for (int i = 0; i < v.length; i++) {
                    if (i % cols == 0) trace.row();
                    trace.value(f32 ? w[i] : v[i]);
                }
                trace.end();
            } else if (key.equals("init")) {
                double[][] r = new double[rows][cols];
                float[][] r32 = new float[rows][cols];
                for (int i = 0; i < v.length; i++) { r[i / cols][i % cols] = v[i]; r32[i / cols][i % cols] = w[i]; }
                if (f32) trace.matrix(k, key, name, r32); else trace.matrix(k, key, name, r);
            } else if (f32) {
                trace.matrix(k, key, name, w, cols);
            } else {
                trace.matrix(k, key, name, v, cols);
            }
        }
    }

    public static void main(String[] args) throws IOException {
        lines = new String(Files.readAllBytes(Paths.get(args[0])), StandardCharsets.UTF_8).split("\n", -1);
        try (MicrogptTrace trace = new MicrogptTrace(args[1])) {
            String dtype = next();
            f32 = dtype.equals("float32");
            int nLayer = integer(), nEmbd = integer(), nHead = integer(), blockSize = integer(), steps = integer();
            String chars = next();
            double lr = number(), beta1 = number(), beta2 = number(), eps = number();
            trace.meta("named \"java\"", nLayer, nEmbd, nHead, blockSize, chars, steps, lr, beta1, beta2, eps, dtype);
            matrices(trace, 0, "init");
            for (int k = 1, s = integer(); k <= s; k++) {
                String doc = next();
                double loss = number();
                matrices(trace, k, "grads");
                trace.step(k, doc, f32 ? (float) loss : loss);
                matrices(trace, k, "params");
            }
        }
    }
}
