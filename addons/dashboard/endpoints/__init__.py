"""The dashboard's endpoints, one module per page; importing this package registers every one (api.endpoint)."""

from . import alerts, limits, live, overview, properties, requests, sessions, users  # noqa: F401  (each registers its endpoints)
