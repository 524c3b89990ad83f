"""Processes: the worker, the embedded dev stack and the `parcours` CLI."""
