"""Kubernetes manifests of the pipeline, rendered from the same conf/ as both local stacks
(`python -m jobs deploy k8s`, into docker/k8s/; golden-tested in tests/unit/test_k8s_golden.py).

- flink.yaml: a Flink Kubernetes Operator session cluster (`FlinkDeployment`) with the platform's
  Flink settings, checkpoints and savepoints on ADLS Gen2, the autoscaler on; and one
  `FlinkSessionJob` per job (Silver, Gold, device_anomaly), upgrade mode savepoint.
- kafka.yaml: Strimzi `Kafka` (KRaft) and its `KafkaNodePool`, one `KafkaTopic` per topic the
  config declares (with its topic configs), one `KafkaUser` per job and the loader, whose ACLs
  allow what each reads, writes, its consumer group and its transactional ids.
- loader.yaml: the Delta loader as a Deployment of the Flink image.

Only what the config decides is rendered; the cluster-specific values (image, namespace, the
storage account) are this module's defaults or the CLI's options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from streamlake.config import paths
from streamlake.config.settings import PlatformSettings
from streamlake.stack import cluster

Manifest = dict[str, Any]

NAMESPACE = "streamlake"
IMAGE = "streamlake-flink:dev"
# Checkpoints and savepoints: an ADLS Gen2 filesystem (AKS: workload identity, see the README).
STORAGE = "abfss://flink@streamlakeaccount.dfs.core.windows.net"
KAFKA = "streamlake"  # the Strimzi cluster's name: bootstrap streamlake-kafka-bootstrap:9093
FLINK_VERSION = "v2_2"
PYTHON = "/opt/venv/bin/python"
ENTRY = "/opt/streamlake/streamlake/runtime/flink_entry.py"
JOBS = ("silver", "gold", "device_anomaly")
LOADER = "loader"


def _meta(name: str, **labels: str) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "labels": {"app": "streamlake", **labels}}


def _bootstrap() -> str:
    return f"{KAFKA}-kafka-bootstrap.{NAMESPACE}.svc:9093"


def job_topics(conf_dir: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Job name -> (topics it reads, topics it writes)."""
    from jobs import catalog, device_anomaly

    out = {
        name: (job.source_topics(), job.sink_topics())
        for name, job in catalog.jobs(conf_dir).items()
        if name in JOBS
    }
    spec = device_anomaly.load(conf_dir)
    out["device_anomaly"] = ([spec.silver_topic], [spec.output_topic])
    return out


def flink(s: PlatformSettings, conf_dir: Path) -> list[Manifest]:
    f = s.flink
    local = cluster.flink_config(s)
    keep = (
        "execution.checkpointing.mode",
        "execution.checkpointing.interval",
        "execution.checkpointing.incremental",
        "execution.checkpointing.num-retained",
        "execution.checkpointing.externalized-checkpoint-retention",
        "state.backend.type",
        "classloader.parent-first-patterns.additional",
        "table.local-time-zone",
        "parallelism.default",
        "taskmanager.numberOfTaskSlots",
        *f.restart.flink_options(),
    )
    conf = {k: str(local[k]).lower() if isinstance(local[k], bool) else str(local[k]) for k in keep}
    conf.update(
        {
            "execution.checkpointing.dir": f"{STORAGE}/{s.pipeline_id}/checkpoints",
            "execution.checkpointing.savepoint-dir": f"{STORAGE}/{s.pipeline_id}/savepoints",
            "python.executable": PYTHON,
            "python.client.executable": PYTHON,
            "job.autoscaler.enabled": "true",
            "job.autoscaler.stabilization.interval": "1m",
            "job.autoscaler.metrics.window": "5m",
            "job.autoscaler.target.utilization": "0.6",
            "job.autoscaler.scale-down.enabled": "true",
            "kubernetes.operator.savepoint.history.max.count": "5",
        }
    )
    env = [
        {"name": "STREAMLAKE_KAFKA_BOOTSTRAP", "value": _bootstrap()},
        {
            "name": "STREAMLAKE_PII_HASH_KEY",
            "valueFrom": {"secretKeyRef": {"name": "streamlake-pii", "key": "hash-key"}},
        },
    ]
    session: Manifest = {
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkDeployment",
        "metadata": _meta(s.pipeline_id),
        "spec": {
            "image": IMAGE,
            "flinkVersion": FLINK_VERSION,
            "serviceAccount": "flink",
            "flinkConfiguration": dict(sorted(conf.items())),
            "jobManager": {"resource": {"memory": f.jobmanager_memory, "cpu": 1}},
            "taskManager": {"resource": {"memory": f.taskmanager_memory, "cpu": 2}},
            "podTemplate": {"spec": {"containers": [{"name": "flink-main-container", "env": env}]}},
        },
    }
    out = [session]
    for name in JOBS:
        out.append(
            {
                "apiVersion": "flink.apache.org/v1beta1",
                "kind": "FlinkSessionJob",
                "metadata": _meta(f"{s.pipeline_id}-{name.replace('_', '-')}", job=name),
                "spec": {
                    "deploymentName": s.pipeline_id,
                    "job": {
                        # PyFlink's driver from the image's flink-python jar runs the entry point.
                        "jarURI": "local:///opt/flink/opt/flink-python.jar",
                        "entryClass": "org.apache.flink.client.python.PythonDriver",
                        "args": ["-py", ENTRY, "-pyexec", PYTHON, "-pyclientexec", PYTHON, name],
                        "parallelism": f.parallelism,
                        "upgradeMode": "savepoint",
                        "state": "running",
                    },
                },
            }
        )
    return out


def kafka(s: PlatformSettings, conf_dir: Path) -> list[Manifest]:
    from jobs import catalog

    k = s.kafka
    out: list[Manifest] = [
        {
            "apiVersion": "kafka.strimzi.io/v1beta2",
            "kind": "KafkaNodePool",
            "metadata": _meta("dual-role", **{"strimzi.io/cluster": KAFKA}),
            "spec": {
                "replicas": 3,
                "roles": ["controller", "broker"],
                "storage": {"type": "persistent-claim", "size": "100Gi", "deleteClaim": False},
            },
        },
        {
            "apiVersion": "kafka.strimzi.io/v1beta2",
            "kind": "Kafka",
            "metadata": {
                **_meta(KAFKA),
                "annotations": {"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"},
            },
            "spec": {
                "kafka": {
                    "listeners": [
                        {
                            "name": "tls",
                            "port": 9093,
                            "type": "internal",
                            "tls": True,
                            "authentication": {"type": "tls"},
                        }
                    ],
                    "authorization": {"type": "simple"},
                    "config": {
                        "auto.create.topics.enable": False,
                        "message.max.bytes": k.max_message_bytes,
                        "transaction.max.timeout.ms": k.transaction_max_timeout_ms,
                        "default.replication.factor": 3,
                        "min.insync.replicas": 2,
                        "offsets.topic.replication.factor": 3,
                        "transaction.state.log.replication.factor": 3,
                        "transaction.state.log.min.isr": 2,
                    },
                },
                "entityOperator": {"topicOperator": {}, "userOperator": {}},
            },
        },
    ]
    configs = {t: c for j in catalog.jobs(conf_dir).values() for t, c in j.topic_configs().items()}
    for topic, cfg in sorted(configs.items()):
        out.append(
            {
                "apiVersion": "kafka.strimzi.io/v1beta2",
                "kind": "KafkaTopic",
                "metadata": _meta(topic.replace("_", "-"), **{"strimzi.io/cluster": KAFKA}),
                "spec": {
                    "topicName": topic,
                    "partitions": k.default_partitions,
                    "replicas": 3,
                    "config": {**k.topic_config(), **dict(cfg)},
                },
            }
        )
    from streamlake.config import registry
    from streamlake.config.lake import load_lake
    from streamlake.lake import landing

    lake = load_lake(conf_dir)
    landed = landing.sinks(registry.load_registry(conf_dir), lake)
    users = dict(job_topics(conf_dir))
    users[LOADER] = (sorted({t for sink in landed for t in sink.topics}), [])
    for name, (reads, writes) in users.items():
        group = lake.consumer_group if name == LOADER else f"{s.pipeline_id}.{name}"
        acls: list[dict[str, Any]] = [_acl("topic", t, ["Read", "Describe"]) for t in sorted(reads)]
        acls += [_acl("topic", t, ["Write", "Describe"]) for t in sorted(writes)]
        acls.append(_acl("group", group, ["Read"]))
        if writes:
            acls.append(_acl("transactionalId", f"{s.pipeline_id}.{name}.", ["Write", "Describe"]))
        out.append(
            {
                "apiVersion": "kafka.strimzi.io/v1beta2",
                "kind": "KafkaUser",
                "metadata": _meta(
                    f"{s.pipeline_id}-{name.replace('_', '-')}", **{"strimzi.io/cluster": KAFKA}
                ),
                "spec": {
                    "authentication": {"type": "tls"},
                    "authorization": {"type": "simple", "acls": acls},
                },
            }
        )
    return out


def _acl(kind: str, name: str, operations: list[str]) -> dict[str, Any]:
    prefix = kind == "transactionalId"
    return {
        "resource": {
            "type": kind,
            "name": name,
            "patternType": "prefix" if prefix else "literal",
        },
        "operations": operations,
    }


def loader(s: PlatformSettings, conf_dir: Path) -> list[Manifest]:
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta("streamlake-loader", component=LOADER),
            "spec": {
                # One per lake.yaml instance_id (static group membership): scale by adding ids.
                "replicas": 1,
                "selector": {"matchLabels": {"app": "streamlake", "component": LOADER}},
                "template": {
                    "metadata": {"labels": {"app": "streamlake", "component": LOADER}},
                    "spec": {
                        "containers": [
                            {
                                "name": LOADER,
                                "image": IMAGE,
                                "command": ["python", "-m", "jobs", "loader", "--managed"],
                                "env": [
                                    {"name": "STREAMLAKE_KAFKA_BOOTSTRAP", "value": _bootstrap()}
                                ],
                                "readinessProbe": {
                                    "exec": {
                                        "command": ["python", "-m", "jobs", "healthy", LOADER]
                                    },
                                    "periodSeconds": 10,
                                },
                                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                                "volumeMounts": [
                                    {"name": "conf", "mountPath": "/opt/streamlake/conf"}
                                ],
                            }
                        ],
                        "volumes": [{"name": "conf", "configMap": {"name": "streamlake-conf"}}],
                    },
                },
            },
        }
    ]


RENDERERS = {"flink.yaml": flink, "kafka.yaml": kafka, "loader.yaml": loader}


def render(s: PlatformSettings, conf_dir: Path | None = None) -> dict[str, str]:
    """File name -> its YAML (documents separated by ---)."""
    conf = conf_dir or paths.CONF_DIR
    out = {}
    for name, fn in RENDERERS.items():
        docs = [yaml.safe_dump(m, sort_keys=False) for m in fn(s, conf)]
        header = "# Rendered by `python -m jobs deploy k8s` from conf/; do not edit.\n"
        out[name] = header + "---\n".join(docs)
    return out
