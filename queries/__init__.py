"""The read side's questions: functions over the read models (and, for
other areas, the warehouse). Each opens its own read-only connection, so
they are safe from any thread, and returns plain dicts."""
