"""Tool and schema rendering: function tools as the service's TypeScript-like ``namespace
functions`` block, structured-output schemas as the compact JSON it echoes into the prompt,
and what ``tool_choice`` adds."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from .context import FLAG_NOT_COUNTABLE, Flags
from .rules import token_rules

Function = tuple[str, str, Any, bool]
"""A function tool as the counter sees it: name, description, parameters schema, strict."""


_NESTED_INDENT = "    "


def _ts_type(
    schema: Any,
    defs: Mapping[str, Any],
    depth: int = 0,
    strict: bool = False,
    indent: str = "",
) -> str:
    """A JSON schema as the TypeScript-like type the service renders into the prompt.

    The members of a nested object are indented by four spaces a level, its closing brace
    too (openai/harmony src/encoding.rs json_schema_to_typescript). In a strict function an
    array of inline objects is written as the items' compact JSON schema
    (``strict_inline_items_as_json`` in the rules file: fitted, see its note).
    """
    if not isinstance(schema, dict) or depth > 12:
        return "any"
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        target = defs.get(name)
        if isinstance(target, dict) and _ALIAS in target:
            return name
        if isinstance(target, dict):
            merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            # a definition is expanded once: recursive models would otherwise explode
            inner = {key: value for key, value in defs.items() if key != name}
            return _ts_type(merged, inner, depth + 1, strict, indent)
        return "any"
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
        # pydantic wraps a described $ref so: {"allOf": [{"$ref": ...}], "description": ...}
        merged = {**all_of[0], **{k: v for k, v in schema.items() if k != "allOf"}}
        return _ts_type(merged, defs, depth + 1, strict, indent)
    for union_key in ("anyOf", "oneOf"):
        variants = schema.get(union_key)
        if isinstance(variants, list) and variants:
            return " | ".join(_ts_type(v, defs, depth + 1, strict, indent) for v in variants)
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return " | ".join(json.dumps(v, ensure_ascii=False) for v in enum)
    if "const" in schema:
        return json.dumps(schema["const"], ensure_ascii=False)
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join("number" if k == "integer" else str(k) for k in kind)
    if kind == "object" or (kind is None and isinstance(schema.get("properties"), dict)):
        return _ts_object(schema, defs, depth, strict, indent)
    if kind == "array":
        items = schema.get("items")
        if (
            strict
            and _is_inline_object(items)
            and token_rules()["tools"]["strict_inline_items_as_json"]
        ):
            return f"{schema_json(items)}[]"
        if isinstance(items, dict):
            return f"{_ts_type(items, defs, depth + 1, strict, indent)}[]"
        return "any[]"
    if kind == "integer":
        return "number"
    if kind in ("string", "number", "boolean", "null"):
        return kind
    return "any"


def _is_inline_object(schema: Any) -> bool:
    return (
        isinstance(schema, dict)
        and schema.get("type") == "object"
        and "$ref" not in schema
        and bool(schema.get("properties"))
    )


def _ts_object(
    schema: dict[str, Any], defs: Mapping[str, Any], depth: int, strict: bool, indent: str
) -> str:
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return "object"
    required = schema.get("required")
    required_names = set(required) if isinstance(required, list) else set()
    lines = ["{"]
    for key, value in properties.items():
        if isinstance(value, dict):
            title = value.get("title")
            description = value.get("description")
            described = isinstance(description, str) and bool(description)
            if isinstance(title, str) and title:
                lines.append(f"{indent}// {title}")
                if described and not indent:
                    # an empty comment line between a top-level property's title and its
                    # description (harmony's renderer; rules: tools._property_title)
                    lines.append("//")
            if isinstance(description, str) and description:
                lines.extend(indent + line for line in _comment_lines(description))
        optional = "" if key in required_names else "?"
        rendered = _ts_type(value, defs, depth + 1, strict, indent + _NESTED_INDENT)
        line = f"{indent}{key}{optional}: {rendered},"
        if isinstance(value, dict):
            line += _trailing_comment(value)
        lines.append(line)
    lines.append(indent + "}")
    return "\n".join(lines)


def _trailing_comment(schema: dict[str, Any]) -> str:
    """A property's default and numeric bounds as a comment after its line.

    ``// default: 1`` as openai/harmony's renderer writes it; bounds the same way, joined
    with ``, `` (``tools._bounds`` in the rules file: fitted, harmony has none)."""
    notes = [
        f"{key}: {json.dumps(schema[key], ensure_ascii=False)}"
        for key in _TRAILING_KEYWORDS
        if key in schema
    ]
    return f" // {', '.join(notes)}" if notes else ""


_TRAILING_KEYWORDS = ("default", "minimum", "maximum")


def _comment_lines(text: str) -> list[str]:
    """A description as ``//`` comment lines: each line stripped, blank lines dropped."""
    return [f"// {line.strip()}" for line in text.splitlines() if line.strip()]


def render_functions(functions: list[Function]) -> str:
    """The ``namespace functions`` block for (name, description, parameters, strict) tuples."""
    parts = ["# Tools\n\n## functions\n\nnamespace functions {\n"]
    for name, description, parameters, strict in functions:
        defs: dict[str, Any] = {}
        if isinstance(parameters, dict):
            for key in ("$defs", "definitions"):
                if isinstance(parameters.get(key), dict):
                    defs.update(parameters[key])
            defs = _declare_aliases(parameters, defs, strict, parts)
        parts.extend(_comment_lines(description))
        if isinstance(parameters, dict) and parameters.get("properties"):
            rendered = _ts_type(parameters, defs, strict=strict)
            parts.append(f"type {name} = (_: {_schema_comment(parameters)}{rendered}) => any;\n")
        else:
            parts.append(f"type {name} = () => any;\n")
    parts.append("} // namespace functions")
    return "\n".join(parts)


def _declare_aliases(
    parameters: dict[str, Any], defs: dict[str, Any], strict: bool, parts: list[str]
) -> dict[str, Any]:
    """Declare the referenced definitions that are not objects (enums, unions) as
    ``type Name = ...;`` before the function, and return the definitions with those
    replaced by their name (rules: ``tools._aliases``); objects stay inline."""
    if not defs:
        return defs
    text = json.dumps(parameters)
    aliases = [
        key
        for key, target in defs.items()
        if isinstance(target, dict)
        and not _is_object(target)
        and (f'/$defs/{key}"' in text or f'/definitions/{key}"' in text)
    ]
    for key in aliases:
        parts.append(f"type {key} = {_ts_type(defs[key], defs, 1, strict)};\n")
    return {key: {_ALIAS: key} if key in aliases else value for key, value in defs.items()}


_ALIAS = "\x00alias"
"""Marks a definition declared as a type alias: a $ref to it renders as its name."""


def _is_object(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "object" or isinstance(schema.get("properties"), dict)


def _schema_comment(parameters: dict[str, Any]) -> str:
    """The parameters schema's own title and description, as comment lines before its ``{``.

    Fitted (``tools._parameters_title_and_description`` in the rules file): pydantic puts the
    model's name in ``title`` and its docstring in ``description``; the service bills both.
    """
    lines = []
    for key in ("title", "description"):
        value = parameters.get(key)
        if isinstance(value, str) and value:
            lines.extend(_comment_lines(value))
    return "".join(line + "\n" for line in lines)


def without_titles(schema: Any, *, top: bool = False) -> Any:
    """A parameters schema as the 2023 function models render it: no ``title`` anywhere and
    no description of the parameters object itself (``tools.untitled_models``, rules file)."""
    if isinstance(schema, list):
        return [without_titles(value) for value in schema]
    if not isinstance(schema, dict):
        return schema
    left_out = ("title", "description") if top else ("title",)
    return {
        key: (
            {name: without_titles(inner) for name, inner in value.items()}
            if key in ("properties", "$defs", "definitions") and isinstance(value, dict)
            else without_titles(value)
        )
        for key, value in schema.items()
        if key not in left_out
    }


def uncommented_functions(functions: list[Function]) -> int:
    """How many functions have properties but no title or description on any of them.

    Each costs a token less than its rendering (fitted, ``uncommented_function`` in the rules
    file): the counter renders the same text for them, so some separator must differ.
    """
    count = 0
    for _, _, parameters, _ in functions:
        properties = parameters.get("properties") if isinstance(parameters, dict) else None
        if isinstance(properties, dict) and properties:
            count += not any(
                isinstance(value, dict) and (value.get("title") or value.get("description"))
                for value in properties.values()
            )
    return count


def _schema_for_prompt(schema: Any, dropped: frozenset[str], *, in_properties: bool = False) -> Any:
    """A schema as the service echoes it into the prompt.

    Keywords the decoder enforces by itself (``required``, ``additionalProperties``, defaults
    and bounds: the ``dropped`` set of the rules file) are left out and the others come in
    alphabetical order; property names are never dropped and keep their order; integral
    floats are written as ints.
    """
    if isinstance(schema, dict):
        if in_properties:
            return {key: _schema_for_prompt(value, dropped) for key, value in schema.items()}
        return {
            key: _schema_for_prompt(
                value, dropped, in_properties=key in ("properties", "$defs", "definitions")
            )
            for key, value in sorted(schema.items(), key=lambda item: str(item[0]))
            if key not in dropped
        }
    if isinstance(schema, list):
        return [_schema_for_prompt(value, dropped) for value in schema]
    if isinstance(schema, float) and schema.is_integer():
        return int(schema)
    return schema


@cache
def _response_format_rule() -> tuple[frozenset[str], bool]:
    """(keywords left out of the echoed schema, whether non-ASCII is escaped), from the rules."""
    rule = token_rules()["response_format"]
    return frozenset(rule["dropped_keywords"]), bool(rule["ascii_escaped"])


def schema_json(schema: Any) -> str:
    """A schema as the service echoes it into the prompt: compact JSON, non-ASCII escaped.

    As Python's ``json.dumps(..., separators=(",", ":"))`` writes it (``\\u2014``), without
    the keywords the decoder enforces by itself and with the rest in alphabetical order.
    """
    dropped, ascii_escaped = _response_format_rule()
    return json.dumps(
        _schema_for_prompt(schema, dropped), ensure_ascii=ascii_escaped, separators=(",", ":")
    )


def render_response_format(name: str, schema: Any, description: str | None = None) -> str:
    """The ``# Response Formats`` section for a json_schema structured output.

    The schema as :func:`schema_json` writes it; a format description is a ``//`` comment
    line above it (harmony ``docs/format.md``, "Structured output").
    """
    text = schema_json(schema)
    comment = f"// {description}\n" if description else ""
    return f"# Response Formats\n\n## {name}\n\n{comment}{text}"


def function_of(function: dict[str, Any], flags: Flags, *, strict_default: bool) -> Function:
    """A function definition as (name, description, parameters, strict)."""
    name = function.get("name")
    description = function.get("description")
    if not isinstance(name, str):
        flags.add(FLAG_NOT_COUNTABLE)
        name = ""
    if not isinstance(description, str):
        description = ""
    strict = function.get("strict")
    return (
        name,
        description,
        function.get("parameters"),
        (strict if isinstance(strict, bool) else strict_default),
    )


def tool_choice_tokens(choice: Any, text: Callable[[str], int], *, untitled: bool = False) -> int:
    """What ``tool_choice`` adds on a non-reasoning model (fitted constant, rules file).

    Naming one function adds a hidden instruction that names it again as
    ``functions.<name>``: a constant plus those tokens; on the ``untitled`` 2023 models
    4 + the name's tokens (hmarr/openai-chat-tokens). ``"none"`` costs a token more than
    ``"auto"`` (fitted, ``none_tool_choice``); ``"required"`` the same.
    """
    if choice == "none":
        return int(token_rules()["tools"]["none_tool_choice"])
    if not isinstance(choice, dict):
        return 0
    function = choice.get("function")
    name = function.get("name") if isinstance(function, dict) else choice.get("name")
    if not isinstance(name, str):
        return 0
    if untitled:
        return int(token_rules()["tools"]["untitled_forced_tool_choice"]) + text(name)
    return int(token_rules()["tools"]["forced_tool_choice"]) + text(f"functions.{name}")


def tool_search(tools: Any) -> dict[str, Any] | None:
    """The tool search tool of a Responses ``tools`` list, if it has one."""
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict) and tool.get("type") == "tool_search":
            return tool
    return None
