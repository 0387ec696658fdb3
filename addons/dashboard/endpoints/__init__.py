"""The dashboard's endpoints, one module per page; importing this package registers every one (api.endpoint)."""

from . import (  # noqa: F401  (importing a page's module registers its endpoints)
    limits,
    live,
    overview,
)
