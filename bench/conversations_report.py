"""What the conversations benchmark (`bench.conversations`) prints: readable lines, then the same
figures as one line of JSON (so CI logs and runs can be compared)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass

from bench.conversations_services import MODEL_SERVER, SYSTEM
from bench.overload_figures import Sampler, Stored
from bench.overload_load import Driven
from bench.stack import percentile
from bench.statements import PerRun
from bench.statements import lines as statement_lines

MACHINE = "machine"


@dataclass(frozen=True)
class Measured:
    """One load's figures: the clients', the database's, the sampled metrics', and each process
    group's CPU seconds over the load and the drain, idle baseline already subtracted."""

    driven: Driven
    wall_s: float  # the load: first trigger to last run done
    cpu_s: Mapping[str, float]  # group (and MACHINE) -> CPU seconds, idle subtracted
    idle: Mapping[str, float]  # group (and MACHINE) -> idle CPU seconds per second
    kinds: Mapping[str, str]  # group -> SYSTEM or APART
    calls: int
    db: Stored
    sampler: Sampler
    peak_mb: Mapping[str, float]  # root process -> VmHWM
    pss_mb: Mapping[str, float]  # group -> highest summed Pss
    durability: str
    speed_probe_s: float  # `bench.stack.speed_probe_s` just before the load
    statements: PerRun | None = None  # with `--statements N`

    def done(self) -> int:
        return len(self.db.seconds("trigger_to_done"))


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50_ms": ms(percentile(values, 0.5)),
        "p99_ms": ms(percentile(values, 0.99)),
        "max_ms": ms(max(values)),
    }


def cpu_figures(m: Measured) -> dict[str, object]:
    """CPU milliseconds per conversation: the system's total (every group but the model server
    and the clients), each group's, the groups reported apart, and the whole machine's."""
    done = max(1, m.done())
    system = {g: ms(max(0.0, s) / done) for g, s in m.cpu_s.items() if m.kinds.get(g) == SYSTEM}
    apart = {g: ms(max(0.0, s) / done) for g, s in m.cpu_s.items() if g in m.kinds and g not in system}
    # The model server does the same work for every conversation, so this ratio moves with the
    # system's cost and not with the machine's speed, which drifts by a fifth here. Taken from the
    # seconds, not the rounded milliseconds: 2.1 ms rounded is ±2.4 %, as much as a change moves it.
    system_s = sum(max(0.0, s) for g, s in m.cpu_s.items() if g in system)
    model_s = max(0.0, m.cpu_s.get(MODEL_SERVER, 0.0))
    return {
        "cpu_ms_per_conversation": round(sum(system.values()), 1),
        "cpu_per_model_server_cpu": round(system_s / model_s, 2) if model_s > 0 else None,
        "cpu_ms_per_conversation_by_group": system,
        "cpu_ms_per_conversation_apart": apart,
        "machine_cpu_ms_per_conversation": ms(max(0.0, m.cpu_s.get(MACHINE, 0.0)) / done),
        "idle_cpu_percent": {g: round(100 * r, 1) for g, r in m.idle.items()},
    }


def latency_figures(args: argparse.Namespace, m: Measured) -> dict[str, object]:
    done = max(1, m.done())
    model_s = m.calls / done * args.model_latency  # the model's answers, one after the other
    db = m.db.seconds("trigger_to_done")
    p50, p99 = percentile(db, 0.5), percentile(db, 0.99)
    return {
        "model_time_ms": ms(model_s),
        "trigger_to_done": spread(db),
        "trigger_to_done_client": spread(m.driven.seconds),
        "overhead_p50_ms": ms(p50 - model_s),
        "overhead_p99_ms": ms(p99 - model_s),
        "p99_over_model_time": round(p99 / model_s, 2) if model_s else None,
        "to_claim": spread(m.db.seconds("to_claim")),
        "conversation": spread(m.db.seconds("conversation")),
        "oldest_pending_max_s": m.sampler.highest.get("agent_eval_queue_oldest_pending_age_seconds"),
        "saturation_max": m.sampler.highest.get("agent_eval_executor_saturation"),
        "conversations_active_max": m.sampler.highest.get("agent_eval_conversations_active"),
    }


def figures(args: argparse.Namespace, m: Measured) -> dict[str, object]:
    done = m.done()
    messages = sum(int(t["turns"]) for t in m.db.turns)
    return {
        "bench": "conversations",
        "mode": args.mode,
        "runs": args.runs,
        "concurrency": args.concurrency,
        "model_latency_s": args.model_latency,
        "persona": args.persona,
        "executors": args.executors if args.mode == "stack" else 1,
        "executor_processes": args.executor_processes,
        "max_inflight_runs_per_company": args.max_inflight,
        "database": m.durability,
        "speed_probe_s": round(m.speed_probe_s, 3),
        "done": done,
        "wall_s": round(m.wall_s, 1),
        "conversations_per_hour": round(done / m.wall_s * 3600),
        "runs_per_s": round(done / m.wall_s, 2),
        **cpu_figures(m),
        "peak_rss_mb": {name: round(mb) for name, mb in m.peak_mb.items()},
        "pss_peak_mb": {name: round(mb) for name, mb in m.pss_mb.items()},
        "model_calls_per_conversation": round(m.calls / max(1, done), 2),
        "messages_per_conversation": round(messages / max(1, len(m.db.turns)), 2),
        **latency_figures(args, m),
        "statuses": m.db.statuses(),
        "client_errors": dict(m.driven.errors),
    }


def timing(spread_ms: object) -> str:
    if not isinstance(spread_ms, dict) or not spread_ms:
        return "n/a"
    return "   ".join(f"{k.removesuffix('_ms')} {v:,.0f} ms" for k, v in spread_ms.items())


def per_group(values: object, unit: str) -> str:
    return ", ".join(f"{k} {v:,.1f}{unit}" for k, v in values.items()) if isinstance(values, dict) else "n/a"


def report(args: argparse.Namespace, m: Measured, *, total_s: float) -> None:
    f = figures(args, m)
    print(
        f"conversations: {args.runs} ten-message conversations, {args.concurrency} in flight, "
        f"model answering in {args.model_latency:g} s, mode {args.mode}, {f['executors']} executor(s) "
        f"of {args.executor_processes} process(es), in-flight cap per company {args.max_inflight}"
    )
    rate = f"{f['runs_per_s']} runs/s; {f['done']} done in {f['wall_s']} s; wall clock"
    lines = [
        ("database", str(m.durability)),
        ("machine speed", f"{m.speed_probe_s:.2f} s CPU, a fixed Python loop (lower: faster; it drifts)"),
        ("conversations/hour", f"{f['conversations_per_hour']:,}   ({rate})"),
        (
            "CPU/conversation",
            f"{f['cpu_ms_per_conversation']} ms   (the groups below, idle subtracted)",
        ),
        ("  by group", per_group(f["cpu_ms_per_conversation_by_group"], " ms")),
        ("  apart", per_group(f["cpu_ms_per_conversation_apart"], " ms")),
        (
            "  whole machine",
            f"{f['machine_cpu_ms_per_conversation']} ms   (all its processes, ours or not; no baseline)",
        ),
        (
            "  in model units",
            f"{f['cpu_per_model_server_cpu']} x the model server's CPU   (the same work every time: "
            "compare this across sittings)",
        ),
        ("  idle baseline", f"{per_group(f['idle_cpu_percent'], ' %')} of a core"),
        ("peak RSS", per_group(f["peak_rss_mb"], " MB")),
        ("peak Pss (group)", per_group(f["pss_peak_mb"], " MB")),
        (
            "model calls/conv",
            f"{f['model_calls_per_conversation']}   messages/conv {f['messages_per_conversation']}",
        ),
        ("model time/conv", f"{f['model_time_ms']:,.0f} ms"),
        ("trigger→done", f"{timing(f['trigger_to_done'])}   (database)"),
        ("trigger→done", f"{timing(f['trigger_to_done_client'])}   (clients)"),
        ("overhead", overhead(f)),
        ("to the claim", f"{timing(f['to_claim'])}   (the queue: trigger to an executor's claim)"),
        ("conversation", timing(f["conversation"])),
        (
            "oldest pending max",
            f"{f['oldest_pending_max_s']} s   (agent_eval_queue_oldest_pending_age_seconds)",
        ),
        ("saturation max", f"{f['saturation_max']}   conversations max {f['conversations_active_max']}"),
        ("statuses", f"{f['statuses']}   client errors {f['client_errors'] or 0}"),
        ("total time", f"{total_s:,.1f} s (start-up, idle baseline, load, drain, stop)"),
    ]
    for label, text in lines:
        print(f"  {label:<20}{text}")
    if m.statements is not None:
        print("\n".join(statement_lines(m.statements)))
    print(json.dumps(f, separators=(",", ":")))


def overhead(f: Mapping[str, object]) -> str:
    p50, p99, ratio = f["overhead_p50_ms"], f["overhead_p99_ms"], f["p99_over_model_time"]
    return (
        f"p50 {p50:,.0f} ms   p99 {p99:,.0f} ms   above model time (trigger→done p99 = {ratio} x model time)"
    )
