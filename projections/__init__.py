"""Live read models, each a projection of the notification log with its own
tracked position (see ``projections.runner``)."""
