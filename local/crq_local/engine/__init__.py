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
    from crq_local.engine.inprocess import installed, install, uninstall
    with installed(engine):
        boto3.client("cleanrooms").start_protected_query(...)
    install(engine, session) / uninstall(engine, session)   # one session only

    # Over HTTP on loopback (port 0: a free one):
    from crq_local.engine.server import make_server, serve, run
    with make_server(engine, "127.0.0.1", 0) as server:   # server.url, server.port
        ...
    serve(engine, "127.0.0.1", 4599)                       # blocks until Ctrl-C
    run(config_path, host, port, timings)                  # what `crq engine` calls

    engine.received            # the StartProtectedQuery requests accepted (Received records)
    engine.shutdown()

    # Test controls (crq_local.engine.testing): wait_until_idle(engine, timeout),
    # release(engine, query_id=None), forget(engine, query_id), throttle(engine, ...).

The front doors and test controls are functions of their own modules that take an engine;
the engine core (engine.py, operations.py, runner.py, world.py, ...) never imports them.
A malformed collaboration file raises CollaborationFileError (message: file, key, reason).
"""

from .config import CollaborationFileError, EngineConfig, load_config, parse_config
from .engine import Engine
from .queries import Received
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
