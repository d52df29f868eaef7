from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.charts import SHARED

IN_CI = os.environ.get("CI") == "true"


def need_shared(sub: str) -> Path:
    """A folder of ../shared, or a skip that says why. CI always has ../shared, so there a missing
    folder is a failure, never a silent skip."""
    path = SHARED / sub
    if not path.is_dir():
        message = f"{path} is absent: it comes with the project's CI checkout (../shared beside the repo)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_crds() -> Path:
    return need_shared("crds")


@pytest.fixture(scope="session")
def shared_ct() -> Path:
    return need_shared("chart-testing")
