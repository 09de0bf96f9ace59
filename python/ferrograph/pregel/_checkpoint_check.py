"""Debugging (`FERROGRAPH_CHECK_CHECKPOINTS=1`): each checkpoint `Persistence.save` built
from what changed since the last is compared with one built from scratch from the Rust run."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ferrograph.pregel._thread_format import (
    INPUT,
    INTERRUPT,
    TASKS,
    WireSend,
    tracked_arg,
    wire_value,
)

if TYPE_CHECKING:
    from ferrograph._core import Run
    from ferrograph.pregel._checkpoint import Persistence


def check_checkpoint(persistence: Persistence, rust: Run, names: list[Any],
                      start_value: Any) -> None:
    if persistence.graph.delta_keys:  # their values are not what the run holds
        return
    # From scratch (`reset`): all of it, nothing kept; what the next step reports is the
    # change since now, which the kept dicts (just checked) equal.
    values, _, versions, seen, sends = rust.checkpoint_changes(
        names, wire_value(start_value), True)
    seen = {node: row for node, row in seen.items() if row}
    for key in persistence.graph.untracked_keys:
        values.pop(key, None)
    if persistence.interrupt_seen:
        seen[INTERRUPT] = dict(persistence.interrupt_seen)
    seen.setdefault(INPUT, {})
    for name in persistence.call_names:
        seen.setdefault(name, {})
    checkpoint = persistence.checkpoint
    for name, row in checkpoint["versions_seen"].items():  # kept from earlier runs too
        if not row:
            seen.setdefault(name, {})
    if sends:
        values[TASKS] = [WireSend(node, tracked_arg(persistence.graph, arg)) for node, arg in sends]
        versions[TASKS] = names[rust.latest_version]
    elif TASKS in checkpoint["channel_versions"]:  # emptied: its version is the run's history
        values[TASKS] = []
        versions[TASKS] = checkpoint["channel_versions"][TASKS]
    for field_name, full in (("channel_values", values), ("channel_versions", versions),
                             ("versions_seen", seen)):
        built = checkpoint[field_name]
        if built.keys() != full.keys() or any(
                built[k] is not full[k] and built[k] != full[k] for k in full):
            raise AssertionError(f"checkpoint {field_name}: built {built!r}, full {full!r}")
