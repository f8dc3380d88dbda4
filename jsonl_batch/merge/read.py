"""Read merge's results back into Python, each row priced the way merge prices it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from ..errors import JsonlBatchError
from ..formats.results import ResultRow, read_result_rows
from ..jsonl import DEFAULT_MAX_LINE_BYTES
from ..profiles import Profile, as_profile

if TYPE_CHECKING:
    from ..pricing import ModelPrice, PriceTable


def read_results(
    path: str | os.PathLike[str],
    *,
    target: Profile | str = "azure",
    region: str = "global",
    prices: PriceTable | str | os.PathLike[str] | None = None,
    deployment_map: Mapping[str, str] | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[ResultRow]:
    """Yield the rows of a results file merge wrote, in input order, one at a time.

    Reads every results format (``<stem>.results.jsonl`` in the full, text or embedding
    format, or ``<stem>.results.csv``). ``cost_usd`` is the row's actual cost at batch prices,
    priced as ``merge`` prices it (``target``, ``region``, ``prices``, ``deployment_map`` as
    there); it is None when the row has no usage or no model (only full rows have both), the
    model has no price, or the target has no batch prices.

    >>> for row in read_results("data.results.jsonl"):  # doctest: +SKIP
    ...     print(row.custom_id, row.status, row.text, row.cost_usd)
    """
    profile = as_profile(target)
    rows = read_result_rows(path, max_line_bytes=max_line_bytes)
    if not profile.priced:
        yield from rows
        return
    from ..pricing import PriceTable

    table = prices if isinstance(prices, PriceTable) else PriceTable.load(prices)
    mapping = dict(deployment_map or {})
    found: dict[str, ModelPrice | None] = {}  # one lookup per model
    for row in rows:
        usage = row.usage
        if usage is not None and row.model:
            model = mapping.get(row.model, row.model)
            if model not in found:
                try:
                    found[model] = table.lookup(model, region=region, target=profile.name)
                except JsonlBatchError:
                    found[model] = None
            price = found[model]
            if price is not None:
                row.cost_usd = price.cost(
                    usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens
                )
        yield row
