"""Limits shared by the spec loader and the adapters, in a module that imports nothing: the S3
adapter needs the spec size cap without importing the YAML loader at cold start."""

# A spec file is read with a byte range and rejected beyond this size (256 KiB).
MAX_SPEC_BYTES = 262_144
