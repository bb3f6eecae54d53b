"""Lianxin's pure domain model: aggregates, value objects and policies.

Nothing in this package does I/O or imports any other Lianxin package.
Event classes live at their final module paths: the stored topic is the
module path, so moving a class breaks stored events (see docs/events.md).
"""
