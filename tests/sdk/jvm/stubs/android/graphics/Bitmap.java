package android.graphics;

/** Compile-time stand-in for Android's Bitmap. */
public final class Bitmap {
    public int getWidth() { throw new UnsupportedOperationException("android stub"); }
    public int getHeight() { throw new UnsupportedOperationException("android stub"); }
    public void getPixels(int[] pixels, int offset, int stride, int x, int y, int width, int height) {
        throw new UnsupportedOperationException("android stub");
    }
}
