"""Pipeline passes: one file each, ``<verb>_<noun>_pass.py``, each exposing ``run(state) -> None``."""
