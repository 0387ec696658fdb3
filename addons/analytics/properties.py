"""Which custom properties (`Helicone-Property-*`) the calls carry: what a view offers to group costs by."""

from __future__ import annotations

from pathlib import Path

from .rows import Rows, run, scoped
from .scope import Scope


def property_names(log: Path, scope: Scope) -> Rows:
    """Each property name the scope's calls carry (`name`, stored lower-cased), with how many calls carry it
    (`calls`) and how many distinct values it has (`values`); most used first, then by name. No rows when no call
    has a property."""
    calls, params = scoped(scope)
    # map_entries unnests only the calls that have properties; the map itself is never rebuilt per call.
    return run(log, f"""
        WITH {calls},
        named AS (SELECT unnest(map_entries(properties)) AS entry FROM calls WHERE cardinality(properties) > 0)
        SELECT entry.key AS name, count(*) AS calls, count(DISTINCT entry.value) AS "values"
        FROM named GROUP BY entry.key ORDER BY calls DESC, name""", params)
