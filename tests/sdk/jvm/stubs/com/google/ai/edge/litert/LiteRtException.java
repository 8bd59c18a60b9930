package com.google.ai.edge.litert;

/** Compile-time stand-in for LiteRT's LiteRtException. */
public class LiteRtException extends Exception {
    public LiteRtException(String message) { super(message); }
}
