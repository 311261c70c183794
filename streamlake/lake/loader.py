"""Exactly-once Kafka -> Delta Lake loader (the kafka-delta-ingest design).

Flink writes every derived layer to Kafka in transactions; this loader lands topics in Delta:

- it reads with isolation.level=read_committed, in batches, and converts each batch to Arrow in
  C++ (pyarrow.json with an explicit schema, or raw bytes for Bronze); the only per-record Python
  is a handful of list comprehensions that take each fetched message's value, key, offset,
  partition and timestamp (confluent-kafka hands messages over one object each);
- each batch is one Delta commit that also records, per (topic, partition) in it, an app
  transaction whose version is the last offset written;
- on start and on every partition assignment it seeks to the offsets recorded in the Delta log,
  never to consumer-group offsets (those are committed only so that lag can be watched);
- delta-rs neither refuses nor orders app-transaction versions, so before each commit the loader
  reads the recorded versions again and drops what is already in the table. The consumer group
  gives each (topic, partition) one owner at a time.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from deltalake import write_deltalake
from deltalake.exceptions import TableNotFoundError

from streamlake.lake.maintenance import maintain
from streamlake.lake.sink import DeltaSink

log = logging.getLogger("streamlake.loader")

_TRANSIENT = {
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_TOPIC,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
}


class Loader:
    """Consumes the sinks' topics and commits them to Delta in batches, exactly once."""

    def __init__(
        self,
        bootstrap: str,
        group_id: str,
        sinks: Sequence[DeltaSink],
        *,
        flush_rows: int = 50_000,
        flush_ms: int = 1000,
        instance_id: str = "loader-0",
        maintenance_every_ms: int | None = None,
        vacuum_retention_hours: int = 168,
        ready_file: str | None = None,
        audit_uri: str | None = None,
        on_commit: Callable[[DeltaSink, int], None] | None = None,
    ) -> None:
        self.audit_uri = audit_uri
        self.maintenance_every_ms = maintenance_every_ms
        self.vacuum_retention_hours = vacuum_retention_hours
        self.ready_file = ready_file
        self.last_maintenance = time.monotonic()
        self.sink_of = {t: s for s in sinks for t in s.topics}
        self.sinks = list(sinks)
        self.flush_rows = flush_rows
        self.flush_ms = flush_ms
        self.on_commit = on_commit
        self.pending: dict[str, list[Any]] = {s.table: [] for s in sinks}
        self.first_at: dict[str, float] = {}
        self.stopping = False
        self.assigned = False
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group_id,
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.max.bytes": 64 * 1024 * 1024,
                # Static membership: a loader restarted after a crash takes its place back at
                # once instead of waiting for the dead member's session to time out. Replicas
                # that scale out use distinct instance ids.
                "group.instance.id": instance_id,
                "session.timeout.ms": 10_000,
                # A subscribed topic created after the loader started (`jobs topics`, a new
                # tenant's Bronze topic) is found within this, not librdkafka's 5 minutes.
                "topic.metadata.refresh.interval.ms": 5_000,
                "log_level": 3,
            }
        )

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        by_topic: dict[str, list[TopicPartition]] = {}
        for tp in partitions:
            by_topic.setdefault(tp.topic, []).append(tp)
        for topic, tps in by_topic.items():
            recorded = self.sink_of[topic].recorded_offsets([(t.topic, t.partition) for t in tps])
            for tp in tps:
                last = recorded[(tp.topic, tp.partition)]
                tp.offset = OFFSET_BEGINNING if last < 0 else last + 1
                log.info(
                    "assigned %s[%d] from offset %s (Delta log)", tp.topic, tp.partition, tp.offset
                )
        consumer.assign(partitions)
        self.assigned = bool(partitions)

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.flush_all()  # commit what was read while we still own it
        consumer.unassign()
        self.assigned = False

    def flush(self, sink: DeltaSink) -> None:
        msgs = self.pending[sink.table]
        if not msgs:
            return
        t0 = time.monotonic()
        written = sink.commit(msgs)
        latency_ms = (time.monotonic() - t0) * 1000
        n = 0 if written is None else written.num_rows
        self.pending[sink.table] = []
        self.first_at.pop(sink.table, None)
        log.info("%s: %d rows committed in %.0f ms", sink.table, n, latency_ms)
        if written is not None and self.audit_uri:
            self._audit(self.audit_uri, sink, len(msgs), written, latency_ms)
        if self.on_commit:
            self.on_commit(sink, n)
        # Consumer-group offsets are for watching lag only; recovery uses the Delta log.
        offsets: dict[tuple[str, int], int] = {}
        for m in msgs:
            offsets[(m.topic(), m.partition())] = m.offset() + 1
        try:
            self.consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                asynchronous=True,
            )
        except KafkaException:
            pass

    def _audit(
        self, uri: str, sink: DeltaSink, fetched: int, written: pa.Table, latency_ms: float
    ) -> None:
        """One row per tenant of the batch, appended after the batch's commit (so a crash between
        the two can lose an audit row, never add one for data that is not in the table)."""
        tenants = written.column("tenant_id") if "tenant_id" in written.column_names else None
        ts = pa.timestamp("ms", tz="UTC")
        has_event_time = "event_at" in written.column_names
        t = pa.table(
            {
                "tenant_id": tenants
                if tenants is not None
                else pa.nulls(written.num_rows, pa.string()),
                "kafka_offset": written.column("kafka_offset"),
                "kafka_timestamp": written.column("kafka_timestamp"),
                "event_at": written.column("event_at").cast(ts)
                if has_event_time
                else pa.nulls(written.num_rows, ts),
            }
        )
        g = t.group_by("tenant_id").aggregate(
            [
                ("kafka_offset", "count"),
                ("kafka_offset", "min"),
                ("kafka_offset", "max"),
                ("kafka_timestamp", "min"),
                ("kafka_timestamp", "max"),
                ("event_at", "min"),
                ("event_at", "max"),
            ]
        )
        n = g.num_rows
        now = pa.scalar(int(time.time() * 1000), pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
        rows = pa.table(
            {
                "committed_at": pa.array([now.as_py()] * n, pa.timestamp("ms", tz="UTC")),
                "table_name": pa.array([sink.table] * n, pa.string()),
                "tenant_id": g.column("tenant_id"),
                "input_rows": pa.array([fetched] * n, pa.int64()),
                # Records of the batch already in the table (a replay after a crash or a
                # rebalance), skipped by the app-transaction check. Duplicate events are dropped
                # earlier, by the Silver job: audit_silver_counts counts those.
                "duplicates": pa.array([fetched - written.num_rows] * n, pa.int64()),
                "output_rows": g.column("kafka_offset_count").cast(pa.int64()),
                "dlq_rows": g.column("kafka_offset_count").cast(pa.int64())
                if sink.audit_kind == "dlq"
                else pa.array([0] * n, pa.int64()),
                "late_rows": g.column("kafka_offset_count").cast(pa.int64())
                if sink.audit_kind == "late"
                else pa.array([0] * n, pa.int64()),
                "first_offset": g.column("kafka_offset_min"),
                "last_offset": g.column("kafka_offset_max"),
                "min_ingest_at": g.column("kafka_timestamp_min"),
                "max_ingest_at": g.column("kafka_timestamp_max"),
                "min_event_at": g.column("event_at_min"),
                "max_event_at": g.column("event_at_max"),
                "commit_latency_ms": pa.array([round(latency_ms, 1)] * n, pa.float64()),
                "status": pa.array(["committed"] * n, pa.string()),
            }
        )
        write_deltalake(
            uri,
            rows,
            mode="append",
            partition_by=["table_name"],
            storage_options=dict(sink.storage_options or {}),
        )

    def flush_all(self) -> None:
        for sink in self.sinks:
            self.flush(sink)

    def run(self, idle_exit_s: float | None = None) -> None:
        self.consumer.subscribe(
            sorted(self.sink_of), on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        if self.ready_file:
            with open(self.ready_file, "w") as f:
                f.write(str(os.getpid()))
        last_data = time.monotonic()
        try:
            while not self.stopping:
                msgs = self.consumer.consume(
                    num_messages=min(self.flush_rows, 100_000), timeout=0.2
                )
                now = time.monotonic()
                for err in [m.error() for m in msgs if m.error() is not None]:
                    if err is not None and err.code() in _TRANSIENT:
                        log.warning("%s", err)  # e.g. a topic not created yet
                    else:
                        raise KafkaException(err)
                msgs = [m for m in msgs if m.error() is None]
                if msgs or not self.assigned:
                    last_data = now  # idle time counts only while partitions are ours
                    for m in msgs:
                        table = self.sink_of[str(m.topic())].table
                        self.pending[table].append(m)
                        self.first_at.setdefault(table, now)
                for sink in self.sinks:
                    n = len(self.pending[sink.table])
                    age_ms = (now - self.first_at.get(sink.table, now)) * 1000
                    if n >= self.flush_rows or (n and age_ms >= self.flush_ms):
                        self.flush(sink)
                if (
                    self.maintenance_every_ms is not None
                    and (now - self.last_maintenance) * 1000 >= self.maintenance_every_ms
                ):
                    # Between our own commits, in this thread: never racing our appends.
                    self.maintain()
                    self.last_maintenance = time.monotonic()
                if idle_exit_s is not None and now - last_data > idle_exit_s:
                    self.flush_all()
                    return
            self.flush_all()
        finally:
            self.consumer.close()

    def stop(self, *_: Any) -> None:
        self.stopping = True

    def maintain(self) -> None:
        for sink in self.sinks:
            try:
                maintain(sink, "optimize")
                maintain(sink, "checkpoint")
                maintain(sink, "vacuum", retention_hours=self.vacuum_retention_hours)
            except TableNotFoundError:
                continue


def install_signal_handlers(loader: Loader) -> None:
    signal.signal(signal.SIGTERM, loader.stop)
    signal.signal(signal.SIGINT, loader.stop)


_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "timestamp_ms_utc": pa.timestamp("ms", tz="UTC"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """One table from one topic, for tests and ad-hoc loads (`python -m jobs loader` runs the lake)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m streamlake.lake.loader")
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--uri", required=True)
    ap.add_argument(
        "--columns", required=True, help="name:type,... (types: " + ", ".join(_TYPES) + ")"
    )
    ap.add_argument("--partition-by", default="")
    ap.add_argument("--flush-rows", type=int, default=50_000)
    ap.add_argument("--flush-ms", type=int, default=1000)
    ap.add_argument("--idle-exit", type=float, default=None)
    ap.add_argument("--instance-id", default="loader-0")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    schema = pa.schema([(n, _TYPES[t]) for n, t in (c.split(":") for c in args.columns.split(","))])
    sink = DeltaSink(
        args.table,
        (args.topic,),
        args.uri,
        schema,
        tuple(p for p in args.partition_by.split(",") if p),
    )
    loader = Loader(
        args.bootstrap,
        args.group,
        [sink],
        flush_rows=args.flush_rows,
        flush_ms=args.flush_ms,
        instance_id=args.instance_id,
    )
    install_signal_handlers(loader)
    loader.run(idle_exit_s=args.idle_exit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
