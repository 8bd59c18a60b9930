package com.google.ai.edge.litert;

/** Compile-time stand-in for LiteRT's TensorBuffer (litert/kotlin TensorBuffer.kt): same methods, no native side. */
public final class TensorBuffer implements AutoCloseable {
    private TensorBuffer() {}

    public void writeInt(int[] data) throws LiteRtException { throw new LiteRtException("LiteRT stub"); }
    public void writeFloat(float[] data) throws LiteRtException { throw new LiteRtException("LiteRT stub"); }
    public void writeInt8(byte[] data) throws LiteRtException { throw new LiteRtException("LiteRT stub"); }
    public void writeBoolean(boolean[] data) throws LiteRtException { throw new LiteRtException("LiteRT stub"); }
    public void writeLong(long[] data) throws LiteRtException { throw new LiteRtException("LiteRT stub"); }
    public int[] readInt() throws LiteRtException { throw new LiteRtException("LiteRT stub"); }
    public float[] readFloat() throws LiteRtException { throw new LiteRtException("LiteRT stub"); }
    public byte[] readInt8() throws LiteRtException { throw new LiteRtException("LiteRT stub"); }
    public boolean[] readBoolean() throws LiteRtException { throw new LiteRtException("LiteRT stub"); }
    public long[] readLong() throws LiteRtException { throw new LiteRtException("LiteRT stub"); }

    @Override
    public void close() {}
}
