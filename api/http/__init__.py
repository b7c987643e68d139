"""The REST read API, Prometheus metrics and dashboard page of a read node (FastAPI).

``create_app`` builds the app over a read model and an event store;
``server.start_read_node`` runs it with the projector in one process.
"""

from api.http.app import NodeContext, create_app

__all__ = ["NodeContext", "create_app"]
