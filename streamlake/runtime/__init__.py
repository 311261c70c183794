"""Runtime: the Flink environment, submission to the cluster, the entry `flink run` calls."""
