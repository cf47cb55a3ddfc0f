// Writes a variant trace given as plain text (tests/test_writers.py: one item a line) through MicrogptTrace.java:
// declared facts and variant keys, then steps with an lr and over several documents.
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

public class Variant {
    static List<String> lines;
    static int at = 0;

    static String next() { return lines.get(at++); }
    static int integer() { return Integer.parseInt(next()); }
    static double num() { return Double.parseDouble(next()); }

    public static void main(String[] args) throws Exception {
        lines = Files.readAllLines(Path.of(args[0]), StandardCharsets.UTF_8);
        try (MicrogptTrace trace = new MicrogptTrace(args[1])) {
            String dtype = next();
            int nLayer = integer(), nEmbd = integer(), nHead = integer(), blockSize = integer(), steps = integer();
            String chars = next();
            double lr = num(), beta1 = num(), beta2 = num(), eps = num();
            for (int i = 0, n = integer(); i < n; i++) { // facts: number or int
                String kind = next(), key = next();
                if (kind.equals("int")) trace.metaInt(key, integer()); else trace.metaNumber(key, num());
            }
            for (int i = 0, n = integer(); i < n; i++) { // the variant: string, number, bool or int
                String kind = next(), key = next();
                switch (kind) {
                    case "string": trace.variant(key, next()); break;
                    case "int": trace.variant(key, integer()); break;
                    case "bool": trace.variant(key, next().equals("true")); break;
                    default: trace.variant(key, num());
                }
            }
            trace.meta("variant \"java\"", nLayer, nEmbd, nHead, blockSize, chars, steps, lr, beta1, beta2, eps, dtype);
            double[] init = new double[integer()];
            for (int i = 0; i < init.length; i++) init[i] = num();
            trace.init(init);
            for (int k = 1, n = integer(); k <= n; k++) { // forms: doc, doc_lr, docs_lr
                String form = next();
                if (form.equals("docs_lr")) {
                    List<String> docs = new ArrayList<>();
                    for (int i = 0, count = integer(); i < count; i++) docs.add(next());
                    double loss = num();
                    if (k % 2 == 0) trace.step(k, docs, loss, num()); // a List<String>, or a String[]
                    else trace.step(k, docs.toArray(new String[0]), loss, num());
                } else {
                    String doc = next();
                    double loss = num();
                    if (form.equals("doc_lr")) trace.step(k, doc, loss, num()); else trace.step(k, doc, loss);
                }
            }
        }
    }
}
