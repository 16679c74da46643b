"""Shared domain of furiwake: configuration, database, text pipeline, routes and queue wiring.

Imports none of the process packages (api, worker, training) so every process can depend on it.
"""
