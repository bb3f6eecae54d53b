"""Packaged configuration: the default work-order policy and working-day calendar."""
