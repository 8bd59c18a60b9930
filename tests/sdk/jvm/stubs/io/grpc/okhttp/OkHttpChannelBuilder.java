package io.grpc.okhttp;

import io.grpc.ChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;

/**
 * JVM stand-in for grpc-okhttp's OkHttpChannelBuilder (Android's transport, not packaged by Debian): the two methods
 * the SDK calls, with grpc-netty underneath. The SDK's credentials (TLS, custom CA, insecure) pass through as given.
 */
public final class OkHttpChannelBuilder {
    private final NettyChannelBuilder delegate;

    private OkHttpChannelBuilder(NettyChannelBuilder delegate) { this.delegate = delegate; }

    public static OkHttpChannelBuilder forTarget(String target, ChannelCredentials creds) {
        return new OkHttpChannelBuilder(NettyChannelBuilder.forTarget(target, creds));
    }

    public ManagedChannel build() { return delegate.build(); }
}
