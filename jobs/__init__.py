"""The jobs themselves: the SQL jobs (catalog.py: each a SQL file under sql/ and the tables it
reads and writes) and the Python DataStream job device_anomaly. `python -m jobs` is the CLI
(streamlake/cli.py)."""
