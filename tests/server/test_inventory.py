from pathlib import Path

import pytest

from protocol.configfile import ConfigError
from server.inventory import Inventory, load_inventory

BASE = """\
county: {id: c, name: 县}
townships:
  - id: t1
    name: 镇一
    villages:
      - id: v1
        name: 村一
        venues:
          - id: venue-1
            name: 党群服务中心
            hours: {mon: ["08:30-12:00"]}
            devices: [{id: pi-0001, doors: [front]}]
"""


def test_lookups():
    inv = Inventory.from_text(BASE, "inventory.yaml")
    assert inv.venue_of("pi-0001").township_id == "t1"
    assert inv.venue_of("pi-9999") is None


@pytest.mark.parametrize(("change", "expected"), [
    (("08:30-12:00", "8:30-12"),
     "townships[0].villages[0].venues[0].hours: '8:30-12' is not a period; write HH:MM-HH:MM"),
    (("id: v1", "id: t1"), "townships[0].villages[0].id: 't1' is already used by townships[0]"),
    (("name: 党群服务中心", "nme: 党群服务中心"), "nme: is not a known key"),
])
def test_errors_name_the_path(change, expected):
    with pytest.raises(ConfigError) as err:
        Inventory.from_text(BASE.replace(*change), "inventory.yaml")
    assert str(err.value).startswith("inventory.yaml: ")
    assert expected in str(err.value)


def test_a_device_belongs_to_one_venue():
    twice = BASE + """\
          - id: venue-2
            name: 文化室
            devices: [{id: pi-0001}]
"""
    with pytest.raises(ConfigError, match="device 'pi-0001' is already at venue-1"):
        Inventory.from_text(twice, "inventory.yaml")


def test_example_inventory_is_valid():
    repo = Path(__file__).resolve().parents[2]
    inv = load_inventory(repo / "deploy/examples/inventory.yaml")
    assert len(inv.venues) >= 3
