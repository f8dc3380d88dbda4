"""Batch prices: the bundled dated price table, LiteLLM price files, and cost arithmetic.

Prices are data (``jsonl_batch/data/prices.json``, schema in ``schemas/prices.schema.json``),
never constants here. A table is a set of models; each model has price rows that apply to
OpenAI, Azure Global or Azure Data Zone deployments. This module answers two questions:
what does a model cost in a Batch job (``PriceTable.lookup`` -> ``ModelPrice.cost``), and what
did a finished request cost (``usage_cost``, used when merging outputs).

The rules (see shared research prices.md §2, §5):
- batch rate = the row's batch price, else ``batch_discount`` (50%) x the standard price;
- cached input in a batch = the row's batch cached rate, else the standard cached rate (OpenAI:
  "cached input keeps the standard rate"), never above the batch input rate;
- Azure Data Zone = its own row, else ``data_zone_multiplier`` (1.1) x the Azure Global row;
- reasoning tokens are part of the output tokens and bill as output.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError, InputError, PriceNotFound, first_problem
from .jsonl import read_json

PRICE_FORMAT = "jsonl-batch-prices/1"
PER_MILLION = 1_000_000

PriceScope = Literal["openai", "azure-global", "azure-data-zone"]
OPENAI: PriceScope = "openai"
AZURE_GLOBAL: PriceScope = "azure-global"
AZURE_DATA_ZONE: PriceScope = "azure-data-zone"

REGIONS = ("global", "data-zone")
TARGETS = ("azure", "openai", "litellm")

_DATED_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")
# LiteLLM-style provider prefixes a user may put in a deployment map: name -> forced scope.
_PREFIXES: tuple[tuple[str, PriceScope | None], ...] = (
    ("azure/eu/", AZURE_DATA_ZONE),
    ("azure/us/", AZURE_DATA_ZONE),
    ("azure/global-standard/", AZURE_GLOBAL),
    ("azure/global/", AZURE_GLOBAL),
    ("azure/", AZURE_GLOBAL),
    ("openai/", OPENAI),
)


# --- the price file format (pydantic: validates the file and generates its schema) ----------

NonNegative = Annotated[float, Field(ge=0)]


class PriceRow(BaseModel):
    """USD per 1M tokens for one model on the deployments in ``applies_to``."""

    model_config = ConfigDict(extra="forbid")

    applies_to: Annotated[list[PriceScope], Field(min_length=1)]
    input: NonNegative
    cached_input: NonNegative | None = None
    output: NonNegative = 0.0
    batch_input: NonNegative | None = Field(
        default=None, description="null: batch_discount x input"
    )
    batch_cached_input: NonNegative | None = Field(
        default=None,
        description="null: no Batch cached rate published; the standard cached rate applies",
    )
    batch_output: NonNegative | None = Field(
        default=None, description="null: batch_discount x output"
    )
    source: str
    date: dt.date
    note: str | None = None


class Retirement(BaseModel):
    """When a provider retires the model, and what it suggests instead."""

    model_config = ConfigDict(extra="forbid")

    date: dt.date
    successor: str | None = None
    source: str


class ModelEntry(BaseModel):
    """One model (and its dated snapshots with the same prices, in ``aliases``)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["chat", "responses", "embedding", "completion"] = "chat"
    aliases: list[str] = []
    reasoning: bool = Field(default=False, description="reasoning tokens bill as output")
    max_input_tokens: Annotated[int, Field(ge=1)] | None = None
    max_output_tokens: Annotated[int, Field(ge=1)] | None = None
    prices: Annotated[list[PriceRow], Field(min_length=1)]
    retirement: dict[Literal["openai", "azure"], Retirement] = {}


class SourcedNumber(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Annotated[float, Field(gt=0)]
    source: str


class PriceFile(BaseModel):
    """The jsonl-batch price file (``jsonl_batch/data/prices.json``)."""

    model_config = ConfigDict(extra="forbid", title="jsonl-batch price table")

    format: Literal["jsonl-batch-prices/1"]
    date: dt.date
    currency: Literal["USD"]
    unit: Literal["per 1M tokens"]
    about: str = ""
    sources: dict[str, str] = {}
    batch_discount: SourcedNumber
    data_zone_multiplier: SourcedNumber
    models: dict[str, ModelEntry]


def price_schema() -> dict[str, Any]:
    """JSON Schema of the price file, for ``schemas/prices.schema.json``."""
    schema = PriceFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://jsonl-batch.dev/schemas/prices.schema.json"
    return schema


# --- lookups ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Effective prices (USD per 1M tokens) of one model on one deployment type.

    Batch fields are already resolved (discount, data-zone multiplier, cached fallback), so
    callers never repeat the rules.
    """

    model: str
    priced_as: str
    scope: str
    input: float
    cached_input: float
    output: float
    batch_input: float
    batch_cached_input: float
    batch_output: float
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    is_reasoning: bool = False
    mode: str = "chat"
    source: str = ""
    date: str | None = None
    retirement_date: dt.date | None = None
    successor: str | None = None
    notes: tuple[str, ...] = ()

    def cost(
        self, input_tokens: int, output_tokens: int, cached_tokens: int = 0, *, batch: bool = True
    ) -> float:
        """USD for one request (or a sum of requests). ``cached_tokens`` is part of the input."""
        cached = min(max(cached_tokens, 0), max(input_tokens, 0))
        if batch:
            rates = (self.batch_input, self.batch_cached_input, self.batch_output)
        else:
            rates = (self.input, self.cached_input, self.output)
        in_rate, cached_rate, out_rate = rates
        return (
            (input_tokens - cached) * in_rate + cached * cached_rate + output_tokens * out_rate
        ) / PER_MILLION

    def retired(self, today: dt.date) -> bool:
        return self.retirement_date is not None and self.retirement_date <= today

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "priced_as": self.priced_as,
            "scope": self.scope,
            "per_1m": {
                "input": self.input,
                "cached_input": self.cached_input,
                "output": self.output,
                "batch_input": self.batch_input,
                "batch_cached_input": self.batch_cached_input,
                "batch_output": self.batch_output,
            },
            "max_input_tokens": self.max_input_tokens,
            "max_output_tokens": self.max_output_tokens,
            "is_reasoning": self.is_reasoning,
            "source": self.source,
            "date": self.date,
            "retirement_date": self.retirement_date.isoformat() if self.retirement_date else None,
            "successor": self.successor,
            "notes": list(self.notes),
        }


@dataclass(slots=True)
class _Rates:
    """One price row in memory (per 1M tokens, None = not published)."""

    input: float
    cached_input: float | None
    output: float
    batch_input: float | None
    batch_cached_input: float | None
    batch_output: float | None
    source: str
    date: str | None


@dataclass(slots=True)
class _PricedModel:
    name: str
    mode: str = "chat"
    reasoning: bool = False
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    rows: dict[str, _Rates] = field(default_factory=dict)
    retirement: dict[str, tuple[dt.date, str | None]] = field(default_factory=dict)


class PriceTable:
    """Models -> prices. Build with :meth:`load` (bundled file, our format or LiteLLM's)."""

    def __init__(
        self,
        models: Mapping[str, _PricedModel],
        aliases: Mapping[str, str],
        *,
        date: str | None,
        source: str,
        batch_discount: float = 0.5,
        data_zone_multiplier: float = 1.1,
    ) -> None:
        self._models = {name.lower(): model for name, model in models.items()}
        self._aliases = {alias.lower(): target.lower() for alias, target in aliases.items()}
        self.date = date
        self.source = source
        self.batch_discount = batch_discount
        self.data_zone_multiplier = data_zone_multiplier

    # -- loading --

    @classmethod
    def load(cls, path: str | Path | None = None) -> PriceTable:
        """The bundled table (``None``), or a file in our format or LiteLLM's price format."""
        if path is None:
            text = resources.files("jsonl_batch").joinpath("data/prices.json").read_bytes()
            return cls.from_price_file(orjson.loads(text), source="bundled")
        try:
            data = read_json(path)
        except InputError as exc:
            raise ConfigError(exc.message, hint="--prices takes a JSON price file") from None
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path}: not a price table (expected a JSON object)",
                hint="pass a jsonl-batch prices.json or LiteLLM's "
                "model_prices_and_context_window.json",
            )
        if data.get("format") == PRICE_FORMAT:
            return cls.from_price_file(data, source=str(path))
        if "format" in data and "models" in data:
            raise ConfigError(
                f"{path}: unknown price file format {data.get('format')!r}",
                hint=f"this version reads {PRICE_FORMAT!r} and LiteLLM price files",
            )
        return cls.from_litellm(data, source=str(path))

    @classmethod
    def from_price_file(cls, data: Any, *, source: str) -> PriceTable:
        """Validate a jsonl-batch price file and index it."""
        try:
            price_file = PriceFile.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(
                f"{source}: invalid price file at {first_problem(exc)}",
                hint="check it against schemas/prices.schema.json",
            ) from None
        models: dict[str, _PricedModel] = {}
        aliases: dict[str, str] = {}
        for name, entry in price_file.models.items():
            model = _PricedModel(
                name=name,
                mode=entry.mode,
                reasoning=entry.reasoning,
                max_input_tokens=entry.max_input_tokens,
                max_output_tokens=entry.max_output_tokens,
                retirement={k: (r.date, r.successor) for k, r in entry.retirement.items()},
            )
            for row in entry.prices:
                rates = _Rates(
                    input=row.input,
                    cached_input=row.cached_input,
                    output=row.output,
                    batch_input=row.batch_input,
                    batch_cached_input=row.batch_cached_input,
                    batch_output=row.batch_output,
                    source=row.source,
                    date=row.date.isoformat(),
                )
                for scope in row.applies_to:
                    model.rows.setdefault(scope, rates)
            models[name] = model
            for alias in entry.aliases:
                aliases[alias] = name
        return cls(
            models,
            aliases,
            date=price_file.date.isoformat(),
            source=source,
            batch_discount=price_file.batch_discount.value,
            data_zone_multiplier=price_file.data_zone_multiplier.value,
        )

    @classmethod
    def from_litellm(cls, data: Mapping[str, Any], *, source: str) -> PriceTable:
        """Index a LiteLLM ``model_prices_and_context_window.json`` (any version).

        Defensive by design (prices.md §1): skips ``sample_spec`` / ``fallback_generalizations``
        and non-object rows, resolves ``alias_of`` one level, falls back to ``max_tokens``,
        accepts numbers as strings and requires no key. ``azure/<m>`` rows are Azure Global,
        ``azure/eu|us/<m>`` Azure Data Zone, plain OpenAI rows OpenAI; any other row is kept
        under its full key.
        """
        models: dict[str, _PricedModel] = {}
        for key, raw in data.items():
            if key in ("sample_spec", "fallback_generalizations") or not isinstance(raw, dict):
                continue
            row = raw
            if "alias_of" in raw:
                target = data.get(raw["alias_of"]) if isinstance(raw["alias_of"], str) else None
                if not isinstance(target, dict) or "alias_of" in target:
                    continue  # LiteLLM drops dangling and chained aliases too
                row = target
            rates = _litellm_rates(row, source)
            if rates is None:
                continue
            name, scope = _split_litellm_key(key, row)
            model = models.get(name.lower())
            if model is None:
                model = models[name.lower()] = _PricedModel(name=name)
            if scope not in model.rows or not _has_batch(model.rows[scope]):
                model.rows[scope] = rates
            mode = row.get("mode")
            if isinstance(mode, str) and scope != AZURE_DATA_ZONE:
                model.mode = mode
            model.reasoning = model.reasoning or row.get("supports_reasoning") is True
            max_in = _int(row.get("max_input_tokens"))
            max_out = _int(row.get("max_output_tokens")) or _int(row.get("max_tokens"))
            # Limits: the OpenAI row wins; Data Zone rows often have none (prices.md §1).
            if max_in and (model.max_input_tokens is None or scope == OPENAI):
                model.max_input_tokens = max_in
            if max_out and (model.max_output_tokens is None or scope == OPENAI):
                model.max_output_tokens = max_out
            retire = _date(row.get("deprecation_date"))
            if retire is not None:
                provider = OPENAI if scope == OPENAI else "azure"
                successor = row.get("successor_model")
                model.retirement.setdefault(
                    provider, (retire, successor if isinstance(successor, str) else None)
                )
        return cls(models, {}, date=None, source=f"LiteLLM price file {source}")

    # -- lookups --

    def __contains__(self, model: str) -> bool:
        return self._find(model)[0] is not None

    def __len__(self) -> int:
        return len(self._models)

    def models(self) -> list[str]:
        return sorted(m.name for m in self._models.values())

    def lookup(self, model: str, *, region: str = "global", target: str = "azure") -> ModelPrice:
        """Effective Batch prices of ``model`` for a target service and Azure region.

        ``model`` may be a dated snapshot (``gpt-4o-2024-08-06``) or carry a LiteLLM prefix
        (``azure/eu/gpt-4o`` forces Data Zone). Raises :class:`PriceNotFound`.
        """
        if region not in REGIONS:
            raise ConfigError(f"unknown region {region!r}", hint="use global or data-zone")
        entry, forced_scope = self._find(model)
        if entry is None:
            raise PriceNotFound(
                f"no price for model {model!r} in {self._describe()}",
                hint="if it is an Azure deployment name, map it with --deployment-map "
                f"{model}=<model, e.g. gpt-4o>; otherwise pass --prices FILE (our prices.json "
                "format or LiteLLM's model_prices_and_context_window.json)",
            )
        if forced_scope is not None:
            scope = forced_scope
        elif target == OPENAI:
            scope = OPENAI
        else:
            scope = AZURE_DATA_ZONE if region == "data-zone" else AZURE_GLOBAL
        return self._price(model, entry, scope)

    def _find(self, model: str) -> tuple[_PricedModel | None, PriceScope | None]:
        name = model.strip().lower()
        forced: PriceScope | None = None
        candidates = [name]
        for prefix, scope in _PREFIXES:
            if name.startswith(prefix):
                forced = scope
                candidates.append(name[len(prefix) :])
                break
        for candidate in list(candidates):
            undated = _DATED_SUFFIX.sub("", candidate)
            if undated != candidate:
                candidates.append(undated)
        for candidate in candidates:
            found = self._models.get(candidate) or self._models.get(
                self._aliases.get(candidate, "")
            )
            if found is not None:
                return found, (forced if candidate != name else None)
        return None, None

    def _price(self, model: str, entry: _PricedModel, scope: str) -> ModelPrice:
        notes: list[str] = []
        multiplier = 1.0
        rates = entry.rows.get(scope)
        if rates is None:
            if scope == AZURE_DATA_ZONE:
                rates = entry.rows.get(AZURE_GLOBAL) or entry.rows.get(OPENAI)
                multiplier = self.data_zone_multiplier
                notes.append(f"no Data Zone price for {entry.name}: {multiplier}x the Global price")
            else:
                other = AZURE_GLOBAL if scope == OPENAI else OPENAI
                rates = entry.rows.get(other)
                if rates is not None:
                    notes.append(f"no {scope} price for {entry.name}: used the {other} price")
            if rates is None:
                rates = next(iter(entry.rows.values()))
                notes.append(f"no {scope} price for {entry.name}: used its only price row")
        half = self.batch_discount
        input_rate = rates.input * multiplier
        cached_rate = (
            rates.cached_input * multiplier if rates.cached_input is not None else input_rate
        )
        output_rate = rates.output * multiplier
        batch_input = (
            rates.batch_input * multiplier if rates.batch_input is not None else input_rate * half
        )
        batch_output = (
            rates.batch_output * multiplier
            if rates.batch_output is not None
            else output_rate * half
        )
        if rates.batch_cached_input is not None:
            batch_cached = rates.batch_cached_input * multiplier
        elif rates.cached_input is not None:
            batch_cached = min(cached_rate, batch_input)
        else:
            batch_cached = batch_input
        provider = OPENAI if scope == OPENAI else "azure"
        retirement = entry.retirement.get(provider)
        return ModelPrice(
            model=model,
            priced_as=entry.name,
            scope=scope,
            input=input_rate,
            cached_input=cached_rate,
            output=output_rate,
            batch_input=batch_input,
            batch_cached_input=batch_cached,
            batch_output=batch_output,
            max_input_tokens=entry.max_input_tokens,
            max_output_tokens=entry.max_output_tokens,
            is_reasoning=entry.reasoning,
            mode=entry.mode,
            source=rates.source,
            date=rates.date,
            retirement_date=retirement[0] if retirement else None,
            successor=retirement[1] if retirement else None,
            notes=tuple(notes),
        )

    def _describe(self) -> str:
        if self.date:
            return f"the {self.source} price table of {self.date}"
        return f"the {self.source}"

    def describe(self) -> str:
        """One line for reports: which table, of what date."""
        return self._describe()


def _split_litellm_key(key: str, row: Mapping[str, Any]) -> tuple[str, PriceScope]:
    lowered = key.lower()
    for prefix, scope in _PREFIXES:
        if lowered.startswith(prefix) and scope is not None:
            return key[len(prefix) :], scope
    provider = row.get("litellm_provider")
    if provider in (None, "openai", "text-completion-openai"):
        return key, OPENAI
    if provider == "azure":
        return key, AZURE_GLOBAL
    return key, OPENAI  # another provider's row: priced as is, under its full key


def _litellm_rates(row: Mapping[str, Any], source: str) -> _Rates | None:
    per_million = PER_MILLION
    input_cost = _num(row.get("input_cost_per_token"))
    if input_cost is None:
        return None
    output_cost = _num(row.get("output_cost_per_token"))

    def scaled(key: str) -> float | None:
        value = _num(row.get(key))
        return None if value is None else value * per_million

    row_source = row.get("source")
    return _Rates(
        input=input_cost * per_million,
        cached_input=scaled("cache_read_input_token_cost"),
        output=(output_cost or 0.0) * per_million,
        batch_input=scaled("input_cost_per_token_batches"),
        batch_cached_input=scaled("cache_read_input_token_cost_batches"),
        batch_output=scaled("output_cost_per_token_batches"),
        source=row_source if isinstance(row_source, str) else source,
        date=None,
    )


def _has_batch(rates: _Rates) -> bool:
    return rates.batch_input is not None


def _num(value: Any) -> float | None:
    """A price as LiteLLM writes it: number or numeric string; anything else is absent."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if number >= 0 else None
    return None


def _int(value: Any) -> int | None:
    number = _num(value)
    return int(number) if number else None


def _date(value: Any) -> dt.date | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


# --- actual usage ----------------------------------------------------------------------------


def usage_tokens(usage: Mapping[str, Any]) -> tuple[int, int, int]:
    """(input, output, cached) tokens of a ``usage`` block, Chat or Responses shape."""
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        input_tokens = _count(usage.get("prompt_tokens"))
        output_tokens = _count(usage.get("completion_tokens"))
        details = usage.get("prompt_tokens_details")
    else:
        input_tokens = _count(usage.get("input_tokens"))
        output_tokens = _count(usage.get("output_tokens"))
        details = usage.get("input_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, Mapping) else 0
    return input_tokens, output_tokens, cached


def usage_cost(
    usage: Mapping[str, Any],
    model: str,
    table: PriceTable,
    *,
    region: str = "global",
    target: str = "azure",
) -> float:
    """USD a finished batch request cost, from its output line's ``usage`` (batch prices).

    Reasoning tokens are inside ``completion_tokens`` / ``output_tokens`` and bill as output.
    Raises :class:`PriceNotFound` for a model with no price.
    """
    input_tokens, output_tokens, cached = usage_tokens(usage)
    price = table.lookup(model, region=region, target=target)
    return price.cost(input_tokens, output_tokens, cached, batch=True)


def _count(value: Any) -> int:
    number = _num(value)
    return int(number) if number is not None else 0


__all__ = [
    "REGIONS",
    "TARGETS",
    "ModelEntry",
    "ModelPrice",
    "PriceFile",
    "PriceRow",
    "PriceTable",
    "price_schema",
    "usage_cost",
    "usage_tokens",
]
