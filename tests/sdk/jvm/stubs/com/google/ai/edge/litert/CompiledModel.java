package com.google.ai.edge.litert;

import android.content.res.AssetManager;
import java.util.List;

/**
 * Compile-time stand-in for LiteRT's CompiledModel (litert/kotlin Model.kt, the signatures its @JvmOverloads
 * produce): there is no native runtime on the JVM, so creating one fails as a missing accelerator would.
 */
public final class CompiledModel implements AutoCloseable {
    public static final class Options {
        public Options(Accelerator... accelerators) {}
    }

    private CompiledModel() {}

    public static CompiledModel create(AssetManager assets, String assetName, Options options) throws LiteRtException {
        throw new LiteRtException("LiteRT stub: no native runtime on the JVM");
    }

    public static CompiledModel create(String filePath, Options options) throws LiteRtException {
        throw new LiteRtException("LiteRT stub: no native runtime on the JVM");
    }

    public List<TensorBuffer> createInputBuffers() throws LiteRtException { throw new LiteRtException("LiteRT stub"); }
    public List<TensorBuffer> createOutputBuffers() throws LiteRtException { throw new LiteRtException("LiteRT stub"); }
    public void run(List<TensorBuffer> inputs, List<TensorBuffer> outputs) throws LiteRtException {
        throw new LiteRtException("LiteRT stub");
    }

    @Override
    public void close() {}
}
