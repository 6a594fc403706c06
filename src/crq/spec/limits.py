"""Limits shared by the spec loader and the adapters, in a module that imports nothing: the S3
adapter needs the spec size cap without importing the YAML loader at cold start."""

# A spec file is read with a byte range and rejected beyond this size (256 KiB).
MAX_SPEC_BYTES = 262_144


def too_large(size: int | None) -> str:
    """The size error, one wording wherever the size is checked (the loader, the S3 adapter)."""
    actual = f"{size} bytes" if size is not None else f"over {MAX_SPEC_BYTES} bytes"
    return f"the file is {actual}; a spec file has at most {MAX_SPEC_BYTES} bytes (256 KiB)"
