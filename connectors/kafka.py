"""Kafka at the edge: topic admin, producing, read_committed reading, and Flink table options.

Every consumer of a topic written by a transactional producer reads with
isolation.level=read_committed: Flink sources, the SQL client, the loader, tests and the demo.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

Role = Literal["source", "sink", "query"]

_QUIET = {"log_level": 3}  # errors only; librdkafka is chatty about connection retries


# The partitioners a sink may name, as the connector's 'sink.partitioner' takes them.
PARTITIONERS = {"owned": "io.streamlake.udfs.OwnedPartitions"}


@dataclass(frozen=True)
class KafkaTable:
    """How one Flink SQL table maps onto one Kafka topic."""

    topic: str
    role: Role
    bootstrap: str
    group_id: str = ""
    transactional_id_prefix: str = ""
    transaction_timeout_ms: int = 600_000
    delivery_guarantee: Literal["exactly-once", "at-least-once"] = "exactly-once"
    bounded: bool = False
    key_fields: tuple[str, ...] = ()
    key_format: Literal["json", "raw"] = "json"
    value_format: Literal["json", "raw"] = "json"
    # An upsert table (Gold): the key is the DDL's PRIMARY KEY and each record replaces the
    # previous one with its key.
    upsert: bool = False
    # A sink's partitioner: '' is Kafka's (by key); 'owned': sink subtask i of n owns partitions
    # i, i + n, ... and spreads its rows over them by key (udfs/ OwnedPartitions: one writer per
    # partition, and no partition left empty).
    partitioner: Literal["", "owned"] = ""
    # A sink's producer max.request.size: the largest record it may write (the broker's and the
    # topics' limit; None keeps the client default of 1 MiB).
    max_request_bytes: int | None = None
    # Further source options, e.g. scan.watermark.emit.strategy.
    source_options: tuple[tuple[str, str], ...] = ()

    def options(self) -> dict[str, str]:
        """The WITH options for this table. One place decides delivery and isolation settings."""
        opts: dict[str, str] = {
            "connector": "upsert-kafka" if self.upsert else "kafka",
            "topic": self.topic,
            "properties.bootstrap.servers": self.bootstrap,
        }
        if self.value_format == "json":
            opts["value.format"] = "json"
            opts["value.json.timestamp-format.standard"] = "ISO-8601"
        else:
            opts["value.format"] = self.value_format
        if self.upsert:
            opts["key.format"] = "json"
            opts["key.json.timestamp-format.standard"] = "ISO-8601"
            opts["value.fields-include"] = "ALL"
        elif self.key_fields:
            opts["key.format"] = self.key_format
            opts["key.fields"] = ";".join(self.key_fields)
            # A raw key is its own column; JSON keys repeat fields that the value carries too.
            opts["value.fields-include"] = "EXCEPT_KEY" if self.key_format == "raw" else "ALL"
        if self.role in ("source", "query"):
            if not self.group_id:
                raise ValueError(f"table on topic {self.topic}: a source needs a group id")
            opts["properties.group.id"] = self.group_id
            opts["properties.isolation.level"] = "read_committed"
            if not self.upsert:  # upsert-kafka always reads from the earliest offset
                opts["scan.startup.mode"] = "earliest-offset"
            if self.bounded or self.role == "query":
                # Read what is committed when the query starts, then finish.
                opts["scan.bounded.mode"] = "latest-offset"
            opts.update(self.source_options)
        if self.role == "sink":
            if not self.transactional_id_prefix:
                raise ValueError(
                    f"table on topic {self.topic}: a sink needs a transactional id prefix"
                )
            if self.partitioner:
                opts["sink.partitioner"] = PARTITIONERS[self.partitioner]
            opts["sink.delivery-guarantee"] = self.delivery_guarantee
            if self.max_request_bytes is not None:
                opts["properties.max.request.size"] = str(self.max_request_bytes)
            if self.delivery_guarantee == "exactly-once":
                opts["sink.transactional-id-prefix"] = self.transactional_id_prefix
                opts["properties.transaction.timeout.ms"] = str(self.transaction_timeout_ms)
        return opts

    def with_clause(self) -> str:
        """Render as the body of a SQL WITH (...) clause, one option a line."""
        return ",\n".join(f"  '{k}' = '{_sql_str(v)}'" for k, v in self.options().items())


def _sql_str(v: str) -> str:
    return v.replace("'", "''")


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **_QUIET})


def broker_ready(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """True when the broker answers a metadata request and lists at least one broker."""
    try:
        md = admin(bootstrap).list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return bool(md.brokers)


def create_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int = 3,
    timeout_s: float = 30.0,
    topic_config: Mapping[str, str] | None = None,
) -> None:
    """Create topics that do not exist yet; wait until their metadata is visible."""
    names = list(topics)
    a = admin(bootstrap)
    existing = set(a.list_topics(timeout=timeout_s).topics)
    new = [
        NewTopic(
            t, num_partitions=partitions, replication_factor=1, config=dict(topic_config or {})
        )
        for t in names
        if t not in existing
    ]
    if new:
        for topic, fut in a.create_topics(new, operation_timeout=timeout_s).items():
            try:
                fut.result()
            except KafkaException as exc:
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                    raise RuntimeError(f"could not create topic {topic}: {exc}") from exc
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        md = a.list_topics(timeout=timeout_s)
        if all(t in md.topics and not md.topics[t].error for t in names):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topics not visible after {timeout_s}s: {names}")


def delete_topics(bootstrap: str, topics: Iterable[str], timeout_s: float = 30.0) -> None:
    """Delete the topics that exist; wait until they are gone."""
    a = admin(bootstrap)
    names = [t for t in topics if t in a.list_topics(timeout=timeout_s).topics]
    if not names:
        return
    for fut in a.delete_topics(names, operation_timeout=timeout_s).values():
        fut.result()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not set(names) & set(a.list_topics(timeout=timeout_s).topics):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topics still listed after {timeout_s}s: {names}")


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None]],
    partition_of: Mapping[int, int] | None = None,
    headers: Mapping[int, list[tuple[str, bytes]]] | None = None,
    max_message_bytes: int | None = None,
) -> list[tuple[int, int]]:
    """Produce (key, value) records idempotently; wait for every acknowledgement.

    Returns each record's (partition, offset), in the order given. `max_message_bytes` raises
    the client's record-size limit (librdkafka's default is 1,000,000 bytes).
    """
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "linger.ms": 5,
        **_QUIET,
    }
    if max_message_bytes is not None:
        conf["message.max.bytes"] = max_message_bytes
    p = Producer(conf)
    errors: list[str] = []
    placed: dict[int, tuple[int, int]] = {}

    def on_delivery(i: int) -> Callable[[Any, Any], None]:
        def done(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                placed[i] = (msg.partition(), msg.offset())

        return done

    n = 0
    for i, (key, value) in enumerate(records):
        kwargs: dict[str, Any] = {}
        if partition_of is not None:
            kwargs["partition"] = partition_of[i]
        if headers is not None and i in headers:
            kwargs["headers"] = headers[i]
        while True:
            try:
                p.produce(topic, value=value, key=key, on_delivery=on_delivery(i), **kwargs)
                break
            except BufferError:
                p.poll(0.1)
        n += 1
    remaining = p.flush(60)
    if remaining or errors or len(placed) != n:
        raise RuntimeError(f"{remaining} records undelivered to {topic}; errors: {errors[:3]}")
    return [placed[i] for i in range(n)]


# Bronze topics: the broker stamps each record with its append time, so ingest time is in order
# per partition and the Silver job's audit watermark never sees a late record.
BRONZE_TOPIC_CONFIG = {"message.timestamp.type": "LogAppendTime"}


def produce_json(bootstrap: str, topic: str, events: Iterable[Mapping[str, Any]], key: str) -> int:
    records = (
        (str(e[key]).encode(), json.dumps(e, separators=(",", ":")).encode()) for e in events
    )
    return len(produce(bootstrap, topic, records))


def read_committed(
    bootstrap: str, topic: str, group_id: str, timeout_s: float = 30.0
) -> Iterator[tuple[bytes | None, bytes | None]]:
    """Yield every committed record (key, value; a tombstone's value is None) of `topic`, from the beginning to its last stable offset."""
    for _part, _offset, key, value in read_committed_records(bootstrap, topic, group_id, timeout_s):
        yield key, value


def read_committed_records(
    bootstrap: str, topic: str, group_id: str, timeout_s: float = 30.0
) -> Iterator[tuple[int, int, bytes | None, bytes | None]]:
    """Yield every committed record of `topic` as (partition, offset, key, value), each partition
    in offset order, from the beginning to its last stable offset.

    The end offsets are taken under read_committed, so open or aborted transactions are not read
    and the call returns as soon as everything committed before it started has been seen.
    """
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group_id,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **_QUIET,
        }
    )
    try:
        md = c.list_topics(topic, timeout=timeout_s)
        if topic not in md.topics or md.topics[topic].error:
            raise RuntimeError(f"topic {topic} does not exist")
        parts = sorted(md.topics[topic].partitions)
        ends: dict[int, int] = {}
        for p in parts:
            _low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            ends[p] = high
        todo = {p for p in parts if ends[p] > 0}
        if not todo:
            return
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        deadline = time.monotonic() + timeout_s
        while todo:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: partitions {sorted(todo)} not drained")
            msg = c.poll(0.5)
            if msg is None:
                # Transaction markers occupy offsets; once position reaches the end we are done.
                for tp in c.position([TopicPartition(topic, p) for p in list(todo)]):
                    if tp.offset >= ends[tp.partition]:
                        todo.discard(tp.partition)
                continue
            if msg.error():
                raise RuntimeError(f"reading {topic}: {msg.error()}")
            part, offset, value = msg.partition(), msg.offset(), msg.value()
            assert part is not None and offset is not None
            if offset < ends[part]:
                yield part, offset, msg.key(), value
            if offset + 1 >= ends[part]:
                todo.discard(part)
    finally:
        c.close()


def read_committed_json(
    bootstrap: str, topic: str, group_id: str, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    out = []
    for _k, v in read_committed(bootstrap, topic, group_id, timeout_s):
        if v is None:
            raise ValueError(f"{topic}: a record with no value (tombstone) is not JSON")
        out.append(json.loads(v))
    return out


def read_committed_latest_json(
    bootstrap: str, topic: str, group_id: str, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """An upsert topic (upsert-kafka: Gold, audit counts) as a table: the last committed value
    per Kafka key, keys whose last record is a tombstone left out."""
    last: dict[bytes | None, bytes | None] = {}
    for k, v in read_committed(bootstrap, topic, group_id, timeout_s):
        last[k] = v
    return [json.loads(v) for v in last.values() if v is not None]
