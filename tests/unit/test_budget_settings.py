"""Per-tier context budget settings: defaults, and one-line errors for unusable values."""

from __future__ import annotations

from pathlib import Path

import pytest

from graph.settings import ConfigError, load_settings

VARIABLES = (
    "TASKAGENT_OLLAMA_CONTEXT_TOKENS",
    "TASKAGENT_OLLAMA_MAX_TOKENS",
    "TASKAGENT_OLLAMA_TEMPERATURE",
    "TASKAGENT_OPENAI_CONTEXT_TOKENS",
    "TASKAGENT_OPENAI_MAX_TOKENS",
    "TASKAGENT_OPENAI_TEMPERATURE",
)


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_suit_tool_use() -> None:
    settings = load_settings()
    assert (settings.ollama_context_tokens, settings.ollama_max_tokens) == (8192, 512)
    assert (settings.openai_context_tokens, settings.openai_max_tokens) == (128_000, 512)
    assert settings.ollama_temperature == settings.openai_temperature == 0.2


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("TASKAGENT_OPENAI_CONTEXT_TOKENS", "100", "greater than or equal to 1024"),
        ("TASKAGENT_OLLAMA_CONTEXT_TOKENS", "lots", "valid integer"),
        ("TASKAGENT_OPENAI_MAX_TOKENS", "0", "greater than or equal to 16"),
        ("TASKAGENT_OLLAMA_TEMPERATURE", "3", "less than or equal to 2"),
        ("TASKAGENT_OPENAI_TEMPERATURE", "-0.1", "greater than or equal to 0"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, words: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    line = str(caught.value)
    assert "\n" not in line and variable in line and words in line


def test_reserved_tokens_must_leave_room_for_the_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKAGENT_OPENAI_CONTEXT_TOKENS", "4096")
    monkeypatch.setenv("TASKAGENT_OPENAI_MAX_TOKENS", "3000")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    line = str(caught.value)
    assert "\n" not in line
    assert "TASKAGENT_OPENAI_MAX_TOKENS (3000)" in line and "CONTEXT_TOKENS (4096)" in line
