"""Split edge-cloud inference: candidate cuts on the model graph, a Neurosurgeon-style cost model, head/tail export.

``graph`` finds the cuts and builds head/tail modules, ``costs`` estimates each cut's latency (and energy),
``planner`` chooses one, ``export`` writes the head (the profile's format and precision), the ONNX tail and the
int8 transfer quantization, and checks the composed path against the accuracy gate.
"""
