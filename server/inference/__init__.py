"""Open Inference Protocol v2 (KServe) serving of ONNX models through onnxruntime."""
