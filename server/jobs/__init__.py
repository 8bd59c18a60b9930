"""Compression jobs: persistent store, uploads, artifacts, and isolated worker processes."""
