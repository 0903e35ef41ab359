"""Hostile-input tests run with exports enabled, so POST /v1/exports reaches its handler."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from queue_engine.config import EngineConfig


@pytest.fixture
def engine_config(engine_config: EngineConfig, tmp_path: Path) -> EngineConfig:
    return replace(engine_config, exports_dir=tmp_path / "exports")
