"""The benchmark's CPU-by-job attribution: each TaskManager thread to the job it works for."""

from __future__ import annotations

from bench.probes import cpu_by_job, shared_threads, thread_owner

JOBS = {
    "silver": ("bench_x.silver", ["Source: bronze_events[1] -> Calc[2]", "Deduplicate[12]"]),
    "gold": ("bench_x.gold", ["Source: silver_orders[1] -> Calc[2]", "Calc[2]"]),
}


def test_task_threads_and_their_helpers_belong_to_their_job() -> None:
    assert thread_owner("flink-taskmanager|Deduplicate[12] (1/2)#0", JOBS) == "silver"
    assert (
        thread_owner(
            "flink-taskmanager|Source Data Fetcher for Source: bronze_events[1] -> Calc[2] (1/1)#3",
            JOBS,
        )
        == "silver"
    )
    assert thread_owner("tm-2|OutputFlusher for Calc[2] (2/2)#0", JOBS) == "gold"
    # A vertex name that ends another job's vertex name is not that job's.
    assert thread_owner("Source: bronze_events[1] -> Calc[2] (1/1)#0", JOBS) == "silver"


def test_kafka_client_threads_belong_by_their_id() -> None:
    name = "kafka-producer-network-thread | producer-bench_x.gold.alert_events-0-7"
    assert thread_owner(name, JOBS) == "gold"
    assert thread_owner("kafka-coordinator-heartbeat-thread | bench_x.silver", JOBS) == "silver"


def test_the_rest_is_shared_and_deltas_are_counted() -> None:
    before = {"a|Deduplicate[12] (1/1)#0": 1000.0, "a|GC Thread#0": 500.0}
    after = {
        "a|Deduplicate[12] (1/1)#0": 4000.0,
        "a|GC Thread#0": 1500.0,
        "a|GC Thread#1": 250.0,  # started in between: all of it counts
        "a|Calc[2] (1/1)#0": 2000.0,
    }
    assert cpu_by_job(before, after, JOBS) == {
        "silver": 3.0,
        "gold": 2.0,
        "taskmanager (shared)": 1.25,
    }
    assert shared_threads(before, after, JOBS) == [("GC Thread#N", 1.25)]
