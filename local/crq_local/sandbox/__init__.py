"""The sandbox: crq's stack offline on loopback (moto + the local engine + the real handlers).

    from crq_local.sandbox import Sandbox, SandboxOptions
    with Sandbox(SandboxOptions(collaboration=Path("examples/collaboration.yaml"), port=0,
                                engine_port=0)) as sandbox:
        sandbox.exports["CRQ_SPECS_BUCKET"]   # and the other `export` lines

`serve(options, console)` is `crq sandbox`: start, print the exports, run until Ctrl-C/SIGTERM.
"""

from crq_local.sandbox.app import Sandbox, SandboxError, SandboxOptions, serve
from crq_local.sandbox.exports import READY_MARKER, export_lines, parse_exports

__all__ = [
    "READY_MARKER",
    "Sandbox",
    "SandboxError",
    "SandboxOptions",
    "export_lines",
    "parse_exports",
    "serve",
]
