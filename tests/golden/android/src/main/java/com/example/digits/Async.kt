package com.example.digits

import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.suspendCancellableCoroutine
import kotlin.coroutines.EmptyCoroutineContext
import kotlin.coroutines.resume
import kotlin.coroutines.resumeWithException

/**
 * [FallbackPredictor.predict] on [dispatcher] (default `Dispatchers.IO`), suspending the caller. Cancelling the
 * calling coroutine cancels the call under way (the gRPC call is cancelled, nothing is retried) and resumes the
 * caller with a `CancellationException` at once.
 */
suspend fun FallbackPredictor.predictSuspending(
    given: List<Tensor>,
    dispatcher: CoroutineDispatcher = Dispatchers.IO
): Prediction = suspendCancellableCoroutine { continuation ->
    val cancellation = Cancellation()
    continuation.invokeOnCancellation { cancellation.cancel() }
    dispatcher.dispatch(EmptyCoroutineContext, Runnable {
        try {
            val prediction = predict(given, cancellation)
            continuation.resume(prediction)
        } catch (e: Throwable) {
            continuation.resumeWithException(e)
        }
    })
}
