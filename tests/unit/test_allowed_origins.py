"""TASKAGENT_ALLOWED_ORIGINS: its defaults, `:*` ports, `none`, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from graph.settings import ConfigError, load_settings
from server.security.browser_guard import write_refusal
from server.security.cors import AllowedOrigins

VARIABLE = "TASKAGENT_ALLOWED_ORIGINS"


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.delenv(VARIABLE, raising=False)


def origins() -> AllowedOrigins:
    return AllowedOrigins.parse(load_settings().allowed_origins)


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:3000",
        "http://localhost",
        "http://127.0.0.1:5173",
        "http://[::1]:8080",
        "HTTP://LOCALHOST:3000/",
        "https://smith.langchain.com",
    ],
)
def test_loopback_pages_of_any_port_and_studio_are_allowed_by_default(origin: str) -> None:
    assert origin in origins()
    assert (
        write_refusal("POST", {"origin": origin, "sec-fetch-site": "cross-site"}, origins()) is None
    )


@pytest.mark.parametrize(
    "origin",
    [
        "https://localhost:3000",  # another scheme is another origin
        "http://localhost:3000.evil.example",
        "http://localhost.evil.example:3000",
        "http://127.0.0.1:99999",
        "http://127.0.0.2:3000",
        "https://smith.langchain.com:8443",
        "https://smith.langchain.com.evil.example",
        "http://smith.langchain.com",
        "null",
        "",
    ],
)
def test_other_origins_are_not(origin: str) -> None:
    assert origin not in origins()
    refusal = write_refusal("POST", {"origin": origin, "sec-fetch-site": "cross-site"}, origins())
    assert refusal is not None and "TASKAGENT_ALLOWED_ORIGINS" in refusal


def test_a_configured_list_replaces_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, "https://Chat.Example.com/, http://localhost:3000,http://[::1]:*")
    allowed = origins()
    assert "https://chat.example.com" in allowed and "http://localhost:3000" in allowed
    assert "http://[::1]:4000" in allowed
    assert "http://localhost:3001" not in allowed
    assert "https://smith.langchain.com" not in allowed


def test_none_allows_no_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, "none")
    assert load_settings().allowed_origins == []
    assert "http://localhost:3000" not in origins()


@pytest.mark.parametrize(
    "value",
    ["localhost:3000", "http://localhost:3000/chat", "http://*.example.com", "*", "http://h:x"],
)
def test_an_unusable_entry_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(VARIABLE, value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    message = str(refused.value)
    assert VARIABLE in message and ":* for any port" in message and "\n" not in message
