"""HTTP agents without the network: what is sent for a turn, how each answer is read, the message
of every failure, when a call is tried again, which networks an operator opens, how secrets are
sealed, kept, masked and merged into an overriding endpoint."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import JsonValue, ValidationError

from schemas.agents import Agent, AgentCreate, AgentOverrides
from schemas.endpoints import AgentEndpoint, EndpointFormat, EndpointOverride
from service.core.errors import ProviderError, ValidationFailed
from service.core.networks import NO_NETWORKS, parse_networks, target_problem
from service.core.settings import Settings
from service.domain.agents import agent_field_errors
from service.domain.endpoints import overriding_endpoint, resolved_headers, stored_secrets
from service.domain.http_agents import (
    AgentReply,
    busy_wait_s,
    excerpt,
    read_reply,
    refused_failure,
    request_body,
    retry_after_s,
    status_failure,
    timeout_failure,
    unreachable_failure,
)
from service.domain.overrides import merge_agent
from service.domain.transcript import ToolCallRecord, TranscriptTurn
from tests.support.case_models import make_agent

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SESSION = "01a20000-0000-7000-8000-0000000000aa"
TRANSCRIPT = (
    TranscriptTurn(1, "agent", "Hello!"),
    TranscriptTurn(2, "persona", "I want a refund"),
    TranscriptTurn(3, "agent", None, (ToolCallRecord("c1", "lookup", {"order": "A-1"}),)),
    TranscriptTurn(4, "tool_result", tool_result={"tool_call_id": "c1", "result": {}}),
    TranscriptTurn(5, "flow_event", flow_event={"type": "flow_node_entered"}),
    TranscriptTurn(6, "agent", "Found it."),
    TranscriptTurn(7, "persona", "Thanks"),
)


def endpoint(**fields: Any) -> AgentEndpoint:
    return AgentEndpoint.model_validate(
        {"url": "https://agent.example.com/chat", "format": "simple", **fields}
    )


def reply(format_: EndpointFormat, document: Any, position: int = 8) -> AgentReply:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return read_reply(format_, raw, position)


def bad(format_: EndpointFormat, document: Any) -> str:
    with pytest.raises(ProviderError) as raised:
        reply(format_, document)
    assert raised.value.code == "AGENT_BAD_RESPONSE"
    return str(raised.value)


# --- what is sent -------------------------------------------------------------------------------------


def test_a_simple_request_carries_the_session_and_only_the_spoken_text() -> None:
    body = request_body(endpoint(), "", SESSION, TRANSCRIPT)

    assert body == {
        "session_id": SESSION,
        "messages": [
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "I want a refund"},
            {"role": "assistant", "content": "Found it."},
            {"role": "user", "content": "Thanks"},
        ],
    }


def test_an_openai_request_leads_with_the_system_prompt_and_names_the_model_and_user() -> None:
    body = request_body(endpoint(format="openai_chat", model="acme-1"), "Be kind.", SESSION, TRANSCRIPT[:2])

    assert body == {
        "model": "acme-1",
        "messages": [
            {"role": "system", "content": "Be kind."},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "I want a refund"},
        ],
        "user": SESSION,
    }
    assert "model" not in request_body(endpoint(format="openai_chat"), "", SESSION, TRANSCRIPT)


# --- what is read ----------------------------------------------------------------------------------------


def test_a_simple_reply_gives_text_calls_with_ids_usage_and_model() -> None:
    read = reply(
        "simple",
        {
            "reply": "Booked.",
            "tool_calls": [{"name": "book", "arguments": {"day": "mon"}}, {"name": "note", "id": "n-1"}],
            "usage": {"input_tokens": 12, "output_tokens": 3},
            "model": "bot-2",
        },
    )

    assert (read.text, read.input_tokens, read.output_tokens, read.model) == ("Booked.", 12, 3, "bot-2")
    assert read.tool_calls == (
        ToolCallRecord("call-8-0", "book", {"day": "mon"}),
        ToolCallRecord("n-1", "note"),
    )


def test_end_true_hangs_up_with_an_end_call_once() -> None:
    assert reply("simple", {"reply": "Bye", "end": True}).tool_calls == (
        ToolCallRecord("call-8-0", "end_call"),
    )
    both = reply("simple", {"reply": "Bye", "end": True, "tool_calls": [{"name": "end_call", "id": "e"}]})
    assert both.tool_calls == (ToolCallRecord("e", "end_call"),)


def test_a_simple_reply_without_usage_counts_no_tokens_and_an_empty_reply_is_no_text() -> None:
    read = reply("simple", {"reply": "", "tool_calls": [{"name": "book"}]})

    assert (read.text, read.input_tokens, read.output_tokens, read.model) == (None, 0, 0, None)


def test_nulls_in_a_simple_reply_mean_the_same_as_leaving_the_keys_out() -> None:
    read = reply("simple", {"reply": "Hi", "tool_calls": None, "end": None, "usage": None, "model": None})

    assert (read.text, read.tool_calls, read.input_tokens) == ("Hi", (), 0)
    assert reply("simple", {"tool_calls": [{"name": "book", "arguments": None}]}).tool_calls == (
        ToolCallRecord("call-8-0", "book"),
    )


def test_an_openai_reply_decodes_argument_strings_and_reads_usage() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "book", "arguments": '{"day": "mon"}'}},
            {"type": "function", "function": {"name": "end_call", "arguments": ""}},
        ],
    }
    read = reply(
        "openai_chat",
        {
            "model": "gpt-x",
            "choices": [{"message": message}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 4},
        },
    )

    assert read.text is None
    assert read.tool_calls == (
        ToolCallRecord("call_a", "book", {"day": "mon"}),
        ToolCallRecord("call-8-1", "end_call", {}),
    )
    assert (read.input_tokens, read.output_tokens, read.model) == (9, 4, "gpt-x")


@pytest.mark.parametrize(
    ("format_", "document", "message"),
    [
        ("simple", b"<html>oops</html>", "the agent's answer is not JSON: <html>oops</html>"),
        ("simple", b"", "the agent's answer is not JSON: (empty body)"),
        (
            "simple",
            {"text": "hi"},
            'the agent\'s answer has no "reply", "tool_calls" or "end": {"text": "hi"}',
        ),
        ("simple", {"reply": 5}, 'the agent\'s answer is not a {"reply", …} object (reply: '),
        ("simple", {"reply": "x", "tool_calls": [{"arguments": {}}]}, "(tool_calls.0.name: Field required)"),
        ("simple", {"reply": "x", "usage": {"input_tokens": -1}}, "(usage.input_tokens: "),
        ("simple", [1, 2], 'the agent\'s answer is not a {"reply", …} object'),
        (
            "openai_chat",
            {"reply": "hi"},
            "the agent's answer is not an OpenAI chat completion (choices: Field required)",
        ),
        ("openai_chat", {"choices": []}, "(choices: List should have at least 1 item"),
        ("openai_chat", {"choices": [{}]}, "(choices.0.message: Field required)"),
    ],
)
def test_an_answer_of_the_wrong_shape_is_a_bad_response_that_says_what_is_wrong(
    format_: EndpointFormat, document: Any, message: str
) -> None:
    assert message in bad(format_, document)


def test_tool_arguments_that_are_not_a_json_object_are_a_bad_response() -> None:
    for arguments in ("{not json", "[1]"):
        call = {"function": {"name": "book", "arguments": arguments}}
        message = bad("openai_chat", {"choices": [{"message": {"tool_calls": [call]}}]})
        assert message.startswith("the agent's call of book has arguments that are not a JSON object: ")


# --- failure messages ---------------------------------------------------------------------------------------


def test_an_excerpt_is_one_line_of_at_most_300_characters() -> None:
    assert excerpt(b'{\n  "error":\t"boom"\n}') == '{ "error": "boom" }'
    long = excerpt("x" * 1000)
    assert (len(long), long[-1]) == (300, "…")
    assert excerpt(b"\xff\xfe ok") == "\ufffd\ufffd ok"


def test_each_failure_names_its_code_and_what_happened() -> None:
    cases = [
        (
            status_failure(500, b'{"error": "boom"}'),
            "AGENT_HTTP_STATUS",
            'the agent answered HTTP 500: {"error": "boom"}',
        ),
        (status_failure(404, b""), "AGENT_HTTP_STATUS", "the agent answered HTTP 404: (empty body)"),
        (
            status_failure(301, b"moved", "https://new.example.com/chat"),
            "AGENT_HTTP_STATUS",
            "the agent answered HTTP 301, a redirect to https://new.example.com/chat: redirects are not "
            "followed, so point the endpoint at the final URL",
        ),
        (
            status_failure(429, b"{}", note=" 3 times"),
            "AGENT_HTTP_STATUS",
            "the agent answered HTTP 429 3 times: {}",
        ),
        (
            timeout_failure(5),
            "AGENT_HTTP_TIMEOUT",
            "the agent did not answer within 5 s (endpoint.timeout_secs)",
        ),
        (
            unreachable_failure("http://10.0.3.7:80", 5, "Connection refused"),
            "AGENT_HTTP_UNREACHABLE",
            "cannot connect to the agent at http://10.0.3.7:80 after 5 tries: Connection refused",
        ),
        (
            refused_failure("10.0.3.7 is a private address"),
            "AGENT_HTTP_REFUSED",
            "refused: 10.0.3.7 is a private address "
            "(an operator can allow private agents with AGENT_EVAL_AGENT_ALLOWED_NETWORKS)",
        ),
    ]
    for error, code, message in cases:
        assert (error.code, str(error)) == (code, message)


# --- trying again -------------------------------------------------------------------------------------------


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    assert retry_after_s("3", NOW) == 3.0
    assert retry_after_s("Thu, 01 Jan 2026 12:00:05 GMT", NOW) == 5.0
    assert retry_after_s("Thu, 01 Jan 2026 11:00:00 GMT", NOW) == 0.0
    assert retry_after_s("soon", NOW) is None
    assert retry_after_s(None, NOW) is None


def test_a_busy_agent_is_tried_three_times_honouring_a_short_retry_after() -> None:
    assert [busy_wait_s(tries, None, NOW) for tries in (1, 2, 3)] == [1.0, 2.0, None]
    assert busy_wait_s(1, "7", NOW) == 7.0
    assert busy_wait_s(1, "120", NOW) is None  # longer than we wait: the run fails now


# --- the networks an operator opens ----------------------------------------------------------------------


def test_allowed_networks_are_cidrs_addresses_and_host_names() -> None:
    allowed = parse_networks(" 10.0.3.0/24, Agent.Internal., 192.168.1.7 ,fd00::/8,my_agent")

    assert [
        allowed.allows_host(h) for h in ("10.0.3.7", "192.168.1.7", "agent.internal", "[fd00::1]", "my_agent")
    ] == [True, True, True, True, True]
    assert allowed.allows_host("[::ffff:10.0.3.9]")
    assert not any(allowed.allows_host(h) for h in ("10.0.4.1", "192.168.1.8", "other.internal", "127.0.0.1"))
    assert parse_networks("") == NO_NETWORKS


@pytest.mark.parametrize("entry", ["10.0.3", "not a host", "10.0.0.0/33", "-bad.example", "x/y"])
def test_a_bad_entry_is_refused_naming_it(entry: str) -> None:
    with pytest.raises(ValueError, match="is neither a CIDR"):
        parse_networks(f"10.0.0.0/8,{entry}")


def test_only_the_listed_targets_open_and_only_where_they_are_passed() -> None:
    allowed = parse_networks("10.0.3.0/24,agent.internal")

    assert target_problem("http://10.0.3.7:8080/a", allow_private=False, allowed=allowed) is None
    assert target_problem("http://agent.internal/a", allow_private=False, allowed=allowed) is None
    assert target_problem("http://10.0.4.7/a", allow_private=False, allowed=allowed) == (
        "http scheme: only https:// URLs are called"
    )
    assert target_problem("https://10.0.4.7/a", allow_private=False, allowed=allowed) == (
        "10.0.4.7 is a private address"
    )
    assert target_problem("https://10.0.3.7/a", allow_private=False) == "10.0.3.7 is a private address"
    assert target_problem("http://10.0.4.7/a", allow_private=True) is None


def test_the_setting_is_read_from_the_environment_and_checked_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.startswith("AGENT_EVAL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AGENT_EVAL_AGENT_ALLOWED_NETWORKS", "10.0.3.0/24,agent.internal")
    assert Settings().agent_networks() == parse_networks("agent.internal, 10.0.3.0/24")
    monkeypatch.setenv("AGENT_EVAL_AGENT_ALLOWED_NETWORKS", "10.0.3.0/24,what ever")
    with pytest.raises(ValidationError, match="'what ever' is neither a CIDR"):
        Settings()


# --- secrets ----------------------------------------------------------------------------------------------


def seal(secret: str) -> str:
    return f"sealed({secret})"


def test_secrets_are_shown_as_stars_except_in_the_form_made_for_storage() -> None:
    stored = endpoint(secrets={"KEY": "sealed(x)"})

    assert stored.model_dump(mode="json")["secrets"] == {"KEY": "***"}
    assert stored.storable().model_dump(mode="json")["secrets"] == {"KEY": "sealed(x)"}
    assert stored.model_dump(mode="json")["secrets"] == {"KEY": "***"}  # storable() made a copy


def test_new_secrets_are_sealed_and_stars_keep_the_stored_ones() -> None:
    current = endpoint(secrets={"KEY": "sealed(old)", "GONE": "sealed(g)"})
    sent = endpoint(secrets={"KEY": "***", "NEW": "fresh"})

    assert stored_secrets(sent, current, seal, "body.endpoint") == {
        "KEY": "sealed(old)",
        "NEW": "sealed(fresh)",
    }
    assert stored_secrets(endpoint(), current, seal, "body.endpoint") == current.secrets  # none sent: kept
    assert stored_secrets(None, current, seal, "body.endpoint") == current.secrets
    assert stored_secrets(endpoint(secrets={}), current, seal, "body.endpoint") == {}


def test_stars_for_a_secret_never_stored_are_refused() -> None:
    with pytest.raises(ValidationFailed) as raised:
        stored_secrets(endpoint(secrets={"KEY": "***"}), None, seal, "body.endpoint")

    assert [f.field for f in raised.value.fields] == ["body.endpoint.secrets.KEY"]


def test_headers_get_the_opened_secrets_they_name() -> None:
    headers = {"Authorization": "Bearer {{ secrets.KEY }}", "X-Both": "{{secrets.KEY}}/{{secrets.ID}}"}

    assert resolved_headers(headers, {"KEY": "k", "ID": "i"}) == {
        "Authorization": "Bearer k",
        "X-Both": "k/i",
    }
    with pytest.raises(ProviderError, match="a header uses secret 'ID', which the agent does not have"):
        resolved_headers(headers, {"KEY": "k"})


def test_an_override_cannot_carry_secrets() -> None:
    with pytest.raises(ValidationError, match="secrets live on the agent"):
        EndpointOverride.model_validate({"url": "https://x.example.com/a", "format": "simple", "secrets": {}})


def test_an_overriding_endpoint_takes_the_agents_stored_secrets() -> None:
    override = EndpointOverride.model_validate(
        {
            "url": "https://staging.example.com/a",
            "format": "simple",
            "headers": {"Authorization": "{{secrets.KEY}}"},
        }
    )
    merged = overriding_endpoint("http", endpoint(secrets={"KEY": "sealed(k)"}), override, "at")

    assert merged is not None
    assert (merged.url, merged.headers, merged.secrets) == (
        override.url,
        override.headers,
        {"KEY": "sealed(k)"},
    )
    with pytest.raises(ValidationFailed) as raised:
        overriding_endpoint("http", endpoint(), override, "at")
    assert [(f.field, f.message) for f in raised.value.fields] == [
        ("at.headers.Authorization", "uses secret 'KEY', which the agent does not have")
    ]


# --- the merge and the checks of a whole agent ---------------------------------------------------------


def http_agent(**endpoint_fields: JsonValue) -> Agent:
    data: dict[str, JsonValue] = {
        "url": "https://agent.example.com/chat",
        "format": "simple",
        **endpoint_fields,
    }
    return make_agent(type="http", tools=[], endpoint=data)


def test_the_last_endpoint_override_wins_and_the_merge_stores_the_sealed_secrets() -> None:
    agent = http_agent(secrets={"KEY": "sealed(k)"}, headers={"A": "{{secrets.KEY}}"})
    case_layer = AgentOverrides.model_validate(
        {"endpoint": {"url": "https://case.example.com/a", "format": "simple"}}
    )
    run_layer = AgentOverrides.model_validate(
        {
            "endpoint": {
                "url": "https://run.example.com/a",
                "format": "openai_chat",
                "headers": {"B": "{{secrets.KEY}}"},
            }
        }
    )

    merged = merge_agent(agent, case_layer, run_layer)

    assert merged.endpoint is not None
    assert (merged.endpoint.url, merged.endpoint.format) == ("https://run.example.com/a", "openai_chat")
    assert merged.model_dump(mode="json")["endpoint"]["secrets"] == {
        "KEY": "sealed(k)"
    }  # the snapshot's form
    assert merge_agent(agent).model_dump(mode="json")["endpoint"]["secrets"] == {"KEY": "sealed(k)"}
    assert agent.model_dump(mode="json")["endpoint"]["secrets"] == {"KEY": "***"}  # a view


def test_an_endpoint_override_on_a_prompt_agent_is_refused() -> None:
    layer = AgentOverrides.model_validate(
        {"endpoint": {"url": "https://x.example.com/a", "format": "simple"}}
    )

    with pytest.raises(ValidationFailed) as raised:
        merge_agent(make_agent(), layer)

    assert [f.field for f in raised.value.fields] == ["body.agent_overrides.endpoint"]


def field_errors(body: dict[str, JsonValue], **options: Any) -> list[tuple[str, str]]:
    agent = AgentCreate.model_validate(body)
    errors = agent_field_errors(agent, providers=frozenset({"openai"}), allow_http=False, **options)
    return [(e.field, e.message) for e in errors]


def test_a_whole_agent_is_checked_against_its_type() -> None:
    endpoint_data: dict[str, JsonValue] = {"url": "https://a.example.com/x", "format": "simple"}

    assert field_errors({"name": "a", "type": "http", "endpoint": endpoint_data}) == []
    assert field_errors({"name": "a", "type": "http"}) == [
        ("body.endpoint", "an http agent needs an endpoint")
    ]
    assert field_errors({"name": "a", "system_prompt": "p", "endpoint": endpoint_data}) == [
        ("body.endpoint", "only http agents have an endpoint (this is a prompt agent)")
    ]
    assert field_errors({"name": "a"}) == [("body.system_prompt", "Field required")]


def test_an_endpoint_url_is_checked_only_when_the_allowed_networks_are_known() -> None:
    body: dict[str, JsonValue] = {
        "name": "a",
        "type": "http",
        "endpoint": {"url": "http://10.0.3.7/x", "format": "simple"},
    }

    assert field_errors(body) == []  # a run checks it again when it calls
    assert [f for f, _ in field_errors(body, agent_networks=NO_NETWORKS)] == ["body.endpoint.url"]
    assert field_errors(body, agent_networks=parse_networks("10.0.3.0/24")) == []


def test_an_http_agent_cannot_have_a_flow_config() -> None:
    with pytest.raises(ValidationError, match="http agents cannot have a flow_config"):
        AgentCreate.model_validate(
            {
                "name": "a",
                "type": "http",
                "endpoint": {"url": "https://a.example.com", "format": "simple"},
                "flow_config": {"nodes": []},
            }
        )
