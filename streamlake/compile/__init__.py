"""Compilation: config to the SQL each job runs (one module per layer) and its checks."""
