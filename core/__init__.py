"""Shared domain of furiwake: configuration, database, text pipeline, routes and queue wiring.

Imports none of the process packages (api, worker, training) so every process can depend on it.
"""

# The system's SQLite first: TensorFlow bundles an SQLite without FTS5, and whichever library a process loads first
# serves every connection, so a process that imported TensorFlow first could not write tickets (their search index
# is an FTS5 table, migration 0012). serving/ and training/ import sqlite3 before TensorFlow for the same reason.
import sqlite3  # noqa: F401, E402

