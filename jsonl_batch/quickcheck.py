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
_JSON_TYPES = (dict, list, str, int, float, bool, type(None))


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


# A compiled check is a small tuple the hot loop in ``quick_check`` interprets inline,
# so the common cases (a type, a literal, a list of models) cost no extra call.
TYPES, LITERAL, UNION, LIST, CALL = range(5)
Spec = tuple[int, Any, Any]


def _spec(annotation: Any, metadata: list[Any]) -> Spec | None:
    """Compile one annotation, or None when it has no simple form (pydantic decides)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *extra = get_args(annotation)
        return _spec(inner, [*metadata, *extra])
    if origin in (Union, UnionType):
        return _union_spec([_spec(arg, metadata) for arg in get_args(annotation)])
    if origin is Literal:
        return (LITERAL, frozenset(get_args(annotation)), None)
    if annotation is Any:
        return (TYPES, _JSON_TYPES, None)
    if origin is dict and get_args(annotation) == (str, Any):
        return (TYPES, (dict,), None)  # parsed JSON objects always have str keys
    if origin is list:
        item = _spec(get_args(annotation)[0], [])
        if item is None:
            return None
        return (LIST, _callable(item), _ListInfo(_bounds(metadata)[2] or 0))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return (CALL, quick_check(annotation), None)
    types = _SCALARS.get(annotation)
    if types is None:
        return None
    low, high, min_len = _bounds(metadata)
    if annotation is type(None) or (low is None and high is None and min_len is None):
        return (TYPES, types, None)

    def bounded(v: Any) -> bool:
        if type(v) not in types:
            return False
        if low is not None and v < low:
            return False
        if high is not None and v > high:
            return False
        return min_len is None or len(v) >= min_len

    return (CALL, bounded, None)


class _ListInfo:
    """Minimum length, and the items accepted last at the first positions: batch files
    repeat the same system message on every line, and an equal item needs no new check."""

    __slots__ = ("last", "min_length")

    def __init__(self, min_length: int) -> None:
        self.min_length = min_length
        self.last: list[Any] = [None, None]


def _list_matches(item: Predicate, info: _ListInfo, value: Any) -> bool:
    if type(value) is not list or len(value) < info.min_length:
        return False
    last = info.last
    for index, x in enumerate(value):
        if index < 2:
            if x == last[index]:
                continue
            if not item(x):
                return False
            last[index] = x
        elif not item(x):
            return False
    return True


def _union_spec(members: list[Spec | None]) -> Spec | None:
    simple = [m for m in members if m is not None]
    if not simple:
        return None
    types = tuple(t for kind, a, _ in simple if kind == TYPES for t in a)
    others = [_callable(m) for m in simple if m[0] != TYPES]
    if not others:
        return (TYPES, types, None)

    def rest(v: Any) -> bool:
        for member in others:  # noqa: SIM110 - a loop beats any() + genexpr here
            if member(v):
                return True
        return False

    return (UNION, types, rest)


def _callable(spec: Spec) -> Predicate:
    """The same check as a function, for nesting."""
    kind, a, b = spec
    if kind == CALL:
        return a  # type: ignore[no-any-return]
    return lambda v: _matches(kind, a, b, v)


def _matches(kind: int, a: Any, b: Any, value: Any) -> bool:
    if kind == TYPES:
        return type(value) in a
    if kind == LITERAL:
        return type(value) is str and value in a
    if kind == UNION:
        return type(value) in a or b(value)
    if kind == LIST:
        return _list_matches(a, b, value)
    return a(value)  # type: ignore[no-any-return]


@functools.cache
def quick_check(model: type[BaseModel]) -> Predicate:
    """A predicate that is True only for inputs ``model`` accepts (see the module doc)."""
    specs = {
        name: _spec(info.annotation, list(info.metadata))
        for name, info in model.model_fields.items()
    }
    required = frozenset(n for n, info in model.model_fields.items() if info.is_required())
    allow_extra = model.model_config.get("extra") == "allow"
    lookup = specs.get
    unknown = (None, None, None)

    def accepts(value: Any) -> bool:
        if type(value) is not dict or not value.keys() >= required:
            return False
        for key, item in value.items():
            spec = lookup(key, unknown)
            if spec is None:
                return False  # a field with no quick form: let pydantic decide
            kind, a, b = spec
            # The branches repeat _matches inline: this loop runs for every line.
            if kind == TYPES:
                if type(item) not in a:
                    return False
            elif kind == LITERAL:
                if type(item) is not str or item not in a:
                    return False
            elif kind == UNION:
                if type(item) not in a and not b(item):
                    return False
            elif kind == LIST:
                if not _list_matches(a, b, item):
                    return False
            elif kind == CALL:
                if not a(item):
                    return False
            elif not allow_extra:
                return False
        return True

    return accepts
