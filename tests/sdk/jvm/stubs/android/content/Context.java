package android.content;

/** Compile-time stand-in for Android's Context: only what the generated SDK calls. */
public abstract class Context {
    public abstract android.content.res.AssetManager getAssets();
}
