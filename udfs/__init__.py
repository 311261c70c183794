"""User-defined functions. The Silver job's JVM function lives beside this package, in
udfs/src/main/java (built by udfs/pom.xml through `make jars`); Python UDFs on the per-event path
need a benchmark first (bench/silver_parse.py measured one against the JVM function)."""
