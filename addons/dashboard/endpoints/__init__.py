"""The dashboard's endpoints, one module per page; importing this package registers every one (api.endpoint)."""

from . import live, properties, requests, sessions, users  # noqa: F401  (each registers its endpoints)
