"""The benchmark's peer: Bronze -> Silver/DLQ -> Gold written the way a Databricks user would,
with PySpark Structured Streaming and Delta Lake (delta-spark), on the same topics and machine.

Run by bench/scenarios.py (start_peer) with the peer's own interpreter (.stack/peer-venv: pyspark, delta-spark;
the Kafka connector and Delta jars are resolved from Maven Central by bench/peer/pom.xml):

    .stack/peer-venv/bin/python bench/peer_spark.py --bootstrap 127.0.0.1:9092 \
        --topics bronze_acme_events,bronze_globex_events --lake DIR --ready FILE --jars .stack/jars/peer

Three streaming queries, each exactly-once into its Delta table through its own checkpoint:
Silver (parsed, validated, deduplicated within the watermark), DLQ (rows that fail), and Gold
(1-minute event-time windows per device, 5 s watermark). Not a line of this runs in the
pipeline; it exists only to be measured against it.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

SCHEMA = StructType(
    [
        StructField("tenant_id", StringType()),
        StructField("event_type", StringType()),
        StructField("schema_version", IntegerType()),
        StructField("event_id", StringType()),
        StructField("event_time", LongType()),
        StructField("device_id", StringType()),
        StructField("temperature_c", DoubleType()),
        StructField("status", StringType()),
        StructField("order_id", StringType()),
        StructField("placed_at", StringType()),
        StructField("customer_id", StringType()),
        StructField("amount_cents", LongType()),
        StructField("currency", StringType()),
        StructField("channel", StringType()),
    ]
)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topics", required=True)
    ap.add_argument("--lake", required=True, type=Path)
    ap.add_argument("--ready", required=True, type=Path)
    ap.add_argument("--jars", required=True, type=Path, help="folder of the Kafka and Delta jars")
    args = ap.parse_args()

    spark = (
        SparkSession.builder.appName("peer-bronze-silver-gold")
        .master("local[2]")
        .config("spark.jars", ",".join(str(p) for p in sorted(args.jars.glob("*.jar"))))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    lake = args.lake

    raw = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", args.bootstrap)
        .option("subscribe", args.topics)
        .option("startingOffsets", "earliest")
        .option("kafka.isolation.level", "read_committed")
        .option("failOnDataLoss", "false")
        .load()
    )
    owner = F.regexp_extract("topic", r"^bronze_([a-z0-9-]+)_events", 1)
    parsed = raw.select(
        F.col("value"),
        F.col("topic"),
        F.col("partition"),
        F.col("offset"),
        F.col("timestamp").alias("ingest_at"),
        owner.alias("topic_tenant"),
        F.from_json(F.col("value").cast("string"), SCHEMA).alias("j"),
    )
    event_id = F.coalesce("j.event_id", "j.order_id")
    event_at = F.coalesce(F.timestamp_millis("j.event_time"), F.to_timestamp("j.placed_at"))
    reason = (
        F.when(F.col("j").isNull(), "malformed_json")
        .when(F.col("j.tenant_id") != F.col("topic_tenant"), "tenant_topic_mismatch")
        .when(~F.col("j.event_type").isin("device_telemetry", "orders"), "unknown_event_type")
        .when(event_id.isNull(), "missing_field:event_id")
        .when(event_at.isNull(), "event_time_unparseable")
        .when(event_at > F.col("ingest_at") + F.expr("INTERVAL 5 MINUTES"), "event_time_in_future")
        .when(
            (F.col("j.event_type") == "device_telemetry")
            & (F.col("j.temperature_c").isNull() | ~F.col("j.temperature_c").between(-80, 150)),
            "out_of_range:temperature_c",
        )
        .when(
            (F.col("j.event_type") == "orders")
            & (F.col("j.amount_cents").isNull() | (F.col("j.amount_cents") < 0)),
            "out_of_range:amount_cents",
        )
    )
    checked = parsed.select(
        "*", event_id.alias("event_id"), event_at.alias("event_at"), reason.alias("reason")
    )

    def sink(df, name: str, mode: str = "append"):  # type: ignore[no-untyped-def]
        return (
            df.writeStream.format("delta")
            .outputMode(mode)
            .option("checkpointLocation", str(lake / "_checkpoints" / name))
            .trigger(processingTime="1 second")
            .start(str(lake / name))
        )

    dlq = checked.where(F.col("reason").isNotNull()).select(
        F.col("topic_tenant").alias("tenant_id"),
        F.array("reason").alias("reason_codes"),
        "topic",
        "partition",
        "offset",
        "ingest_at",
        F.base64("value").alias("raw_value"),
    )
    silver = (
        checked.where(F.col("reason").isNull())
        .select(
            F.col("j.tenant_id").alias("tenant_id"),
            F.col("j.event_type").alias("event_type"),
            "event_id",
            "event_at",
            F.col("j.device_id").alias("device_id"),
            F.col("j.temperature_c").alias("temperature_c"),
            F.col("j.status").alias("status"),
            F.sha2(F.col("j.customer_id"), 256).alias("customer_id"),
            F.col("j.amount_cents").alias("amount_cents"),
            F.col("j.currency").alias("currency"),
            "ingest_at",
        )
        .withWatermark("event_at", "5 seconds")
        .dropDuplicatesWithinWatermark(["tenant_id", "event_id"])
    )
    gold = (
        silver.where(F.col("event_type") == "device_telemetry")
        .groupBy(F.col("tenant_id"), F.col("device_id"), F.window("event_at", "1 minute"))
        .agg(
            F.count("*").alias("readings"),
            F.avg("temperature_c").alias("avg_temperature_c"),
            F.min("temperature_c").alias("min_temperature_c"),
            F.max("temperature_c").alias("max_temperature_c"),
        )
        .select(
            "tenant_id",
            "device_id",
            F.col("window.start").alias("window_start"),
            F.col("window.end").alias("window_end"),
            "readings",
            "avg_temperature_c",
            "min_temperature_c",
            "max_temperature_c",
        )
    )
    queries = [sink(silver, "silver"), sink(dlq, "dlq_events"), sink(gold, "gold_device_1m")]
    args.ready.write_text(str(os.getpid()))
    while all(q.isActive for q in queries):
        time.sleep(1)
    for q in queries:
        if q.exception():
            raise RuntimeError(str(q.exception()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
