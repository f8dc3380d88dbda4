"""Price table: bundled lookups, Azure regions, LiteLLM files, cost arithmetic, usage cost."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from jsonl_batch.errors import ConfigError, PriceNotFound
from jsonl_batch.pricing import PriceFile, PriceTable, price_schema, usage_cost, usage_tokens

ROOT = Path(__file__).resolve().parent.parent
LITELLM_COPY = ROOT.parent / "shared" / "reference" / "litellm_model_prices.json"

# The models the issue (prices.md §3) asks the bundled table to cover.
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


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


# --- bundled table -------------------------------------------------------------------


def test_bundled_table_is_dated_and_covers_the_models(table: PriceTable) -> None:
    assert table.date == "2026-11-24"
    for model in REQUIRED_MODELS:
        assert model in table, model


def test_every_bundled_row_has_a_source_and_date() -> None:
    data = json.loads((ROOT / "jsonl_batch" / "data" / "prices.json").read_text())
    price_file = PriceFile.model_validate(data)
    for name, entry in price_file.models.items():
        for row in entry.prices:
            assert row.source, name
            assert row.date <= dt.date(2026, 11, 24), name


def test_schema_file_matches_the_model() -> None:
    on_disk = json.loads((ROOT / "schemas" / "prices.schema.json").read_text())
    assert on_disk == price_schema()


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


def test_azure_data_zone_row(table: PriceTable) -> None:
    price = table.lookup("gpt-4o", region="data-zone")
    assert price.scope == "azure-data-zone"
    assert (price.batch_input, price.batch_output) == (1.375, 5.5)


def test_azure_data_zone_uplift_without_a_row(table: PriceTable) -> None:
    global_price = table.lookup("gpt-35-turbo")
    zone_price = table.lookup("gpt-35-turbo", region="data-zone")
    assert zone_price.batch_input == pytest.approx(global_price.batch_input * 1.1)
    assert zone_price.batch_output == pytest.approx(global_price.batch_output * 1.1)
    assert any("1.1x" in note for note in zone_price.notes)


def test_litellm_style_prefix_forces_the_zone(table: PriceTable) -> None:
    assert table.lookup("azure/eu/gpt-4.1").batch_input == pytest.approx(1.1)
    assert table.lookup("azure/gpt-4.1").batch_input == pytest.approx(1.0)


def test_openai_target_uses_openai_rows(table: PriceTable) -> None:
    openai = table.lookup("o3", target="openai")
    azure = table.lookup("o3")
    assert openai.scope == "openai" and azure.scope == "azure-global"
    assert openai.retirement_date == dt.date(2026, 12, 11)
    assert azure.retirement_date == dt.date(2026, 11, 19)
    # ada-002 differs between OpenAI (0.10) and Azure (0.11)
    assert table.lookup("text-embedding-ada-002", target="openai").input == pytest.approx(0.1)
    assert table.lookup("text-embedding-ada-002").input == pytest.approx(0.11)


def test_missing_model_is_a_clear_error(table: PriceTable) -> None:
    with pytest.raises(PriceNotFound) as info:
        table.lookup("my-gpt4o-deployment")
    assert "my-gpt4o-deployment" in info.value.message
    assert "--deployment-map" in info.value.hint
    assert "--prices" in info.value.hint


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


# --- LiteLLM files ------------------------------------------------------------------------


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "model_prices_and_context_window.json"
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
    table = PriceTable.load(path)
    price = table.lookup("gpt-4o-2024-08-06", target="openai")
    assert price.max_output_tokens == 16384 and price.max_input_tokens == 128000
    # no *_batches keys: half the standard price
    assert (price.batch_input, price.batch_output) == pytest.approx((1.25, 5.0))
    zone = table.lookup("gpt-4o", region="data-zone")
    assert (zone.batch_input, zone.batch_output) == pytest.approx((1.375, 5.5))
    assert zone.max_output_tokens == 16384  # from the base row
    assert "dall-e-2" not in table and "sample_spec" not in table


def test_litellm_1_110_shape_with_alias_of_and_batch_keys(tmp_path: Path) -> None:
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
                "max_input_tokens": 272000,
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
    table = PriceTable.load(path)
    price = table.lookup("gpt-mini-latest")
    assert price.batch_input == pytest.approx(0.37)  # the *_batches key, not half of 0.75
    assert price.batch_output == pytest.approx(2.2)
    assert price.is_reasoning and price.max_output_tokens == 128000
    assert price.retirement_date == dt.date(2027, 9, 1)
    assert "chained" not in table and "dangling" not in table
    assert "fallback_generalizations" not in table


@pytest.mark.skipif(not LITELLM_COPY.exists(), reason="shared LiteLLM copy not present")
def test_real_litellm_file() -> None:
    table = PriceTable.load(LITELLM_COPY)
    assert len(table) > 1000
    gpt4o = table.lookup("gpt-4o-2024-08-06")
    assert (gpt4o.batch_input, gpt4o.batch_output) == pytest.approx((1.25, 5.0))
    # azure/eu/gpt-4o-mini has no output batch key: half of 0.66
    mini = table.lookup("gpt-4o-mini", region="data-zone")
    assert (mini.batch_input, mini.batch_output) == pytest.approx((0.083, 0.33))
    # azure/eu/gpt-5 has no max_* keys: limits come from the base row
    gpt5 = table.lookup("gpt-5", region="data-zone")
    assert gpt5.max_input_tokens == 272000 and gpt5.batch_cached_input == pytest.approx(0.06875)
    assert table.lookup("gpt-4o-2024-05-13", target="openai").batch_output == pytest.approx(7.5)
    # an alias_of row (1.110.2) resolves to its target's prices
    assert table.lookup("gpt-mini-latest").batch_input == pytest.approx(
        table.lookup("gpt-5.4-mini").batch_input
    )
    with pytest.raises(PriceNotFound):
        table.lookup("my-deployment")


@pytest.mark.skipif(not LITELLM_COPY.exists(), reason="shared LiteLLM copy not present")
def test_bundled_table_agrees_with_litellm_on_batch_prices(table: PriceTable) -> None:
    litellm = PriceTable.load(LITELLM_COPY)
    for model in ["gpt-4o", "gpt-4.1-mini", "o3", "o4-mini", "gpt-5-nano", "gpt-4o-2024-05-13"]:
        for target, region in [("openai", "global"), ("azure", "global"), ("azure", "data-zone")]:
            ours = table.lookup(model, target=target, region=region)
            theirs = litellm.lookup(model, target=target, region=region)
            assert ours.batch_input == pytest.approx(theirs.batch_input, rel=0.01), model
            assert ours.batch_output == pytest.approx(theirs.batch_output, rel=0.01), model


def test_invalid_price_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "jsonl-batch-prices/1", "models": {}}))
    with pytest.raises(ConfigError, match="invalid price file"):
        PriceTable.load(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a price table"):
        PriceTable.load(bad)
    bad.write_text("garbage")
    with pytest.raises(ConfigError, match="not valid JSON"):
        PriceTable.load(bad)
