"""The local stack: a Kafka broker and a Flink cluster on loopback, and their supervisor."""
