"""The bundle layer: what a build hands on — ``report.json``, ``model-manifest.json``, the cloud and split models.

It sits above the compressor core (it reads a build's inputs and results) and below SDK rendering and the server,
which read the manifest it writes.
"""
