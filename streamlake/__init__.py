"""streamlake, the platform: YAML config in, exactly-once Flink jobs, Kafka and Delta Lake out.

One folder per concern: config/ (typed YAML, the registry, paths), compile/ (YAML to SQL, one
module per layer), runtime/ (the Flink environment, submission, the `flink run` entry), stack/
(the local broker and cluster and their supervisor), lake/ (Delta tables, sinks and the loader).
The jobs themselves are in jobs/, their SQL in sql/.
"""
