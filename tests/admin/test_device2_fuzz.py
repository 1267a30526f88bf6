"""Hypothesis against the Device2 RPC route: every operation, called with arguments of the
right names but any JSON values (and with stray names), answers a JSON error ``{status, code,
message}`` below 500 or succeeds; never a 500. (The OpenAPI run leaves this route out: its
body depends on the operation.)"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.gateway.service import Device2Service
from broker.storage.memory_store import MemoryStore
from tests.admin.conftest import AdminApi, running_admin

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=10)
# Values that reach deeper than random JSON: the fixture's names, plausible shapes.
PLAUSIBLE = st.sampled_from([
    "dev1", "temp", "site", "", "*", "x" * 300, 0, -1, 10**20, True, [], {},
    [{"name": "site", "value": "Lyon"}], {"type": "token", "key": "k" * 40},
    {"type": "password", "key": "p" * 25}, {"expire": 0}, "ID\ndev9\n", ["dev9"]])
VALUES = PLAUSIBLE | JSON


def _operations() -> dict[str, list[str]]:
    """Each operation of the service's table and its argument names."""
    table = Device2Service(MemoryStore()).operations
    return {name: [p for p in inspect.signature(method).parameters if p != "connector_id"]
            for name, method in table.items()}


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminApi]:
    data = Path(tmp_path_factory.mktemp("device2"))
    with running_admin(data, content_dir=data / "content") as api:
        assert api.request("PUT", api.url("/resources/temp"),
                           {"format": "number", "settable": True}).status == 201
        assert api.request("POST", api.url("/identities"), {
            "identity": "dev1", "tags": [{"name": "site", "value": "Lyon"}]}).status == 201
        yield api


def test_the_fuzzed_operations_are_the_served_ones(live: AdminApi) -> None:
    served = set(live.call(lambda: list(live.service.operations)))
    assert set(OPERATIONS) == served and len(served) >= 25


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_no_arguments_make_a_server_error(live: AdminApi, operation: str) -> None:
    params = OPERATIONS[operation]

    @given(args=st.fixed_dictionaries({}, optional={p: VALUES for p in params})
           | st.dictionaries(st.sampled_from([*params, "bogus"]), VALUES, max_size=4))
    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(args: dict[str, Any]) -> None:
        answer = live.request("POST", live.url(f"/device2/{operation}"), args)
        assert answer.status < 500, (operation, args, answer.body)
        if answer.status >= 400:
            body = answer.body
            assert isinstance(body, dict) and body["status"] == answer.status, body
            assert isinstance(body["code"], str) and isinstance(body["message"], str), body

    run()
