"""The dashboard's endpoints, one module per page; importing this package registers every one (api.endpoint)."""

from . import (
    live,  # noqa: F401  (registers its endpoints)
    properties,  # noqa: F401
    sessions,  # noqa: F401
    users,  # noqa: F401
)
