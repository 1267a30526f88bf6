"""broker/gateway/identities.py: record shape, derived status, key layout, listing and paging."""

from __future__ import annotations

import pytest

from broker.gateway import identities, tables
from broker.gateway.errors import ServiceError
from broker.gateway.service import Device2Service
from broker.storage import Store
from tests.gateway.conftest import Clock, Recorder


def test_derived_status_order() -> None:
    r = identities.new_record("d", "token", 1)
    assert identities.status(r) == "whitelisted"
    r["auth"]["secret"] = "x"
    assert identities.status(r) == "provisioned"
    r["reprovision"] = True
    assert identities.status(r) == "reprovision"
    r["locked"] = True
    assert identities.status(r) == "locked"


def test_public_record_shape_never_has_credentials() -> None:
    r = identities.new_record("d", "password", 1)
    r["auth"]["secret"] = "scrypt$secret"
    pub = identities.public(r, {}, True)
    assert set(pub) == {"identity", "auth", "state", "locked", "reprovision", "devmode",
                        "lastip", "lastseen", "status", "online", "tags"}
    assert pub["auth"] == {"type": "password"} and pub["online"] is True


def test_key_layout_orders_per_connector(store: Store, service: Device2Service) -> None:
    cid = service.list_connectors()[0]["id"]
    for name in ("b", "a", "c"):
        service.addIdentity(identity=name)
    with store.read() as txn:
        keys = [k for k, _ in txn.scan(tables.IDENTITIES)]
    assert keys == [tables.key(cid, n) for n in ("a", "b", "c")]


def add_fleet(service: Device2Service, clock: Clock, recorder: Recorder) -> None:
    for i in range(10):
        service.addIdentity(identity=f"dev{i:02d}",
                            tags=[{"name": "site", "value": "Lyon" if i < 4 else "Paris"}])
        clock.advance(1)
    service.provision(identity="dev01", ip="10.0.0.1")
    service.provision(identity="dev02", ip="10.0.1.2")
    service.device_connected(identity="dev02", ip="10.0.1.2", devmode=True)
    service.updateIdentity(identity="dev03", locked=True)
    service.provision(identity="dev04", ip="192.168.1.1")
    service.updateIdentity(identity="dev04", auth={"expire": 0})
    recorder.online = {"dev01", "dev05"}


def ids(page: dict) -> list[str]:  # type: ignore[type-arg]
    return [d["identity"] for d in page["devices"]]


def test_list_filters(service: Device2Service, clock: Clock, recorder: Recorder) -> None:
    add_fleet(service, clock, recorder)
    L = service.listIdentities
    assert ids(L(status="provisioned")) == ["dev01", "dev02"]
    assert ids(L(status="locked")) == ["dev03"]
    assert ids(L(status="reprovision")) == ["dev04"]
    assert ids(L(status="devmode")) == ["dev02"]
    assert len(ids(L(status="whitelisted"))) == 6
    assert ids(L(identity="dev0[12]")) == ["dev01", "dev02"]
    assert ids(L(identity="*9")) == ["dev09"]
    assert ids(L(ipaddress="10.0.*")) == ["dev01", "dev02"]
    assert ids(L(tag_name="site", tag_value="Lyon")) == ["dev00", "dev01", "dev02", "dev03"]
    assert ids(L(tag_name="site", tag_value="Lyon", status="locked")) == ["dev03"]
    assert len(ids(L(tag_name="site"))) == 10
    assert ids(L(online=True)) == ["dev01", "dev05"]
    assert ids(L(online="true")) == ["dev01", "dev05"]
    assert len(ids(L(online=False))) == 8
    from tests.gateway.conftest import T0
    assert ids(L(before=T0 + 2_000_000)) == ["dev00", "dev01"]
    assert L(identity="dev01")["devices"][0]["online"] is True
    assert service.countIdentities(status="whitelisted") == {"total": 6}


def test_paging_and_sorting(service: Device2Service, clock: Clock, recorder: Recorder) -> None:
    add_fleet(service, clock, recorder)
    p1 = service.listIdentities(limit=4)
    assert ids(p1) == ["dev00", "dev01", "dev02", "dev03"]
    assert (p1["total"], p1["mayLoadMore"]) == (10, True)
    p3 = service.listIdentities(limit=4, offset=8)
    assert ids(p3) == ["dev08", "dev09"] and p3["mayLoadMore"] is False
    assert ids(service.listIdentities(sort="-identity", limit=2)) == ["dev09", "dev08"]
    by_seen = ids(service.listIdentities(sort="-lastseen", limit=1))
    assert by_seen == ["dev02"]
    assert ids(service.listIdentities(sort="status", limit=1)) == ["dev03"]  # locked first
    assert ids(service.listIdentities(sort="-created", limit=1)) == ["dev09"]


@pytest.mark.parametrize("args", [{"status": "gone"}, {"limit": -1}, {"limit": 5000},
                                  {"offset": -2}, {"sort": "colour"}, {"tag_value": "x"},
                                  {"online": "maybe"}, {"before": "x"}, {"identity": 5}])
def test_list_bad_arguments(service: Device2Service, args: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ServiceError) as info:
        service.listIdentities(**args)
    assert info.value.code == "bad_request"
