"""Functional-test hooks: make each test's outcome visible to its fixtures, so network
fixtures can print the nodes' logs when (and only when) a test failed."""

from __future__ import annotations

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
