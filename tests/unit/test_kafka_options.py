from __future__ import annotations

import pytest

from connectors.kafka import KafkaTable


def test_source_reads_committed_only() -> None:
    o = KafkaTable("bronze_x", "source", "127.0.0.1:9092", group_id="g").options()
    assert o["properties.isolation.level"] == "read_committed"
    assert "scan.bounded.mode" not in o
    assert "sink.delivery-guarantee" not in o


def test_sink_is_transactional_with_timeout() -> None:
    o = KafkaTable(
        "gold_x",
        "sink",
        "127.0.0.1:9092",
        transactional_id_prefix="p.j",
        transaction_timeout_ms=600_000,
    ).options()
    assert o["sink.delivery-guarantee"] == "exactly-once"
    assert o["sink.transactional-id-prefix"] == "p.j"
    assert o["properties.transaction.timeout.ms"] == "600000"


def test_query_tables_are_bounded_snapshots() -> None:
    o = KafkaTable("gold_x", "query", "127.0.0.1:9092", group_id="q").options()
    assert o["scan.bounded.mode"] == "latest-offset"
    assert o["properties.isolation.level"] == "read_committed"


def test_missing_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="transactional id prefix"):
        KafkaTable("gold_x", "sink", "b").options()
    with pytest.raises(ValueError, match="group id"):
        KafkaTable("bronze_x", "source", "b").options()


def test_quotes_in_values_are_escaped() -> None:
    body = KafkaTable("t'x", "source", "b", group_id="g").with_clause()
    assert "'topic' = 't''x'" in body


def test_sink_request_size_is_the_platform_limit() -> None:
    sink = KafkaTable(
        "dlq_x", "sink", "b", transactional_id_prefix="p.j", max_request_bytes=8_388_608
    )
    assert sink.options()["properties.max.request.size"] == "8388608"
    src = KafkaTable("bronze_x", "source", "b", group_id="g", max_request_bytes=8_388_608)
    assert "properties.max.request.size" not in src.options()


def test_every_sink_of_every_job_gets_the_limit_and_every_topic_its_config() -> None:
    from jobs import catalog
    from streamlake.config import settings

    platform = settings.load_platform()
    limit = str(platform.kafka.max_message_bytes)
    for job in catalog.jobs().values():
        for table, spec in job.tables.items():
            opts = job.kafka_table(table, platform, bounded=False, query=False).options()
            if spec.role == "sink":
                assert opts["properties.max.request.size"] == limit, (job.name, table)
        for topic, cfg in job.topic_configs().items():
            assert cfg["max.message.bytes"] == limit, (job.name, topic)
