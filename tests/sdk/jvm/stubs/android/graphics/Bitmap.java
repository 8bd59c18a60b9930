package android.graphics;

/** Compile-time stand-in for Android's Bitmap (the JVM has none). */
public final class Bitmap {
    public enum Config { ALPHA_8, RGB_565, ARGB_4444, ARGB_8888, RGBA_F16, HARDWARE }

    public int getWidth() { throw new UnsupportedOperationException("android stub"); }
    public int getHeight() { throw new UnsupportedOperationException("android stub"); }
    public Config getConfig() { throw new UnsupportedOperationException("android stub"); }
    public Bitmap copy(Config config, boolean mutable) { throw new UnsupportedOperationException("android stub"); }
    public void recycle() { throw new UnsupportedOperationException("android stub"); }
    public void getPixels(int[] pixels, int offset, int stride, int x, int y, int width, int height) {
        throw new UnsupportedOperationException("android stub");
    }
}
