"""The Maven poms' properties: the one place jar versions are pinned."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from streamlake.config import paths

NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def pom_props(pom: Path = paths.POM) -> dict[str, str]:
    root = ET.parse(pom).getroot()  # noqa: S314 (our own pom)
    props = root.find("m:properties", NS)
    assert props is not None
    return {el.tag.split("}")[1]: (el.text or "") for el in props}
