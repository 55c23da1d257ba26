"""GPU tests: skipped unless a CUDA device is usable (each module also sets
`pytestmark = pytest.mark.gpu`, so `-m "not gpu"` deselects them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernels.backend import Backend, cuda_unavailable_reason, get_backend

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = cuda_unavailable_reason()
    for item in items:
        if reason is not None and HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.skip(reason=f"no usable CUDA device: {reason}"))


@pytest.fixture(scope="session")
def cuda() -> Backend:
    return get_backend("cuda")


@pytest.fixture(scope="session")
def cpu() -> Backend:
    return get_backend("cpu")
