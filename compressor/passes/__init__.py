"""Pipeline passes: one file each, ``<verb>_<noun>_pass.py``, each exposing ``run``, a declared
:class:`~compressor.passes.contract.Pass` of the build's inputs and results."""
