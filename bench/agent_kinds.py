"""The three kinds of agent the pipeline benchmark compares, each holding the same ten-turn
conversation (five caller questions, five short answers): a `prompt` agent (scripted rules), a
`flow` agent (a start node and one conversation node whose transition is evaluated after every
caller message and never taken), and an `http` agent (the example agent in
`examples/http_agent.py`, a separate local process, called in the `simple` format)."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from bench.stack import ROOT, Processes, create_case, wait_ready
from service.local.pgserver import free_port

KINDS = ("prompt", "flow", "http")
ANSWER = "Here is a short answer to your question."
RULES = [{"when": "question", "say": ANSWER}]


def agent_body(kind: str, agent_url: str | None) -> Mapping[str, object]:
    """The agent of `kind` (the http one calls `agent_url`)."""
    prompt = {"system_prompt": "You answer questions briefly.", "model": "scripted"}
    if kind == "prompt":
        return {**prompt, "agent_speaks_first": False, "rules": RULES}
    if kind == "flow":
        nodes = [
            {"id": "start", "type": "start", "agent_speaks_first": False, "next_step_id": "answer"},
            {
                "id": "answer",
                "type": "conversation",
                "instructions": "Answer each question briefly.",
                "rules": RULES,
                "transitions": [
                    {
                        "id": "human",
                        "label": "operator",
                        "description": "Insists on an operator",
                        "next_step_id": "handoff",
                    }
                ],
            },
            {"id": "handoff", "type": "transfer", "transfer_message": "Transferring you."},
        ]
        return {**prompt, "type": "flow", "flow_config": {"nodes": nodes}}
    return {
        "type": "http",
        "endpoint": {"url": f"{agent_url}/simple", "format": "simple", "timeout_secs": 30},
    }


def make_case(
    base: str, key: str, *, max_turns: int, lines: int, kind: str = "prompt", agent_url: str | None = None
) -> str:
    """A case of the `kind` agent and a scripted caller asking `lines` questions."""
    script = [f"Question number {i}, please answer it." for i in range(1, lines + 1)]
    persona = {"identity_prompt": "You ask questions.", "model": "scripted", "script": script}
    case = {
        "scenario": "The caller asks questions.",
        "max_turns": max_turns,
        "success_criteria": [
            {"type": "must_say", "pattern": "short answer"},
            {"type": "must_not_say", "pattern": "I can't help"},
        ],
    }
    return create_case(base, key, agent=agent_body(kind, agent_url), persona=persona, case=case)


def start_agent_server(processes: Processes) -> str:
    """The example HTTP agent as its own process (its CPU is the user's agent's, not ours); its URL."""
    port = free_port()
    program = (sys.executable, str(ROOT / "examples" / "http_agent.py"))
    processes.start("http-agent", "--port", str(port), program=program)
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/healthz")
    return url
