"""Price table: the generated bundled table, lookups, Azure zones, tiers, cache writes,
LiteLLM files (ours win, the bundled table fills in), bad files, cost arithmetic."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from jsonl_batch.cli._common import cli_terms
from jsonl_batch.errors import ConfigError, PriceNotFound
from jsonl_batch.pricing import PriceFile, PriceTable, split_litellm_key, usage_cost, usage_tokens

ROOT = Path(__file__).resolve().parent.parent
LITELLM_COPY = ROOT / "scripts" / "sources" / "litellm_model_prices.json"
MAKE_PRICES = ROOT / "scripts" / "make_prices.py"

# The models the earlier hand-made table had, and the ones the issue found unpriced.
REQUIRED_MODELS = [
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o1",
    "o3",
    "o3-mini",
    "o4-mini",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
    "gpt-35-turbo",
    "gpt-3.5-turbo",
]
ISSUE_MODELS = [
    "gpt-5.4",
    "gpt-5.2",
    "gpt-5.6",
    "gpt-4",
    "gpt-4-turbo",
    "o1-mini",
    "computer-use-preview",
    "gpt-5-pro",
]


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


@pytest.fixture(scope="module")
def litellm() -> PriceTable:
    return PriceTable.load(LITELLM_COPY, fallback=False)


def _make_prices() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_prices", MAKE_PRICES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# --- the generated table ----------------------------------------------------------------


def test_bundled_table_is_what_the_generator_makes() -> None:
    run = subprocess.run(
        [sys.executable, str(MAKE_PRICES), "--check"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr


def test_generator_refuses_another_litellm_copy(tmp_path: Path) -> None:
    other = tmp_path / "prices.json"
    other.write_bytes(LITELLM_COPY.read_bytes() + b" ")
    make_prices = _make_prices()
    with pytest.raises(make_prices.GenerationError, match="is not the pinned"):
        make_prices.read_litellm(other)


def test_generator_stops_when_a_checked_price_disagrees() -> None:
    make_prices = _make_prices()
    overrides = json.loads((ROOT / "scripts" / "sources" / "price_overrides.json").read_text())
    overrides["checks"][0]["models"]["gpt-4o"][0] = 1.0  # genai-prices says 1.25
    with pytest.raises(make_prices.GenerationError, match="gpt-4o openai batch_input"):
        make_prices.build(make_prices.read_litellm(), overrides)


def test_bundled_table_is_dated_and_covers_the_models(table: PriceTable) -> None:
    assert table.date == "2026-11-24"
    for model in REQUIRED_MODELS + ISSUE_MODELS:
        assert model in table, model
        for target in ("azure", "openai"):
            assert table.lookup(model, target=target).batch_input > 0


def test_every_bundled_row_says_where_its_numbers_come_from() -> None:
    data = json.loads((ROOT / "jsonl_batch" / "data" / "prices.json").read_text())
    price_file = PriceFile.model_validate(data)
    for name, entry in price_file.models.items():
        for row in entry.prices:
            assert row.source.startswith("[LF] "), name
            assert row.batch_source, name
            assert row.date <= dt.date(2026, 11, 24), name
        for retirement in entry.retirement.values():
            assert retirement.source, name


def test_bundled_table_has_every_token_model_of_the_litellm_copy(
    table: PriceTable, litellm: PriceTable
) -> None:
    """Every OpenAI/Azure chat, Responses, completion and embedding key resolves to the
    batch prices LiteLLM's own file gives it (keys our overrides change excepted)."""
    data = json.loads(LITELLM_COPY.read_text())
    overrides = json.loads((ROOT / "scripts" / "sources" / "price_overrides.json").read_text())
    overridden = {key for o in overrides["overrides"] if "set" in o for key in o["keys"]}
    checked = 0
    for key, row in data.items():
        if not isinstance(row, dict) or "alias_of" in row or key in overridden:
            continue
        if row.get("litellm_provider") not in ("openai", "azure", "text-completion-openai"):
            continue
        if row.get("mode") not in ("chat", "responses", "completion", "embedding"):
            continue
        if row.get("input_cost_per_token") is None or key.startswith("azure/global"):
            continue
        ours, theirs = table.lookup(key, target="openai"), litellm.lookup(key, target="openai")
        assert ours.scope == theirs.scope == split_litellm_key(key, row)[1], key
        for tier_ours, tier_theirs in zip(ours.tiers, theirs.tiers, strict=True):
            assert tier_ours == tier_theirs, key
        checked += 1
    assert checked > 300


# --- lookups ------------------------------------------------------------------------------


def test_dated_snapshot_resolves_to_its_model(table: PriceTable) -> None:
    price = table.lookup("gpt-4o-2024-08-06")
    assert price.priced_as == "gpt-4o"
    assert (price.batch_input, price.batch_output) == (1.25, 5.0)
    assert price.max_output_tokens == 16384
    # an unlisted future snapshot falls back to its model too
    assert table.lookup("gpt-4.1-mini-2031-01-01").priced_as == "gpt-4.1-mini"


def test_gpt_4o_2024_05_13_has_its_own_prices(table: PriceTable) -> None:
    price = table.lookup("gpt-4o-2024-05-13")
    assert price.priced_as == "gpt-4o-2024-05-13"
    assert (price.input, price.output) == (5.0, 15.0)
    assert (price.batch_input, price.batch_output) == (2.5, 7.5)
    assert price.max_output_tokens == 4096


def test_provider_prefixes_choose_the_scope(table: PriceTable) -> None:
    assert table.lookup("azure/eu/gpt-4.1").batch_input == pytest.approx(1.1)
    assert table.lookup("azure/eu/gpt-4.1").scope == "azure-data-zone-eu"
    assert table.lookup("azure/gpt-4.1").batch_input == pytest.approx(1.0)
    assert table.lookup("azure/global/gpt-5.1").scope == "azure-global"
    assert table.lookup("openai/gpt-4o", region="data-zone").scope == "openai"
    assert table.lookup("azure/us-gov/o3-mini").input == pytest.approx(1.513)
    # fine-tuned models are priced as their own LiteLLM row, never as the base model
    tuned = table.lookup("ft:gpt-4o-mini-2024-07-18:acme::a1b2c3", target="openai")
    assert tuned.priced_as == "ft:gpt-4o-mini-2024-07-18"
    assert tuned.input > table.lookup("gpt-4o-mini", target="openai").input


def test_azure_data_zones(table: PriceTable) -> None:
    price = table.lookup("gpt-4o", region="data-zone")
    assert price.scope.startswith("azure-data-zone")
    assert (price.batch_input, price.batch_output) == (1.375, 5.5)
    # EU and US differ for gpt-6-sol: data-zone takes the higher and says so
    zone = table.lookup("gpt-6-sol", region="data-zone")
    assert zone.scope == "azure-data-zone-eu" and zone.input == pytest.approx(2.4)
    assert any("differ" in note for note in zone.notes)
    assert table.lookup("gpt-6-sol", region="data-zone-us").input == pytest.approx(2.2)


def test_azure_data_zone_uplift_without_a_row(table: PriceTable) -> None:
    global_price = table.lookup("gpt-35-turbo")
    zone_price = table.lookup("gpt-35-turbo", region="data-zone")
    assert zone_price.batch_input == pytest.approx(global_price.batch_input * 1.1)
    assert zone_price.batch_output == pytest.approx(global_price.batch_output * 1.1)
    assert any("1.1x" in note for note in zone_price.notes)
    apac = table.lookup("gpt-4.1", region="data-zone-apac")
    assert apac.batch_input == pytest.approx(1.2)


def test_openai_target_uses_openai_rows(table: PriceTable) -> None:
    openai = table.lookup("o3", target="openai")
    azure = table.lookup("o3")
    assert openai.scope == "openai" and azure.scope == "azure-global"
    assert openai.retirement_date == dt.date(2026, 12, 11)
    assert azure.retirement_date == dt.date(2026, 11, 19)
    # ada-002 differs between OpenAI (0.10) and Azure (0.11)
    assert table.lookup("text-embedding-ada-002", target="openai").input == pytest.approx(0.1)
    assert table.lookup("text-embedding-ada-002").input == pytest.approx(0.11)


def test_overrides_are_kept_with_their_source(table: PriceTable) -> None:
    # LiteLLM gives Azure Global embeddings the Data Zone price; the retail meter wins
    small = table.lookup("text-embedding-3-small")
    assert small.input == pytest.approx(0.02)
    assert "AZ-RETAIL" in small.source and "instead of LiteLLM's 0.022" in small.source
    assert any("does not take /v1/embeddings" in note for note in small.notes)
    # no cache-write fee before GPT-5.6: LiteLLM's stray rate on gpt-4o rows is dropped
    assert not table.lookup("gpt-4o", region="data-zone-us").charges_cache_writes


def test_missing_model_is_a_clear_error(table: PriceTable) -> None:
    with pytest.raises(PriceNotFound) as info:
        table.lookup("my-gpt4o-deployment")
    assert "my-gpt4o-deployment" in info.value.message
    # the library names its parameters; the command line shows the flags that set them
    hint = info.value.hint or ""
    assert 'deployment_map={"my-gpt4o-deployment": ' in hint and "prices=FILE" in hint
    shown = cli_terms(hint)
    assert "--deployment-map my-gpt4o-deployment=<model" in shown and "--prices FILE" in shown


def test_reasoning_models_are_marked(table: PriceTable) -> None:
    assert table.lookup("o4-mini").is_reasoning
    assert table.lookup("gpt-5-nano").is_reasoning
    assert not table.lookup("gpt-4.1").is_reasoning


# --- cost arithmetic (hand-computed) ----------------------------------------------------


def test_cost_gpt_4_1_with_cached_tokens(table: PriceTable) -> None:
    price = table.lookup("gpt-4.1")
    # batch: 800 input x $1.00 + 200 cached x $0.50 (standard cached rate, no batch cached
    # rate published) + 500 output x $4.00, per 1M tokens
    assert price.cost(1000, 500, 200) == pytest.approx((800 * 1.0 + 200 * 0.5 + 500 * 4.0) / 1e6)
    # standard: 800 x 2 + 200 x 0.5 + 500 x 8
    assert price.cost(1000, 500, 200, batch=False) == pytest.approx(5700 / 1e6)


def test_cost_gpt_5_has_a_batch_cached_rate(table: PriceTable) -> None:
    price = table.lookup("gpt-5")
    # 600k x 0.625 + 400k x 0.0625 + 100k x 5.00 = 0.375 + 0.025 + 0.5
    assert price.cost(1_000_000, 100_000, 400_000) == pytest.approx(0.9)


def test_cost_data_zone_gpt_4o(table: PriceTable) -> None:
    price = table.lookup("gpt-4o-2024-11-20", region="data-zone")
    assert price.cost(2_000_000, 1_000_000) == pytest.approx(2 * 1.375 + 5.5)


def test_long_context_tier_prices_the_whole_request(table: PriceTable) -> None:
    price = table.lookup("gpt-5.4", target="openai")
    # LiteLLM: batch 1.25 / 7.5 up to 272k input tokens; above, 2.50 / 11.25 for all of it
    at = price.cost(272_000, 1000)
    above = price.cost(272_001, 1000)
    assert at == pytest.approx((272_000 * 1.25 + 1000 * 7.5) / 1e6)
    assert above == pytest.approx((272_001 * 2.5 + 1000 * 11.25) / 1e6)
    assert price.tier_index(272_000) == 0 and price.tier_index(272_001) == 1


def test_cache_writes_cost_more_from_gpt_5_6(table: PriceTable) -> None:
    price = table.lookup("gpt-5.6", target="openai")
    assert price.charges_cache_writes
    # 1,000 input of which 600 written to the cache: 400 x 2.00 + 600 x 2.50 (1.25 x input)
    assert price.cost(1000, 0, cache_write_tokens=600) == pytest.approx(
        (400 * 2.0 + 600 * 2.5) / 1e6
    )
    assert not table.lookup("gpt-5.4").charges_cache_writes


def test_usage_cost_chat_and_responses_shapes(table: PriceTable) -> None:
    chat = {
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "prompt_tokens_details": {"cached_tokens": 200},
        "completion_tokens_details": {"reasoning_tokens": 300},
    }
    responses = {
        "input_tokens": 1000,
        "output_tokens": 500,
        "input_tokens_details": {"cached_tokens": 200},
        "output_tokens_details": {"reasoning_tokens": 300},
    }
    assert usage_tokens(chat) == usage_tokens(responses) == (1000, 500, 200)
    expected = (800 * 1.0 + 200 * 0.5 + 500 * 4.0) / 1e6
    assert usage_cost(chat, "o3-2025-04-16", table) == pytest.approx(expected)
    assert usage_cost(responses, "o3", table) == pytest.approx(expected)
    assert usage_cost({}, "o3", table) == 0.0
    written = {"input_tokens": 1000, "input_tokens_details": {"cache_write_tokens": 1000}}
    assert usage_cost(written, "gpt-5.6", table, target="openai") == pytest.approx(2.5 / 1000)


# --- LiteLLM files and user files -----------------------------------------------------------


def _write(tmp_path: Path, data: object, name: str = "model_prices.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_litellm_1_108_shape_with_max_tokens_and_string_numbers(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "sample_spec": {"max_tokens": "LEGACY", "input_cost_per_token": 0.0},
            "gpt-4o": {
                "max_tokens": 16384,
                "max_input_tokens": 128000,
                "input_cost_per_token": "2.5e-06",
                "output_cost_per_token": 1e-05,
                "cache_read_input_token_cost": 1.25e-06,
                "litellm_provider": "openai",
                "mode": "chat",
            },
            "azure/gpt-4o": {
                "max_tokens": 16384,
                "input_cost_per_token": 2.5e-06,
                "output_cost_per_token": 1e-05,
                "litellm_provider": "azure",
            },
            "azure/eu/gpt-4o": {"input_cost_per_token": 2.75e-06, "output_cost_per_token": 1.1e-05},
            "dall-e-2": {"input_cost_per_pixel": 2.4e-08, "mode": "image_generation"},
            "broken": "not an object",
        },
    )
    table = PriceTable.load(path, fallback=False)
    price = table.lookup("gpt-4o-2024-08-06", target="openai")
    assert price.max_output_tokens == 16384 and price.max_input_tokens == 128000
    # no *_batches keys: half the standard price
    assert (price.batch_input, price.batch_output) == pytest.approx((1.25, 5.0))
    zone = table.lookup("gpt-4o", region="data-zone")
    assert (zone.batch_input, zone.batch_output) == pytest.approx((1.375, 5.5))
    assert zone.max_output_tokens == 16384  # from the base row
    assert "dall-e-2" not in table and "sample_spec" not in table


def test_litellm_1_110_shape_with_alias_of_tiers_and_batch_keys(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "fallback_generalizations": {"rules": [{"pattern": "^gpt-.*", "model": "gpt-4o"}]},
            "azure/gpt-5.4-mini": {
                "litellm_provider": "azure",
                "mode": "chat",
                "input_cost_per_token": 7.5e-07,
                "output_cost_per_token": 4.5e-06,
                "input_cost_per_token_batches": 3.7e-07,
                "output_cost_per_token_batches": 2.2e-06,
                "input_cost_per_token_above_272k_tokens": 1.5e-06,
                "input_cost_per_token_above_272k_tokens_batches": 7.4e-07,
                "cache_creation_input_token_cost": 9.375e-07,
                "max_input_tokens": 922000,
                "max_output_tokens": 128000,
                "supports_reasoning": True,
                "deprecation_date": "2027-09-01",
                "successor_model": "azure/gpt-6-mini",
            },
            "azure/gpt-mini-latest": {"alias_of": "azure/gpt-5.4-mini"},
            "azure/chained": {"alias_of": "azure/gpt-mini-latest"},
            "azure/dangling": {"alias_of": "azure/nope"},
        },
    )
    table = PriceTable.load(path, fallback=False)
    price = table.lookup("gpt-mini-latest")
    assert price.batch_input == pytest.approx(0.37)  # the *_batches key, not half of 0.75
    assert price.batch_output == pytest.approx(2.2)
    assert price.is_reasoning and price.max_output_tokens == 128000
    assert price.retirement_date == dt.date(2027, 9, 1)
    # the tier: published batch input, output inherited from the row
    assert price.tiers[1].above_input_tokens == 272_000
    assert (price.tiers[1].batch_input, price.tiers[1].batch_output) == pytest.approx((0.74, 2.2))
    assert price.charges_cache_writes
    assert "chained" not in table and "dangling" not in table
    assert "fallback_generalizations" not in table


def test_real_litellm_file(litellm: PriceTable) -> None:
    assert len(litellm) > 1000
    gpt4o = litellm.lookup("gpt-4o-2024-08-06")
    assert (gpt4o.batch_input, gpt4o.batch_output) == pytest.approx((1.25, 5.0))
    # azure/eu/gpt-4o-mini has no output batch key: half of 0.66
    mini = litellm.lookup("gpt-4o-mini", region="data-zone")
    assert (mini.batch_input, mini.batch_output) == pytest.approx((0.083, 0.33))
    # azure/eu/gpt-5 has no max_* keys: limits come from the base row
    gpt5 = litellm.lookup("gpt-5", region="data-zone")
    assert gpt5.max_input_tokens == 272000 and gpt5.batch_cached_input == pytest.approx(0.06875)
    assert litellm.lookup("gpt-4o-2024-05-13", target="openai").batch_output == pytest.approx(7.5)
    # an alias_of row (1.110.2) resolves to its target's prices
    assert litellm.lookup("gpt-mini-latest").batch_input == pytest.approx(
        litellm.lookup("gpt-5.4-mini").batch_input
    )
    # provider-prefixed keys of other providers are found under their full key
    for key in ("azure_ai/claude-sonnet-5", "bedrock/claude-opus-latest", "azure/global/gpt-5.1"):
        assert key in litellm, key
    assert litellm.lookup("bedrock/ap-northeast-1/deepseek.v3.2").scope == "bedrock"
    with pytest.raises(PriceNotFound):
        litellm.lookup("my-deployment")


def test_bundled_table_agrees_with_litellm_on_batch_prices(
    table: PriceTable, litellm: PriceTable
) -> None:
    for model in ["gpt-4o", "gpt-4.1-mini", "o3", "o4-mini", "gpt-5-nano", "gpt-4o-2024-05-13"]:
        for target, region in [("openai", "global"), ("azure", "global"), ("azure", "data-zone")]:
            ours = table.lookup(model, target=target, region=region)
            theirs = litellm.lookup(model, target=target, region=region)
            assert ours.batch_input == pytest.approx(theirs.batch_input, rel=0.01), model
            assert ours.batch_output == pytest.approx(theirs.batch_output, rel=0.01), model


def test_a_user_file_wins_and_the_bundled_table_fills_in(tmp_path: Path) -> None:
    path = _write(
        tmp_path, {"gpt-4o": {"input_cost_per_token": 1e-06, "litellm_provider": "openai"}}
    )
    table = PriceTable.load(path)
    assert table.lookup("gpt-4o", target="openai").batch_input == pytest.approx(0.5)
    assert table.lookup("gpt-4.1", target="openai").batch_input == pytest.approx(1.0)
    assert table.lookup("gpt-4.1").table.startswith("the bundled price table")
    assert "then the bundled price table" in table.describe()
    with pytest.raises(PriceNotFound):
        PriceTable.load(path, fallback=False).lookup("gpt-4.1")


def test_our_format_1_still_loads(tmp_path: Path) -> None:
    row = {"applies_to": ["azure-data-zone"], "input": 2.2, "source": "meter", "date": "2026-01-01"}
    path = _write(
        tmp_path,
        {
            "format": "jsonl-batch-prices/1",
            "date": "2026-01-01",
            "currency": "USD",
            "unit": "per 1M tokens",
            "batch_discount": {"value": 0.5, "source": "FAQ"},
            "data_zone_multiplier": {"value": 1.1, "source": "meters"},
            "models": {"my-model": {"prices": [row]}},
        },
    )
    table = PriceTable.load(path)
    assert table.lookup("my-model", region="data-zone-us").batch_input == pytest.approx(1.1)
    assert table.lookup("my-model", region="data-zone-eu").batch_input == pytest.approx(1.1)


def test_a_bad_model_entry_is_skipped_and_named(tmp_path: Path) -> None:
    good = {
        "prices": [{"applies_to": ["openai"], "input": 1.0, "source": "s", "date": "2026-01-01"}]
    }
    bad = {"prices": [{"applies_to": ["openai"], "source": "s", "date": "2026-01-01"}]}
    path = _write(
        tmp_path,
        {
            "format": "jsonl-batch-prices/2",
            "date": "2026-01-01",
            "currency": "USD",
            "unit": "per 1M tokens",
            "batch_discount": {"value": 0.5, "source": "FAQ"},
            "models": {"good-model": good, "bad-model": bad},
        },
    )
    table = PriceTable.load(path, fallback=False)
    assert "good-model" in table and "bad-model" not in table
    (problem,) = table.problems
    assert str(path) in problem and "'bad-model'" in problem and "input" in problem


def test_a_bad_litellm_price_is_skipped_and_named(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "gpt-4o": {"input_cost_per_token": "cheap", "litellm_provider": "openai"},
            "gpt-4.1": {"input_cost_per_token": 2e-06, "output_cost_per_token": -1},
        },
    )
    table = PriceTable.load(path, fallback=False)
    assert "gpt-4o" not in table and "gpt-4.1" not in table
    assert any("'gpt-4o'" in p and "input_cost_per_token is 'cheap'" in p for p in table.problems)
    assert any("'gpt-4.1'" in p and "output_cost_per_token" in p for p in table.problems)


def test_invalid_price_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "jsonl-batch-prices/1", "models": {}}))
    with pytest.raises(ConfigError, match="invalid price file at date"):
        PriceTable.load(bad)
    bad.write_text(json.dumps({"format": "jsonl-batch-prices/2", "models": []}))
    with pytest.raises(ConfigError, match="'models' must be an object"):
        PriceTable.load(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a price table"):
        PriceTable.load(bad)
    bad.write_text("garbage")
    with pytest.raises(ConfigError, match="not valid JSON"):
        PriceTable.load(bad)
    bad.write_text(json.dumps({"format": "jsonl-batch-prices/9", "models": {}}))
    with pytest.raises(ConfigError, match="unknown price file format"):
        PriceTable.load(bad)
