package com.google.ai.edge.litert;

/** Compile-time stand-in for LiteRT's Accelerator (litert/kotlin Common.kt). */
public enum Accelerator { NONE, CPU, GPU, NPU }
