"""Reading the log: what a question is about (scope.py) and the named queries that answer it (queries.py)."""
