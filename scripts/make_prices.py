"""Generate ``jsonl_batch/data/prices.json`` from LiteLLM's price file and our overrides.

Usage (``make prices`` runs the first)::

    python scripts/make_prices.py            # write the table
    python scripts/make_prices.py --check    # exit 1 when the committed table is stale

Inputs, both in ``scripts/sources/`` (see its README): a pinned copy of LiteLLM's
``model_prices_and_context_window.json`` (checked against its sha256 before use) and
``price_overrides.json`` (what we add: corrections with their sources, notes, aliases, zone
multipliers, and numbers from other sources the table must match).

Every OpenAI and Azure chat, Responses, completion and embedding row of LiteLLM's file becomes
a price row of its model: ``gpt-4o`` and ``openai/...`` rows apply to OpenAI, ``azure/<m>``
(and ``azure/global/``, ``azure/global-standard/``) to Azure Global, ``azure/eu|us|apac/<m>``
to that Data Zone and ``azure/us-gov/<m>`` to Azure Government. A dated snapshot with the
same prices, limits and retirement as its model becomes an alias of it. Each row says which
LiteLLM keys its numbers came from, which batch rates are published and which derived, and
which numbers an override changed and why.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from jsonl_batch.jsonl import atomic_write_bytes  # noqa: E402
from jsonl_batch.pricing import (  # noqa: E402
    AZURE_GLOBAL,
    OPENAI,
    PREFIXES,
    RATE_FIELDS,
    TOKEN_KINDS,
    PriceFile,
    PriceTable,
    RawRates,
    litellm_rates,
    split_litellm_key,
)

SOURCES = ROOT / "scripts" / "sources"
LITELLM = SOURCES / "litellm_model_prices.json"
LITELLM_SHA256 = "8943af58bf9f979c6a4bef815687117ffa341e462a41faed9be17b5c33d3dcc2"
LITELLM_VERSION = "1.110.2"
LITELLM_BLOB = "c8f11f1b697e1c3d7fcb6fbed38b78179150ac34"
LITELLM_DATE = "2026-11-20"  # the wheel's SBOM timestamp (scripts/sources/README.md)
OVERRIDES = SOURCES / "price_overrides.json"
OUTPUT = ROOT / "jsonl_batch" / "data" / "prices.json"

PROVIDERS = {"openai", "azure", "text-completion-openai"}
MODES = {"chat", "responses", "completion", "embedding"}
DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")
# When two LiteLLM keys give one model the same scope, the plain key wins.
LEGACY_PREFIXES = ("azure/global/", "azure/global-standard/")

BATCH_RULE = "batch_discount x the standard rate ([OAI-FAQ], [AZ-LEARN])"
CACHED_RULE = (
    "the standard cached rate, capped at batch_input (no Batch cached rate published; [GP])"
)


class GenerationError(Exception):
    """The inputs cannot make a table (wrong pin, contradicting sources, bad overrides)."""


@dataclass
class Candidate:
    """One LiteLLM row of a model in one scope."""

    key: str
    rates: RawRates
    tiers: list[tuple[int, RawRates]]
    cites: str | None
    notes: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    same_keys: list[str] = field(default_factory=list)  # other keys with these numbers

    def numbers(self) -> tuple[Any, ...]:
        return (sorted(self.rates.items()), self.tiers, self.notes)


@dataclass
class Model:
    name: str
    rows: dict[str, Candidate] = field(default_factory=dict)
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)  # scope -> LiteLLM row
    aliases: list[str] = field(default_factory=list)
    checked: dict[str, list[str]] = field(default_factory=dict)  # scope -> check sources

    def _first(self, scopes: tuple[str, ...] = (OPENAI, AZURE_GLOBAL)) -> list[str]:
        return [s for s in scopes if s in self.rows] + [s for s in self.rows if s not in scopes]

    def mode(self) -> str:
        return str(self.raw[self._first()[0]]["mode"])

    def reasoning(self) -> bool:
        return any(row.get("supports_reasoning") is True for row in self.raw.values())

    def limits(self) -> tuple[int | None, int | None, str | None]:
        max_in = max_out = None
        keys = []
        for scope in self._first():
            row = self.raw[scope]
            if max_in is None and _positive_int(row.get("max_input_tokens")):
                max_in = int(row["max_input_tokens"])
                keys.append(self.rows[scope].key)
            if max_out is None and _positive_int(row.get("max_output_tokens")):
                max_out = int(row["max_output_tokens"])
                keys.append(self.rows[scope].key)
        keys = list(dict.fromkeys(keys))
        source = f"[LF] {', '.join(repr(k) for k in keys)}" if keys else None
        return max_in, max_out, source

    def retirement(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for scope in self._first():
            provider = "openai" if scope == OPENAI else "azure"
            row = self.raw[scope]
            date = row.get("deprecation_date")
            if provider in found or not isinstance(date, str):
                continue
            cites = row.get("deprecation_source")
            found[provider] = {
                "date": date[:10],
                "successor": row.get("successor_model"),
                "source": f"[LF] {self.rows[scope].key!r}"
                + (f" citing {cites}" if isinstance(cites, str) else ""),
            }
        return found

    def same_as(self, other: Model) -> bool:
        """Same prices where both have a row, same limits, mode and retirement dates (the
        successor LiteLLM suggests may differ: the model's is kept)."""
        common = set(self.rows) & set(other.rows)
        return (
            bool(common)
            and all(self.rows[s].numbers() == other.rows[s].numbers() for s in common)
            and self.limits()[:2] == other.limits()[:2]
            and self.mode() == other.mode()
            and self.reasoning() == other.reasoning()
            and _dates(self.retirement()) == _dates(other.retirement())
        )


def _dates(retirement: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {k: v["date"] for k, v in retirement.items()}


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def read_litellm(path: Path = LITELLM) -> dict[str, Any]:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != LITELLM_SHA256:
        raise GenerationError(
            f"{path}: sha256 {digest} is not the pinned {LITELLM_SHA256}; a new LiteLLM copy "
            "needs LITELLM_SHA256, LITELLM_VERSION, LITELLM_BLOB and LITELLM_DATE updated and "
            "scripts/sources/README.md rewritten"
        )
    loaded: dict[str, Any] = json.loads(data)
    return loaded


def build(litellm: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The price file (a dict in our format) from LiteLLM's rows and our overrides."""
    models: dict[str, Model] = {}
    alias_targets: dict[str, str] = {}
    used_overrides: set[int] = set()
    for key, row in litellm.items():
        if not isinstance(row, dict) or key in ("sample_spec", "fallback_generalizations"):
            continue
        if "alias_of" in row:
            target = litellm.get(row["alias_of"])
            if _selected(target) and isinstance(target, dict) and "alias_of" not in target:
                alias, _, _ = split_litellm_key(key, target)
                name, _, _ = split_litellm_key(row["alias_of"], target)
                if alias_targets.setdefault(alias, name) != name:
                    raise GenerationError(f"alias {alias!r} points at two models")
            continue
        if not _selected(row):
            continue
        parsed = litellm_rates(row)
        if parsed is None:
            continue
        rates, tiers = parsed
        cites = row.get("source")
        candidate = Candidate(key, rates, tiers, cites if isinstance(cites, str) else None)
        for index, override in enumerate(overrides["overrides"]):
            if any(fnmatch.fnmatchcase(key, pattern) for pattern in override["keys"]):
                _apply(candidate, override)
                used_overrides.add(index)
        name, scope, _ = split_litellm_key(key, row)
        model = models.setdefault(name.lower(), Model(name))
        _add(model, scope, candidate, row)
    unused = [o["keys"] for i, o in enumerate(overrides["overrides"]) if i not in used_overrides]
    if unused:
        raise GenerationError(f"overrides match no LiteLLM row: {unused}")

    renamed = _merge_snapshots(models)
    for alias, target in alias_targets.items():
        target = renamed.get(target.lower(), target.lower())
        if target in models and alias.lower() not in models:
            models[target].aliases.append(alias)
    for extra in overrides["aliases"]:
        target = renamed.get(extra["model"].lower(), extra["model"].lower())
        if target not in models:
            raise GenerationError(f"alias {extra['alias']!r}: no model {extra['model']!r}")
        models[target].aliases.append(extra["alias"])

    table = _document(models, overrides)
    _check(table, models, overrides)
    return _document(models, overrides)  # again, with the checks named in the rows


def _selected(row: Any) -> bool:
    return (
        isinstance(row, dict)
        and row.get("litellm_provider") in PROVIDERS
        and row.get("mode") in MODES
    )


def _apply(candidate: Candidate, override: dict[str, Any]) -> None:
    for name, value in override.get("set", {}).items():
        if name not in RATE_FIELDS:
            raise GenerationError(f"override {override['keys']}: unknown field {name!r}")
        before = candidate.rates.get(name)
        if before == value:
            continue
        candidate.rates[name] = value
        why = f"{override['why']} ({override['source']})"
        candidate.changes.append(f"{name} {value} instead of LiteLLM's {before}: {why}")
    if "note" in override:
        candidate.notes.append(f"{override['note']} ({override['source']})")


def _add(model: Model, scope: str, candidate: Candidate, row: dict[str, Any]) -> None:
    """Put a row in its scope; of two different rows for one scope the plain key wins and
    the other is named in a note."""
    current = model.rows.get(scope)
    if current is None:
        model.rows[scope], model.raw[scope] = candidate, row
        return
    if current.numbers() == candidate.numbers():
        current.same_keys.append(candidate.key)
        return
    keep, drop = current, candidate
    if current.key.startswith(LEGACY_PREFIXES) and not candidate.key.startswith(LEGACY_PREFIXES):
        keep, drop = candidate, current
        model.rows[scope], model.raw[scope] = candidate, row
    keep.notes.append(f"LiteLLM's {drop.key!r} has other numbers and is not used")


def _merge_snapshots(models: dict[str, Model]) -> dict[str, str]:
    """Fold each dated snapshot that prices like its model into it, as an alias."""
    renamed: dict[str, str] = {}
    for name in sorted(models):
        base = DATED.sub("", name)
        if base == name or base not in models or not models[name].same_as(models[base]):
            continue
        snapshot, model = models.pop(name), models[base]
        for scope, candidate in snapshot.rows.items():
            if scope in model.rows:
                model.rows[scope].same_keys += [candidate.key, *candidate.same_keys]
            else:
                model.rows[scope], model.raw[scope] = candidate, snapshot.raw[scope]
        model.aliases += [snapshot.name, *snapshot.aliases]
        renamed[name] = base
    return renamed


def _document(models: dict[str, Model], overrides: dict[str, Any]) -> dict[str, Any]:
    entries: dict[str, Any] = {}
    for key in sorted(models):
        model = models[key]
        max_in, max_out, limits_source = model.limits()
        entry: dict[str, Any] = {"mode": model.mode()}
        if model.aliases:
            entry["aliases"] = sorted(set(model.aliases))
        entry["reasoning"] = model.reasoning()
        if max_in:
            entry["max_input_tokens"] = max_in
        if max_out:
            entry["max_output_tokens"] = max_out
        if limits_source:
            entry["limits_source"] = limits_source
        entry["prices"] = _rows(model)
        retirement = model.retirement()
        if retirement:
            entry["retirement"] = retirement
        entries[model.name] = entry
    return {
        "format": "jsonl-batch-prices/2",
        "date": overrides["date"],
        "currency": "USD",
        "unit": "per 1M tokens",
        "about": (
            "Batch API prices for jsonl-batch estimate and merge, generated by "
            "scripts/make_prices.py: do not edit by hand. Rows apply to 'openai', "
            "'azure-global' (Azure Global Standard / Global Batch), 'azure-data-zone-eu', "
            "'azure-data-zone-us', 'azure-data-zone-apac' (Azure Data Zones) and "
            "'azure-us-gov'. A missing batch rate is batch_discount x the standard rate; a "
            "missing batch cached rate is the standard cached rate (never above batch_input); "
            "a missing cache-write rate means writes bill as input; a tier's rates price a "
            "whole request whose input exceeds its threshold; a zone without a row is "
            "zone_multipliers x the Azure Global row. LiteLLM's rates for 12-hour cache "
            "writes, flex and priority processing are not carried (a Batch job uses neither)."
        ),
        "generated_by": (
            f"scripts/make_prices.py from scripts/sources/litellm_model_prices.json (LiteLLM "
            f"{LITELLM_VERSION}, sha256 {LITELLM_SHA256}) and scripts/sources/price_overrides.json"
        ),
        "sources": {
            "LF": (
                f"LiteLLM model_prices_and_context_window.json from PyPI litellm "
                f"{LITELLM_VERSION} (wheel built {LITELLM_DATE}, git blob {LITELLM_BLOB}), "
                "https://github.com/BerriAI/litellm, MIT; pinned in "
                "scripts/sources/litellm_model_prices.json"
            ),
            "LF-CODE": (
                f"LiteLLM {LITELLM_VERSION} litellm/litellm_core_utils/llm_cost_calc/utils.py "
                "_get_token_base_cost: once prompt_tokens > an _above_<N>k_tokens threshold, "
                "that request's input, output and cache rates are the threshold's; "
                "litellm/cost_calculator.py batch_cost_calculator: *_batches keys, else half "
                "the standard price"
            ),
            **overrides["sources"],
        },
        "batch_discount": overrides["batch_discount"],
        "zone_multipliers": overrides["zone_multipliers"],
        "models": entries,
    }


def _rows(model: Model) -> list[dict[str, Any]]:
    """One price row per distinct set of numbers, applying to every scope that has them."""
    grouped: dict[Any, list[str]] = {}
    order = [s for s in (OPENAI, AZURE_GLOBAL) if s in model.rows] + sorted(
        s for s in model.rows if s not in (OPENAI, AZURE_GLOBAL)
    )
    for scope in order:
        grouped.setdefault(repr(model.rows[scope].numbers()), []).append(scope)
    rows = []
    for scopes in grouped.values():
        candidates = [model.rows[s] for s in scopes]
        first = candidates[0]
        row: dict[str, Any] = {"applies_to": scopes}
        row.update(_present(first.rates))
        if first.tiers:
            row["tiers"] = [
                {"above_input_tokens": above, **_present(rates)} for above, rates in first.tiers
            ]
        row["batch_source"] = _batch_source(first)
        keys = [key for c in candidates for key in (c.key, *c.same_keys)]
        cites = list(dict.fromkeys(c.cites for c in candidates if c.cites))
        source = f"[LF] {', '.join(repr(k) for k in keys)}"
        if cites:
            source += f", citing {' and '.join(cites)}"
        changes = [change for c in candidates for change in c.changes]
        if changes:
            source += "; overridden: " + "; ".join(dict.fromkeys(changes))
        checks = [check for s in scopes for check in model.checked.get(s, [])]
        if checks:
            source += "; matches " + " and ".join(dict.fromkeys(checks))
        row["source"] = source
        row["date"] = LITELLM_DATE
        notes = list(dict.fromkeys(n for c in candidates for n in c.notes))
        if notes:
            row["note"] = "; ".join(notes)
        rows.append(row)
    return rows


def _present(rates: RawRates) -> dict[str, float]:
    return {name: value for name in RATE_FIELDS if (value := rates.get(name)) is not None}


def _batch_source(candidate: Candidate) -> str:
    """Which batch rates LiteLLM publishes for the row and which follow a rule."""
    published, derived = [], []
    for kind in TOKEN_KINDS:
        batch = f"batch_{kind}"
        if candidate.rates.get(batch) is not None:
            published.append(batch)
        elif kind == "cached_input":
            if candidate.rates.get("cached_input") is not None:
                derived.append(f"{batch} = {CACHED_RULE}")
        elif candidate.rates.get(kind) is not None:
            derived.append(f"{batch} = {BATCH_RULE}")
    parts = []
    if published:
        parts.append(f"published in [LF] (*_batches keys): {', '.join(published)}")
    if derived:
        parts.append("derived: " + "; ".join(derived))
    if candidate.tiers:
        tier_batch = {
            f"batch_{kind}"
            for _, rates in candidate.tiers
            for kind in TOKEN_KINDS
            if rates.get(f"batch_{kind}") is not None
        }
        published_tiers = ", ".join(sorted(tier_batch)) or "none"
        parts.append(
            "tiers from [LF] *_above_<N>k_tokens keys, applied per request as [LF-CODE] does "
            f"(published tier batch rates: {published_tiers})"
        )
    return "; ".join(parts) if parts else "no rates published"


def _check(table: dict[str, Any], models: dict[str, Model], overrides: dict[str, Any]) -> None:
    """Compare the effective prices with the numbers other sources give; fail on a mismatch."""
    prices = PriceTable.from_price_file(table, source="generated")
    if prices.problems:
        raise GenerationError("; ".join(prices.problems))
    prefix = {scope: p for p, scope in reversed(PREFIXES)}
    mismatches = []
    for check in overrides["checks"]:
        scopes = check["scope"] if isinstance(check["scope"], list) else [check["scope"]]
        for model_name, values in check["models"].items():
            for scope in scopes:
                price = prices.lookup(f"{prefix[scope]}{model_name}")
                for name, expected in zip(check["fields"], values, strict=True):
                    if expected is None:
                        continue
                    actual = getattr(price, name)
                    if abs(actual - expected) > 1e-9 * max(1.0, expected):
                        mismatches.append(
                            f"{model_name} {scope} {name}: table {actual}, {check['source']} "
                            f"{expected}"
                        )
                entry = models[price.priced_as.lower()]
                if price.scope == scope and scope in entry.rows:
                    entry.checked.setdefault(scope, []).append(check["source"])
    if mismatches:
        raise GenerationError("prices disagree with other sources:\n  " + "\n  ".join(mismatches))


def render(table: dict[str, Any]) -> bytes:
    PriceFile.model_validate(table)
    return (json.dumps(table, indent=2, ensure_ascii=False) + "\n").encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the table is stale")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    try:
        overrides = json.loads(OVERRIDES.read_text("utf-8"))
        data = render(build(read_litellm(), overrides))
    except GenerationError as exc:
        print(f"make_prices: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if not args.output.exists() or args.output.read_bytes() != data:
            print(f"{args.output} is stale: run `make prices`", file=sys.stderr)
            return 1
        return 0
    atomic_write_bytes(args.output, data)
    table = json.loads(data)
    print(f"wrote {args.output}: {len(table['models'])} models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
