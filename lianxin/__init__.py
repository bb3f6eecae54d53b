"""Composition root: settings, wiring, the HTTP app factory and the CLI."""
