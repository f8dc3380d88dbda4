"""Which resource and deployment each shard of a multi-resource job goes to. Pure: no I/O.

Azure's batch quota is enqueued input tokens per deployment, and a batch holds its tokens
until it ends ([AZ-LIMITS] in ``shared/research/batch-api-spec.md`` §3.2). So a shard goes
to a deployment that serves its model on the resource with the most room: the one whose
load after taking the shard is the smallest share of its quota. Over many shards that fills
every deployment in proportion to its quota, and none queues while another has room.

A quota is the one the service reported (learned: the ``deployment-maximum-enqueued-tokens``
header, or a ``token_limit_exceeded`` reply), else the configured one; a deployment with
neither counts as large as the largest known among the candidates (as equal shares when
no quota is known at all). Nothing here is enforced: a quota only weighs the choice.
A resource whose target does not take a shard's line ``url`` (the target profiles' ``urls``,
``jsonl_batch/data/profiles.json``) is never chosen for it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from ..errors import ConfigError
from ..formats.resources import Resource

SlotKey = tuple[str, str]
"""``(resource name, deployment name)``."""


@dataclass(frozen=True, slots=True)
class Slot:
    """One deployment of one resource."""

    resource: str
    deployment: str
    model: str
    quota: int | None
    urls: frozenset[str] = frozenset()
    """Line urls its resource takes; empty: any."""

    @property
    def key(self) -> SlotKey:
        return (self.resource, self.deployment)


@dataclass(frozen=True, slots=True)
class Need:
    """What the planner knows of a shard: its ``body.model`` and its weight (input tokens)."""

    index: int
    model: str
    tokens: int
    url: str | None = None


def slots_of(
    resources: Iterable[Resource],
    learned: Mapping[str, Mapping[str, int]] | None = None,
    urls: Mapping[str, frozenset[str]] | None = None,
) -> list[Slot]:
    """Every deployment of every resource, in file order, with its quota (learned first)
    and the line urls its resource takes (``urls`` by resource name; absent: any)."""
    learned = learned or {}
    urls = urls or {}
    return [
        Slot(
            resource.name,
            name,
            deployment.model,
            learned.get(resource.name, {}).get(name) or deployment.enqueued_token_quota,
            urls.get(resource.name, frozenset()),
        )
        for resource in resources
        for name, deployment in resource.deployments.items()
    ]


def model_of(name: str, slots: Sequence[Slot]) -> str:
    """The model a ``body.model`` asks for: a deployment's model when it names one
    (Azure's body.model is a deployment name), else the name itself."""
    for slot in slots:
        if slot.deployment == name:
            return slot.model
    return name


def serving(
    need: Need,
    slots: Sequence[Slot],
    *,
    down: Collection[str] = (),
    avoid: Collection[str] = (),
) -> list[Slot]:
    """The slots that serve the shard's model and take its url, on resources not down;
    those not in ``avoid`` when there are any."""
    wanted = model_of(need.model, slots)
    found = [
        slot
        for slot in slots
        if slot.model == wanted
        and slot.resource not in down
        and (not slot.urls or need.url is None or need.url in slot.urls)
    ]
    preferred = [slot for slot in found if slot.resource not in avoid]
    return preferred or found


def choose(need: Need, candidates: Sequence[Slot], load: Mapping[SlotKey, int]) -> Slot:
    """The candidate with the smallest share of its quota used once it takes ``need``
    (ties: the most room, then the first listed)."""
    known = [slot.quota for slot in candidates if slot.quota]
    default = max(known) if known else 1

    def rank(item: tuple[int, Slot]) -> tuple[float, int, int]:
        position, slot = item
        quota = slot.quota or default
        used = load.get(slot.key, 0)
        return ((used + need.tokens) / quota, used - quota, position)

    return min(enumerate(candidates), key=rank)[1]


def fits(need: Need, slot: Slot, load: Mapping[SlotKey, int]) -> bool:
    """Room for the shard now (a deployment with no load takes any shard, as Azure does)."""
    used = load.get(slot.key, 0)
    return slot.quota is None or used == 0 or used + need.tokens <= slot.quota


def plan(
    needs: Iterable[Need],
    slots: Sequence[Slot],
    *,
    load: Mapping[SlotKey, int] | None = None,
    down: Collection[str] = (),
    avoid: Collection[str] = (),
) -> dict[int, Slot]:
    """A slot per shard, in order, each taking the load of those before it.

    Raises ConfigError naming every model no resource serves, before anything is sent."""
    needs = list(needs)
    missing: dict[str, list[int]] = {}
    for need in needs:
        if not serving(need, slots, down=down, avoid=avoid):
            what = need.model
            if serving(replace(need, url=None), slots, down=down, avoid=avoid):
                what = f"{need.model} with url {need.url}"
            missing.setdefault(what, []).append(need.index)
    if missing:
        listed = "; ".join(
            f"{model} (shard{'s' if len(shards) > 1 else ''} {', '.join(map(str, shards[:5]))}"
            f"{', ...' if len(shards) > 5 else ''})"
            for model, shards in missing.items()
        )
        served = sorted({f"{slot.deployment}={slot.model}" for slot in slots})
        raise ConfigError(
            f"no resource{' that is up' if down else ''} serves model {listed}",
            hint="add a deployment of it to a resource (in the resources file, or an item"
            " RESOURCE/DEPLOYMENT=MODEL); deployments known: " + (", ".join(served) or "none"),
        )
    used = dict(load or {})
    chosen: dict[int, Slot] = {}
    for need in needs:
        slot = choose(need, serving(need, slots, down=down, avoid=avoid), used)
        used[slot.key] = used.get(slot.key, 0) + need.tokens
        chosen[need.index] = slot
    return chosen


def better_slot(
    need: Need,
    current: SlotKey,
    slots: Sequence[Slot],
    load: Mapping[SlotKey, int],
    *,
    down: Collection[str] = (),
    avoid: Collection[str] = (),
) -> Slot | None:
    """For a shard waiting for room on ``current``: another slot serving its model with room
    now (the emptiest by share of quota), or None."""
    candidates = [
        slot
        for slot in serving(need, slots, down=down, avoid=avoid)
        if slot.key != current and fits(need, slot, load)
    ]
    return choose(need, candidates, load) if candidates else None
