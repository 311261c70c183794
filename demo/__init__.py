"""`make demo`: a user of the platform. It drives the CLI and public functions and checks the
outputs against what it sent (tests/oracles/demo.py)."""
