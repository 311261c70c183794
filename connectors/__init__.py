"""The edges: where data comes from and goes to (Kafka, Delta Lake), decided by config."""
