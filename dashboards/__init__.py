"""Dashboards as code: Superset datasets over the warehouse catalog."""
