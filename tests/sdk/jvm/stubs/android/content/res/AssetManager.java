package android.content.res;

/** Compile-time stand-in for Android's AssetManager. */
public final class AssetManager {
    public java.io.InputStream open(String fileName) throws java.io.IOException {
        throw new java.io.FileNotFoundException("android stub: no assets on the JVM");
    }
}
