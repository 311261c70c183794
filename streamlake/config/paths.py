"""Where things live in a checkout. Everything generated at run time sits under .stack/ (ignored)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONF_DIR = REPO / "conf"
SQL_DIR = REPO / "sql"
POM = REPO / "connectors" / "maven" / "pom.xml"

STACK = Path(os.environ.get("STREAMLAKE_STACK_DIR", REPO / ".stack")).resolve()
JARS = STACK / "jars"
FLINK_JARS = JARS / "flink"
# The Silver job's JVM function, built from udfs/pom.xml and shipped with every job (pipeline.jars).
UDFS_JAR = JARS / "udfs" / "streamlake-udfs.jar"
KAFKA_JARS = JARS / "kafka"
LOGS = STACK / "logs"
RUN = STACK / "run"
KAFKA_DATA = STACK / "kafka" / "data"
FLINK_STATE = STACK / "flink"


def python_executable() -> str:
    """The interpreter of the project's virtualenv: the one Flink must run Python with."""
    return sys.executable


def worker_python_path() -> str:
    """PYTHONPATH for a Python interpreter Flink embeds (thread mode): the virtualenv's packages
    and the checkout, which the venv only names in .pth files that an embedded interpreter does
    not read."""
    import sysconfig

    purelib = sysconfig.get_paths()["purelib"]
    return os.pathsep.join(dict.fromkeys([purelib, str(REPO)]))


def pyflink_home() -> Path:
    import pyflink

    return Path(pyflink.__file__).resolve().parent
