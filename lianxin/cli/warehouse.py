"""CLI commands: warehouse."""

import typer


def register(root: typer.Typer) -> None:
    """Add this area's commands and groups to the root `lianxin` app."""
