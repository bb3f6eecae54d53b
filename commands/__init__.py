"""The write side: the one Application, command messages, their handlers and
the bus that runs them (batching, idempotency, conflict retries)."""
