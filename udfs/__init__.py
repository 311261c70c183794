"""Vectorised (Arrow/pandas) UDFs. Per-event Python UDFs on the main path need a benchmark first."""
