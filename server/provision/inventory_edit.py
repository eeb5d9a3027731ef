"""The inventory edited in place for `provision device` and `revoke`: comments, key order and quotes kept."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from server.provision.files import _read_text, replace_file


class InventoryFile:
    """An inventory loaded for a round trip: ruamel keeps comments, key order, quotes and indentation."""

    def __init__(self, path: Path) -> None:
        from ruamel.yaml import YAML
        from ruamel.yaml.util import load_yaml_guess_indent

        from server.inventory import Inventory

        self.path = path
        text = _read_text(path, "inventory")
        self.model = Inventory.from_text(text, str(path))  # a ConfigError names the file, the field and the fix
        _, indent, dash_offset = load_yaml_guess_indent(text)
        self.yaml = YAML()
        self.yaml.preserve_quotes = True
        self.yaml.width = 4096  # never re-wrap a long line
        self.yaml.indent(mapping=dash_offset or 2, sequence=indent or 2, offset=dash_offset or 0)
        self.data = self.yaml.load(text)
        self.original = text
        # ruamel writes a few rare layouts (a one-key mapping inside [...]) differently but equivalently.
        self.reformatted = self.render() != text

    def venue(self, venue_id: str) -> Any:
        """The venue's mapping in the YAML tree, or None."""
        for township in self.data.get("townships") or []:
            for village in township.get("villages") or []:
                for venue in village.get("venues") or []:
                    if venue.get("id") == venue_id:
                        return venue
        return None

    def add_device(self, venue_id: str, device: str, doors: list[str],
                   cameras: list[tuple[str, list[str]]] | None = None) -> None:
        """Append the device to the venue's `devices`, keeping the comments that follow the list in place.

        `cameras`: (camera id, doors it sees), for the server's door-open-without-motion check.
        """
        from ruamel.yaml.comments import CommentedMap, CommentedSeq

        venue = self.venue(venue_id)
        devices = venue.get("devices")
        if _is_block(devices):
            following = _take_after(devices[-1])
        elif isinstance(devices, CommentedSeq):
            following = _take_slot_rest((venue, "devices", 2))
        else:
            following = _take_after(venue, own_end=False)
            devices = venue["devices"] = CommentedSeq()
        if not venue.fa.flow_style():  # `devices: []` becomes a block list; inside a {…} venue all stays flow
            devices.fa.set_block_style()
        entry = CommentedMap(id=device)
        entry["doors"] = CommentedSeq(doors)
        entry["doors"].fa.set_flow_style()
        if cameras:
            entry["cameras"] = CommentedSeq()
            for camera, covers in cameras:
                item = CommentedMap(id=camera)
                item["covers"] = CommentedSeq(covers)
                item["covers"].fa.set_flow_style()
                entry["cameras"].append(item)
            if venue.fa.flow_style():
                entry["cameras"].fa.set_flow_style()
        devices.append(entry)
        _give_after(_last_slot(devices), following)

    def remove_device(self, device: str) -> str | None:
        """Remove the device's entry; returns its venue id (None if it is not listed)."""
        venue_id = self.model.device_venue.get(device)
        if venue_id is None:
            return None
        venue = self.venue(venue_id)
        devices = venue["devices"]
        index = next(i for i, entry in enumerate(devices) if entry.get("id") == device)
        # Lines after the entry describe what follows it: give them to the entry that now comes before that.
        following = _take_after(devices[index])
        del devices[index]
        if not devices:
            following += _take_end(devices)  # a flow list `[]` prints no comments after itself
            devices.fa.set_flow_style()  # `devices: []`, as an empty venue is written by hand
            _give_after((venue, "devices", 2), following)
        elif index > 0:
            _give_after(_slot_after(devices, index - 1, 0), following)
        return venue_id

    def node(self, node_id: str) -> Any:
        """The township's or village's mapping in the YAML tree, or None."""
        for township in self.data.get("townships") or []:
            if township.get("id") == node_id:
                return township
            for village in township.get("villages") or []:
                if village.get("id") == node_id:
                    return village
        return None

    def add_node(self, parent_id: str | None, key: str, entry: dict[str, Any]) -> None:
        """Append a township (parent None, key `townships`), a village or a venue, as add_device does a device.

        Lists of periods and doors are written inline (`mon: ["08:30-12:00"]`), as the examples are.
        """
        from ruamel.yaml.comments import CommentedMap, CommentedSeq

        holder = self.data if parent_id is None else (self.venue(parent_id) if key == "devices"
                                                      else self.node(parent_id))
        node = CommentedMap()
        for field, value in entry.items():
            if isinstance(value, dict):
                value = CommentedMap((k, _inline(v)) for k, v in value.items())
            node[field] = _inline(value)
        items = holder.get(key)
        if _is_block(items):
            following = _take_after(items[-1])
        elif isinstance(items, CommentedSeq):
            following = _take_slot_rest((holder, key, 2))
        else:
            following = _take_after(holder, own_end=False)
            items = holder[key] = CommentedSeq()
        if not holder.fa.flow_style():
            items.fa.set_block_style()
        items.append(node)
        _give_after(_last_slot(items), following)

    def set_schedule(self, venue_id: str, hours: dict[str, list[str]], holidays: str) -> None:
        """Replace a venue's weekly hours and holiday rule; its other keys, exceptions and comments stay."""
        from ruamel.yaml.comments import CommentedMap

        venue = self.venue(venue_id)
        venue["hours"] = CommentedMap((day, _inline(periods)) for day, periods in hours.items())
        if holidays == "closed":
            venue.pop("holidays", None)  # the default, left out as a hand-written file does
        else:
            venue["holidays"] = holidays

    def render(self) -> str:
        out = io.StringIO()
        self.yaml.dump(self.data, out)
        return out.getvalue()

    def checked_text(self) -> str:
        """The edited file, validated with the server's own model: a change the server would refuse is not written."""
        from server.inventory import Inventory

        text = self.render()
        Inventory.from_text(text, f"{self.path} (as it would be after the change; nothing was written)")
        return text

    def save(self, text: str) -> Path:
        """Keep the old file as .bak and replace it atomically, with its owner and mode."""
        backup = self.path.with_name(self.path.name + ".bak")
        st = self.path.stat()
        replace_file(backup, self.original.encode("utf-8"), st.st_mode & 0o777, (st.st_uid, st.st_gid))
        replace_file(self.path, text.encode("utf-8"), st.st_mode & 0o777, (st.st_uid, st.st_gid))
        return backup


# ruamel keeps the comment lines that follow a collection on its deepest last entry, so appending would put
# the new entry below comments that describe the next venue or village. These helpers move such lines.
Slot = tuple[Any, Any, int]


def _inline(value: Any) -> Any:
    """A list of plain values (periods, door ids) as a flow sequence; anything else as it is."""
    from ruamel.yaml.comments import CommentedSeq

    if not isinstance(value, list):
        return value
    seq = CommentedSeq(value)
    seq.fa.set_flow_style()
    return seq


def _is_block(value: Any) -> bool:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    return isinstance(value, CommentedMap | CommentedSeq) and len(value) > 0 and not value.fa.flow_style()


def _last_slot(node: Any) -> Slot | None:
    """Where ruamel stores the comments after `node`: (holder, key, position) on its deepest last entry."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap) and node:
        return _slot_after(node, list(node)[-1], 2)
    if isinstance(node, CommentedSeq) and node:
        return _slot_after(node, len(node) - 1, 0)
    return None


def _slot_after(holder: Any, key: Any, position: int) -> Slot | None:
    value = holder[key]
    return _last_slot(value) if _is_block(value) else (holder, key, position)


def _take_after(node: Any, own_end: bool = True) -> str:
    """Detach the comment lines printed after `node`'s last line (its end-of-line comment stays).

    ruamel keeps them on the deepest last entry, or as `end` comments of a collection on the way down.
    """
    lines = _take_slot_rest(_last_slot(node))
    chain = [node]
    while _is_block(chain[-1]):
        last = chain[-1]
        child = last[list(last)[-1]] if isinstance(last, dict) else last[-1]
        chain.append(child)
    for collection in reversed(chain if own_end else chain[1:]):
        lines += _take_end(collection)
    return lines


def _take_end(node: Any) -> str:
    """Detach a collection's `end` comments as text with their indentation."""
    tokens = getattr(getattr(node, "ca", None), "end", None)
    if not tokens:
        return ""
    node.ca.end = []
    return "".join(" " * token.column + token.value.lstrip(" ") for token in tokens)


def _take_slot_rest(slot: Slot | None) -> str:
    """Detach the comment lines after a slot's line; its own end-of-line comment stays."""
    if slot is None:
        return ""
    holder, key, position = slot
    entry = holder.ca.items.get(key)
    token = entry[position] if entry and len(entry) > position else None
    if token is None:
        return ""
    own, newline, rest = token.value.partition("\n")
    if not rest:
        return ""
    if own.strip():
        token.value = own + newline
    else:
        entry[position] = None
    return rest


def _give_after(slot: Slot | None, lines: str) -> None:
    """Attach comment lines after a slot's line (after its end-of-line comment, if any)."""
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    if not lines or slot is None:
        return
    holder, key, position = slot
    entry = holder.ca.items.setdefault(key, [None, None, None, None])
    if entry[position] is None:
        entry[position] = CommentToken("\n" + lines, CommentMark(0))
    else:
        entry[position].value = entry[position].value.rstrip("\n") + "\n" + lines
