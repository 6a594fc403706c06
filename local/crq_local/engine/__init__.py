"""The local Clean Rooms engine: protected queries that really run, offline.

It speaks the Clean Rooms REST-JSON API (botocore's `cleanrooms` 2022-02-17 model) for
StartProtectedQuery, GetProtectedQuery, ListProtectedQueries, UpdateProtectedQuery,
GetMembership, ListMemberships, GetAnalysisTemplate, ListAnalysisTemplates and
GetCollaborationAnalysisTemplate; runs the SQL in DuckDB over the tables of a collaboration
file; writes results with boto3's S3 client and status events with boto3's EventBridge client,
both configured by the environment (moto's `mock_aws`, or AWS_ENDPOINT_URL for a moto server).

Public API (keep it small; docs/engine.md has the file format, faults and limits):

    from crq_local.engine import Engine, EngineConfig, load_config, Timings

    engine = Engine(load_config("examples/collaboration.yaml"), timings=Timings.fast())
    # optional: members_dir= (where `member` results go), aws_endpoint_url= (S3/EventBridge
    # endpoint instead of the environment's); Engine.from_file(path, **same) loads the file.

    # In-process (tests): every boto3/botocore session created from now on sends its
    # cleanrooms requests for AWS's endpoint to the engine (a client given an explicit
    # endpoint URL is left alone); create clients inside the block.
    with engine.installed():
        boto3.client("cleanrooms").start_protected_query(...)
    engine.install(session) / engine.uninstall(session)   # one session only

    # Over HTTP on loopback (port 0: a free one):
    with engine.make_server("127.0.0.1", 0) as server:   # server.url, server.port
        ...
    engine.serve("127.0.0.1", 4599)                       # blocks until Ctrl-C
    crq_local.engine.server.run(config_path, host, port, timings)   # what `crq engine` calls

    engine.received            # the StartProtectedQuery requests accepted (Received records)
    engine.wait_until_idle(timeout) -> bool   # every query ended, every event sent
    engine.release(query_id=None)  # let `-- crq-fault: hold` queries finish
    engine.forget(query_id)    # the id now answers ResourceNotFoundException
    engine.throttle(requests=N, seconds=T, operations=[...])   # ThrottlingException on demand
    engine.shutdown()

A malformed collaboration file raises CollaborationFileError (message: file, key, reason).
"""

from .config import CollaborationFileError, EngineConfig, load_config, parse_config
from .engine import Engine, Received
from .server import EngineServer, RemoteHostRefused
from .timings import Timings

__all__ = [
    "CollaborationFileError",
    "Engine",
    "EngineConfig",
    "EngineServer",
    "Received",
    "RemoteHostRefused",
    "Timings",
    "load_config",
    "parse_config",
]
