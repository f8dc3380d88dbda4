"""Fast acceptance predicates compiled from pydantic models.

Running pydantic on every line is what makes naive validators slow. :func:`quick_check`
compiles, from a model's own field annotations, a plain-Python predicate that answers
"pydantic would certainly accept this" for the common shapes (strings, numbers, literals,
lists of simple models). False means "not sure": the caller then runs the model for the
exact errors. The model stays the only source of truth, and a property test checks that
the predicate never accepts what the model rejects.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

Predicate = Callable[[Any], bool]
_SCALARS: dict[Any, tuple[type, ...]] = {
    str: (str,),
    int: (int,),
    float: (int, float),
    bool: (bool,),
    type(None): (type(None),),
}


def _bounds(metadata: list[Any]) -> tuple[float | None, float | None, int | None]:
    low = high = None
    min_len = None
    expanded: list[Any] = []
    for item in metadata:
        expanded.extend(item.metadata if isinstance(item, FieldInfo) else [item])
    for item in expanded:
        low = getattr(item, "ge", low)
        high = getattr(item, "le", high)
        min_len = getattr(item, "min_length", min_len)
    return low, high, min_len


def _predicate(annotation: Any, metadata: list[Any]) -> Predicate | None:
    """A quick predicate for one annotation, or None when it has no simple form."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *extra = get_args(annotation)
        return _predicate(inner, [*metadata, *extra])
    if origin in (Union, UnionType):
        return _union_predicate([_predicate(arg, metadata) for arg in get_args(annotation)])
    if origin is Literal:
        allowed = frozenset(get_args(annotation))
        return lambda v: type(v) is str and v in allowed
    if origin is list:
        return _list_predicate(get_args(annotation)[0], metadata)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return quick_check(annotation)
    types = _SCALARS.get(annotation)
    if types is None:
        return None
    low, high, min_len = _bounds(metadata)
    if annotation is type(None) or (low is None and high is None and min_len is None):
        return _type_check(types)

    def check(v: Any) -> bool:
        if type(v) not in types:
            return False
        if low is not None and v < low:
            return False
        if high is not None and v > high:
            return False
        return min_len is None or len(v) >= min_len

    return check


def _type_check(types: tuple[type, ...]) -> Predicate:
    """``type(v) in types``, tagged with ``.types`` so callers can inline or merge it."""

    def check(v: Any) -> bool:
        return type(v) in types

    check.types = types  # type: ignore[attr-defined]
    return check


def _union_predicate(members: list[Predicate | None]) -> Predicate | None:
    simple = [m for m in members if m is not None]
    if not simple:
        return None
    types = tuple(t for m in simple for t in getattr(m, "types", ()))
    others = [m for m in simple if not hasattr(m, "types")]
    if not others:
        return _type_check(types)

    def check(v: Any) -> bool:
        if type(v) in types:
            return True
        for member in others:  # noqa: SIM110 - a loop beats any() + genexpr here
            if member(v):
                return True
        return False

    return check


def _list_predicate(item_type: Any, metadata: list[Any]) -> Predicate | None:
    item = _predicate(item_type, [])
    if item is None:
        return None
    need = _bounds(metadata)[2] or 0

    def check(v: Any) -> bool:
        if type(v) is not list or len(v) < need:
            return False
        for x in v:  # noqa: SIM110 - hot path: a loop beats all() + genexpr
            if not item(x):
                return False
        return True

    return check


@functools.cache
def quick_check(model: type[BaseModel]) -> Predicate:
    """A predicate that is True only for inputs ``model`` accepts (see the module doc)."""
    fields: dict[str, tuple[tuple[type, ...] | None, Predicate | None]] = {}
    for name, info in model.model_fields.items():
        check = _predicate(info.annotation, list(info.metadata))
        types = getattr(check, "types", None)
        fields[name] = (types, None if types else check)
    required = frozenset(n for n, info in model.model_fields.items() if info.is_required())
    allow_extra = model.model_config.get("extra") == "allow"
    lookup = fields.get

    def accepts(value: Any) -> bool:
        if type(value) is not dict or not required <= value.keys():
            return False
        for key, item in value.items():
            field = lookup(key)
            if field is None:
                if not allow_extra:
                    return False
                continue
            types, check = field
            if types is not None:
                if type(item) not in types:
                    return False
            elif check is None or not check(item):
                return False
        return True

    return accepts
