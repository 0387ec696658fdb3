"""The dashboard's endpoints, one module per page; importing this package registers every one (api.endpoint)."""

from . import live  # noqa: F401  (registers its endpoints)
from . import requests as requests_page  # noqa: F401  (registers its endpoints; one line per page)
