"""Stateful local simulators of the five upstream APIs.

They back `mcp-cloudops serve --sandbox` and are the test suite's fakes: one implementation
serves both, so what a newcomer tries by hand is what CI checks.
"""
