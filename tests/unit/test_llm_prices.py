"""Prices and cost: the shipped table, configured overrides, exact decimals, bad input."""

from __future__ import annotations

import typing
from decimal import Decimal
from pathlib import Path

import pytest
from anthropic.types.model_param import ModelParam

from ecl.config import Settings, load_settings
from ecl.core import ConfigError, TokenUsage
from ecl.engines.factory import build_prices
from ecl.llm.prices import Price, PriceTable, estimate_input_tokens
from ecl.llm.provider import CompletionRequest


def _sdk_models() -> list[str]:
    literal = next(arg for arg in typing.get_args(ModelParam) if typing.get_origin(arg) is typing.Literal)
    return [str(name) for name in typing.get_args(literal)]


def test_the_shipped_table_prices_every_model_the_sdk_names() -> None:
    table = PriceTable.shipped()
    models = _sdk_models()
    assert len(models) > 10
    missing = [m for m in models if table.find("anthropic", m) is None]
    assert missing == []
    assert table.find("anthropic", "claude-unknown-9") is None


def test_openai_compatible_models_cost_nothing_by_default() -> None:
    table = PriceTable.shipped()
    assert table.cost("openai", "llama3.2:1b", TokenUsage(input=10_000, output=5_000)) == Decimal(0)


def test_cost_is_exact_for_every_kind_of_token() -> None:
    price = Price(input=Decimal("3"), output=Decimal("15"), cache_write=Decimal("3.75"), cache_read=Decimal("0.3"))
    usage = TokenUsage(input=1234, output=567, cache_creation=1000, cache_read=50_001)
    # 1234*3 + 567*15 + 1000*3.75 + 50001*0.3 = 3702 + 8505 + 3750 + 15000.3 = 30957.3 per million
    assert price.cost(usage) == Decimal("0.0309573")
    assert isinstance(price.cost(usage), Decimal)
    # The worst case prices input as a cache write (the dearer) and the whole max_tokens.
    assert price.worst_case(1000, 2000) == Decimal("0.03375")


def test_sonnet_5_5_list_price() -> None:
    cost = PriceTable.shipped().cost("anthropic", "claude-sonnet-5-5", TokenUsage(input=1_000_000, output=1_000_000))
    assert cost == Decimal("12")


def test_estimate_is_generous() -> None:
    request = CompletionRequest.of("x" * 300, system="y" * 30)
    assert estimate_input_tokens(request) >= 330 // 4


def _load(tmp_path: Path, toml: str) -> Settings:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    return load_settings(path, environ={}, cwd=tmp_path)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("input = 1\noutput = 2\ncache_write = 1.25", "llm.prices.my-model.cache_read"),
        ("input = -1\noutput = 2\ncache_write = 1.25\ncache_read = 0.1", "llm.prices.my-model.input = -1"),
        ('input = "lots"\noutput = 2\ncache_write = 1.25\ncache_read = 0.1', "llm.prices.my-model.input = 'lots'"),
    ],
)
def test_a_bad_price_table_is_a_one_line_error(tmp_path: Path, body: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, f'[llm.prices."my-model"]\n{body}\n')
    assert needle in info.value.message
    assert "\n" not in info.value.message


def test_an_unknown_model_is_a_configuration_error_naming_it(tmp_path: Path) -> None:
    settings = _load(tmp_path, '[llm]\nmodel = "claude-mystery-1"\n')
    with pytest.raises(ConfigError) as info:
        build_prices(settings)
    assert "claude-mystery-1" in info.value.message
    assert info.value.key == "llm.model"
    assert "\n" not in info.value.message


def test_allow_unpriced_and_configured_prices(tmp_path: Path) -> None:
    allowed = _load(tmp_path, '[llm]\nmodel = "claude-mystery-1"\nallow_unpriced = true\n')
    assert build_prices(allowed).find("anthropic", "claude-mystery-1") is None
    priced = _load(
        tmp_path,
        '[llm]\nmodel = "claude-mystery-1"\n[llm.prices."claude-mystery-1"]\n'
        "input = 0.1\noutput = 0.2\ncache_write = 0.125\ncache_read = 0.01\n",
    )
    table = build_prices(priced)
    assert table.cost("anthropic", "claude-mystery-1", TokenUsage(input=10, output=10)) == Decimal("0.000003")
    # An override replaces the shipped price of a known model too.
    cheap = _load(
        tmp_path,
        '[llm.prices."claude-sonnet-5-5"]\ninput = 1\noutput = 1\ncache_write = 1\ncache_read = 1\n',
    )
    assert build_prices(cheap).cost("anthropic", "claude-sonnet-5-5", TokenUsage(input=1)) == Decimal("0.000001")
