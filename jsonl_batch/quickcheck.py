"""Fast acceptance predicates compiled from pydantic models.

Running pydantic on every line is what makes naive validators slow. :func:`quick_check`
compiles, from a model's own field annotations, a plain-Python predicate that answers
"pydantic would certainly accept this" for the common shapes (strings, numbers, literals,
lists and nested models of those). False means "not sure": the caller then runs the model
for the exact errors. The model stays the only source of truth, and a property test checks
that the predicate never accepts what the model rejects.

The predicate is generated as Python source, with nested models and lists inlined, the way
``dataclasses`` and ``attrs`` generate ``__init__``: one function call per line instead of
one per field is what makes it several times faster than an interpreter over the fields.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec
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
_MAX_INLINE_DEPTH = 6


# --- annotations → specs ------------------------------------------------------------


@dataclass(frozen=True)
class _Scalar:
    types: tuple[type, ...]
    low: float | None = None
    high: float | None = None
    min_length: int | None = None
    max_length: int | None = None


@dataclass(frozen=True)
class _Literal:
    values: frozenset[Any]


@dataclass(frozen=True)
class _List:
    item: Any  # a spec
    min_length: int
    max_length: int | None = None


@dataclass(frozen=True)
class _ModelSpec:
    model: type[BaseModel]


@dataclass(frozen=True)
class _Union:
    members: tuple[Any, ...]  # specs


def _bounds(
    metadata: list[Any],
) -> tuple[float | None, float | None, int | None, int | None]:
    low = high = None
    min_len = max_len = None
    expanded: list[Any] = []
    for item in metadata:
        expanded.extend(item.metadata if isinstance(item, FieldInfo) else [item])
    for item in expanded:
        low = getattr(item, "ge", low)
        high = getattr(item, "le", high)
        min_len = getattr(item, "min_length", min_len)
        max_len = getattr(item, "max_length", max_len)
    return low, high, min_len, max_len


def _has_validators(model: type[BaseModel]) -> bool:
    """Models with their own validators have no quick form: pydantic decides."""
    decorators = model.__pydantic_decorators__
    return bool(decorators.model_validators or decorators.field_validators)


def _spec(annotation: Any, metadata: list[Any]) -> Any:
    """Describe one annotation, or None when it has no simple form (pydantic decides)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *extra = get_args(annotation)
        return _spec(inner, [*metadata, *extra])
    if origin in (Union, UnionType):
        members = tuple(_spec(arg, metadata) for arg in get_args(annotation))
        return None if None in members else _Union(members)
    if origin is Literal:
        return _Literal(frozenset(get_args(annotation)))
    if annotation is Any:
        return _Scalar(_JSON_TYPES)
    if origin is dict and get_args(annotation) == (str, Any):
        return _Scalar((dict,))  # parsed JSON objects always have str keys
    if origin is list:
        item = _spec(get_args(annotation)[0], [])
        _low, _high, min_len, max_len = _bounds(metadata)
        return None if item is None else _List(item, min_len or 0, max_len)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return None if _has_validators(annotation) else _ModelSpec(annotation)
    types = _SCALARS.get(annotation)
    if types is None:
        return None
    if annotation is type(None):
        return _Scalar(types)
    return _Scalar(types, *_bounds(metadata))


# --- specs → Python source ----------------------------------------------------------


class _Writer:
    """Accumulates the generated function's lines and the constants it refers to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}

    def constant(self, value: Any) -> str:
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def emit(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    def expression(self, spec: Any, x: str, depth: int) -> str | None:
        """A boolean expression for ``spec`` on variable ``x``, or None if it needs
        statements (models and lists of models)."""
        if isinstance(spec, _Scalar):
            if len(spec.types) == 1:
                parts = [f"type({x}) is {self.constant(spec.types[0])}"]
            else:
                parts = [f"type({x}) in {self.constant(spec.types)}"]
            if spec.low is not None:
                parts.append(f"{x} >= {spec.low!r}")
            if spec.high is not None:
                parts.append(f"{x} <= {spec.high!r}")
            if spec.min_length is not None:
                parts.append(f"len({x}) >= {spec.min_length}")
            if spec.max_length is not None:
                parts.append(f"len({x}) <= {spec.max_length}")
            return "(" + " and ".join(parts) + ")"
        if isinstance(spec, _Literal):
            return f"(type({x}) is str and {x} in {self.constant(spec.values)})"
        if isinstance(spec, _List):
            y = f"y{depth}"
            item = self.expression(spec.item, y, depth + 1)
            if item is None:
                return None
            longest = "" if spec.max_length is None else f" and len({x}) <= {spec.max_length}"
            return (
                f"(type({x}) is list and len({x}) >= {spec.min_length}{longest} "
                f"and all({item} for {y} in {x}))"
            )
        if isinstance(spec, _Union):
            members = [self.expression(m, x, depth) for m in spec.members]
            if None in members:
                return None
            return "(" + " or ".join(members) + ")"  # type: ignore[arg-type]
        return None  # _ModelSpec

    def statements(self, spec: Any, x: str, indent: int, depth: int) -> None:
        """Statements that ``return False`` unless ``x`` matches ``spec``."""
        expression = self.expression(spec, x, depth)
        if expression is not None:
            self.emit(indent, f"if not {expression}: return False")
        elif depth > _MAX_INLINE_DEPTH:
            self.emit(indent, f"if not {self.constant(_callable(spec))}({x}): return False")
        elif isinstance(spec, _ModelSpec):
            self.model(spec.model, x, indent, depth)
        elif isinstance(spec, _List):
            y = f"y{depth}"
            longest = "" if spec.max_length is None else f" or len({x}) > {spec.max_length}"
            self.emit(indent, f"if type({x}) is not list or len({x}) < {spec.min_length}{longest}:")
            self.emit(indent + 1, "return False")
            self.emit(indent, f"for {y} in {x}:")
            self.statements(spec.item, y, indent + 1, depth + 1)
        else:  # a union with members that need statements
            simple = [e for m in spec.members if (e := self.expression(m, x, depth))]
            complex_members = [m for m in spec.members if self.expression(m, x, depth) is None]
            if len(complex_members) > 1:
                self.emit(indent, f"if not {self.constant(_callable(spec))}({x}): return False")
                return
            if simple:
                self.emit(indent, f"if not ({' or '.join(simple)}):")
                indent += 1
            self.statements(complex_members[0], x, indent, depth)

    def model(self, model: type[BaseModel], x: str, indent: int, depth: int) -> None:
        fields = model.model_fields
        self.emit(indent, f"if type({x}) is not dict: return False")
        for name, info in fields.items():
            if info.is_required():
                self.emit(indent, f"if {name!r} not in {x}: return False")
        key, value = f"k{depth}", f"v{depth}"
        self.emit(indent, f"for {key}, {value} in {x}.items():")
        keyword = "if"
        for name, info in fields.items():
            self.emit(indent + 1, f"{keyword} {key} == {name!r}:")
            keyword = "elif"
            spec = _spec(info.annotation, list(info.metadata))
            if spec is None:
                self.emit(indent + 2, "return False  # no quick form: pydantic decides")
            else:
                self.statements(spec, value, indent + 2, depth + 1)
        if model.model_config.get("extra") != "allow":
            self.emit(indent + 1, "else: return False")


def _callable(spec: Any) -> Predicate:
    """A compiled predicate for a spec (used when inlining stops)."""
    writer = _Writer()
    writer.emit(0, "def accepts(v):")
    writer.statements(spec, "v", 1, 0)
    writer.emit(1, "return True")
    return _build(writer)


def _build(writer: _Writer) -> Predicate:
    namespace = dict(writer.constants)
    exec("\n".join(writer.lines), namespace)  # source generated from the models above
    return namespace["accepts"]


@functools.cache
def quick_check(model: type[BaseModel]) -> Predicate:
    """A predicate that is True only for inputs ``model`` accepts (see the module doc)."""
    if _has_validators(model):
        return lambda _value: False
    return _callable(_ModelSpec(model))


def quick_check_source(model: type[BaseModel]) -> str:
    """The generated source of :func:`quick_check` for ``model`` (for reading and tests)."""
    writer = _Writer()
    writer.emit(0, "def accepts(v):")
    writer.statements(_ModelSpec(model), "v", 1, 0)
    writer.emit(1, "return True")
    return "\n".join(writer.lines)


# --- specs → msgspec types ----------------------------------------------------------
# The same specs as msgspec types: ``msgspec.convert`` checks a parsed line against them in
# C, several times faster than the generated predicate (msgspec is strict: no bool for an
# int, no float for an int, no coercion of strings). A spec msgspec cannot express (a union
# of two list types, a literal of mixed types) makes the whole model fall back to the
# predicate.


class _NoStruct(Exception):
    """The spec has no msgspec form."""


def _struct_type(spec: Any, name: str) -> Any:
    if spec is None:
        raise _NoStruct(name)
    if isinstance(spec, _Scalar):
        if spec.types == _JSON_TYPES:
            return Any
        if spec.types == (dict,):
            return dict[str, Any]
        base: Any = {
            (str,): str,
            (int,): int,
            (int, float): float,
            (bool,): bool,
            (type(None),): None,
        }.get(spec.types, _NoStruct)
        if base is _NoStruct:
            raise _NoStruct(name)
        return _constrained(base, spec.low, spec.high, spec.min_length, spec.max_length)
    if isinstance(spec, _Literal):
        values = tuple(spec.values)
        if not all(type(v) is str for v in values):
            raise _NoStruct(name)
        return Literal[values]
    if isinstance(spec, _List):
        item = _struct_type(spec.item, name)
        return _constrained(list[item], None, None, spec.min_length or None, spec.max_length)  # type: ignore[valid-type]
    if isinstance(spec, _Union):
        members = tuple(_struct_type(m, name) for m in spec.members)
        return Union[members]  # noqa: UP007 - built at run time
    return _model_struct(spec.model)


def _constrained(
    base: Any, ge: float | None, le: float | None, min_length: int | None, max_length: int | None
) -> Any:
    bounds = {
        key: value
        for key, value in (
            ("ge", ge),
            ("le", le),
            ("min_length", min_length),
            ("max_length", max_length),
        )
        if value is not None
    }
    return Annotated[base, msgspec.Meta(**bounds)] if bounds else base  # type: ignore[call-overload]


@functools.cache
def _model_struct(model_cls: type[BaseModel], /, **fixed: Any) -> Any:
    if _has_validators(model_cls):
        raise _NoStruct(model_cls.__name__)
    fields: list[Any] = []
    for name, info in model_cls.model_fields.items():
        if name in fixed:  # pinned: required unless None is one of the values
            values = fixed[name] if isinstance(fixed[name], tuple) else (fixed[name],)
            pinned: Any = Literal[values]
            fields.append((name, pinned, None) if None in values else (name, pinned))
            continue
        kind = _struct_type(_spec(info.annotation, list(info.metadata)), name)
        fields.append((name, kind) if info.is_required() else (name, kind, None))
    fields.sort(key=lambda field: len(field) == 3)  # required fields first
    return msgspec.defstruct(
        model_cls.__name__,
        fields,
        forbid_unknown_fields=model_cls.model_config.get("extra") != "allow",
        gc=False,  # parsed JSON has no cycles; untracked structs are cheaper to make
    )


def quick_struct(model_cls: type[BaseModel], /, **fixed: Any) -> Any:
    """A msgspec type that ``msgspec.convert`` accepts only for inputs ``model`` accepts, or
    None when the model has no msgspec form. ``fixed`` pins fields to a value or a tuple of
    them (``model="gpt-4o"``, ``stream=(False, None)``): a line with another value is not
    accepted, nor one without the field unless None is among the values."""
    try:
        kind = _model_struct(model_cls, **fixed)
        msgspec.convert({}, kind)  # msgspec says here whether it supports every union
    except _NoStruct:
        return None
    except TypeError:
        return None
    except msgspec.ValidationError:
        pass
    return kind
