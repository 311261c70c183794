"""The lake: Delta tables derived from config, their sinks, the exactly-once loader."""
