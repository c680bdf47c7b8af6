from langchain_core.messages import HumanMessage

from graph.redaction import REDACTED, Redactor


def test_scrub_redacts_configured_and_key_shaped_secrets_but_keeps_token_counts():
    scrub = Redactor(["my-configured-key-42"]).value
    message = HumanMessage(content="use my-configured-key-42 and sk-abcdefghijkl now")
    payload = {
        "messages": [message],
        "invocation_params": {"api_key": "anything", "max_tokens": 200},
        "usage": {"input_tokens": 12, "output_tokens": 3},
        "headers": {"Authorization": "Bearer x"},
    }
    clean = scrub(payload)
    assert clean["messages"][0]["content"] == f"use {REDACTED} and {REDACTED} now"
    assert clean["invocation_params"] == {"api_key": REDACTED, "max_tokens": 200}
    assert clean["usage"] == {"input_tokens": 12, "output_tokens": 3}
    assert clean["headers"] == {"Authorization": REDACTED}
    assert "my-configured-key-42" in str(message.content)  # the original is untouched
