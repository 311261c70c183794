"""streamlake: YAML-configured, exactly-once event-time pipelines on PyFlink."""
