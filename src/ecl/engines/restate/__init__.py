"""The Restate engine: ECL workflows as a Restate workflow service on a real Restate server.

* :mod:`~ecl.engines.restate.context` — :class:`RestateDurableContext`, ``DurableContext`` on
  Restate's ``WorkflowContext``;
* :mod:`~ecl.engines.restate.service` — the ``EclWorkflow`` service (``run``, ``signal``,
  ``status``) and its replay-safe recorder;
* :mod:`~ecl.engines.restate.endpoint` — serving it over HTTP/2 and registering it;
* :mod:`~ecl.engines.restate.engine` — :class:`RestateEngine`, the client side (``Engine``);
* :mod:`~ecl.engines.restate.server` — a local ``restate-server`` process (dev and tests).
"""

from ecl.engines.restate.context import RestateDurableContext
from ecl.engines.restate.endpoint import (
    EndpointThread,
    build_asgi_app,
    endpoint_app,
    register_deployment,
    serve_endpoint,
    serve_restate_endpoint,
)
from ecl.engines.restate.engine import RestateEngine
from ecl.engines.restate.server import RestateServer, find_server_binary, free_port
from ecl.engines.restate.service import SERVICE_NAME, JournaledRecorder, Orchestrator, build_service

__all__ = [
    "SERVICE_NAME",
    "EndpointThread",
    "JournaledRecorder",
    "Orchestrator",
    "RestateDurableContext",
    "RestateEngine",
    "RestateServer",
    "build_asgi_app",
    "build_service",
    "endpoint_app",
    "find_server_binary",
    "free_port",
    "register_deployment",
    "serve_endpoint",
    "serve_restate_endpoint",
]
