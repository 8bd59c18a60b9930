package org.tensorflow.lite;

/** Compile-time stand-in for LiteRT's Interpreter: there is no native runtime on the JVM, so loading fails. */
public final class Interpreter implements AutoCloseable {
    public static class Options {
        public Options setNumThreads(int numThreads) { return this; }
    }

    public Interpreter(java.nio.ByteBuffer model, Options options) {
        throw new UnsupportedOperationException("LiteRT stub: no native runtime on the JVM");
    }

    public void runForMultipleInputsOutputs(Object[] inputs, java.util.Map<Integer, Object> outputs) {
        throw new UnsupportedOperationException("LiteRT stub");
    }

    @Override
    public void close() {}
}
