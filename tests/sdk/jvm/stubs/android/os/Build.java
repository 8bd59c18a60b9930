package android.os;

/** Compile-time stand-in for android.os.Build. */
public final class Build {
    public static final class VERSION {
        public static final int SDK_INT = 0;
    }
}
