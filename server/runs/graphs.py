"""The graphs this server serves: the task agent, plus every graph a `langgraph.json` lists.

Each graph is compiled here with the server's own checkpointer (and store), so the run
engine, the event log, ownership, idempotency and crash recovery treat every graph alike.
Only the task agent gets the task agent's input rules (user messages only); its guards live
in its own nodes.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore

from graph.builder import build_graph
from graph.services import Services
from graph.settings import ConfigError, Settings

TASK_AGENT = "agent"
_OWN_BUILDER = (Path(__file__).resolve().parents[2] / "graph" / "builder.py").resolve()

Compiled = CompiledStateGraph[Any, Any, Any, Any]


# The namespace langgraph-api derives system assistant ids from: a client that hard-codes the
# id `langgraph dev` gave a graph's assistant finds the same assistant here.
_GRAPH_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


def system_assistant_id(graph_id: str) -> str:
    """The id of the assistant the server creates for a graph (stable across restarts)."""
    return str(uuid.uuid5(_GRAPH_NAMESPACE, graph_id))


@dataclass(frozen=True)
class ServedGraph:
    """One graph as the server runs it."""

    graph_id: str
    graph: Compiled
    description: str = ""

    @property
    def task_agent(self) -> bool:
        """Whether this is the task agent (its input rules and approvals apply)."""
        return self.graph_id == TASK_AGENT

    @property
    def assistant_id(self) -> str:
        """Its system assistant's id."""
        return system_assistant_id(self.graph_id)


class GraphRegistry:
    """The served graphs by id; the task agent is always there and is the default."""

    def __init__(self, graphs: list[ServedGraph]) -> None:
        self._graphs = {served.graph_id: served for served in graphs}

    def ids(self) -> list[str]:
        """The graph ids, the task agent first."""
        return list(self._graphs)

    def find(self, graph_id: str) -> ServedGraph | None:
        """The graph of that id, or None."""
        return self._graphs.get(graph_id)

    def get(self, graph_id: str | None) -> ServedGraph:
        """The graph of that id (the task agent for None); KeyError when not served."""
        return self._graphs[graph_id or TASK_AGENT]

    def by_assistant(self, assistant_id: str) -> ServedGraph | None:
        """The graph a system assistant id (or a graph id) names, or None."""
        for served in self._graphs.values():
            if assistant_id in (served.graph_id, served.assistant_id):
                return served
        return None

    def __iter__(self) -> Any:
        return iter(self._graphs.values())


async def load_graphs(
    settings: Settings,
    services: Services,
    saver: BaseCheckpointSaver[Any],
    store: BaseStore | None = None,
) -> GraphRegistry:
    """Compile the task agent and every graph of `settings.graphs_config` on `saver`/`store`."""
    agent = build_graph(services).compile(checkpointer=saver, store=store, name=TASK_AGENT)
    served = [ServedGraph(TASK_AGENT, agent, "Task-management agent: guard, router, tools.")]
    config_path = settings.graphs_config
    if config_path is None:
        return GraphRegistry(served)
    for graph_id, path, description in _entries(config_path):
        loaded = await _load(config_path, graph_id, path)
        served.append(ServedGraph(graph_id, _compile(loaded, graph_id, saver, store), description))
    return GraphRegistry(served)


async def check_graphs(settings: Settings) -> list[str]:
    """Load every graph of `settings.graphs_config` once, so a bad one is a ConfigError now.

    Returns the graph ids that would be served besides the task agent.
    """
    config_path = settings.graphs_config
    if config_path is None:
        return []
    ids = []
    for graph_id, path, _ in _entries(config_path):
        target = await _load(config_path, graph_id, path)
        if not isinstance(target, (Pregel, StateGraph)):
            _compile(target, graph_id, None, None)  # raises the one-line error
        ids.append(graph_id)
    return ids


def _entries(config_path: Path) -> list[tuple[str, str, str]]:
    """(graph id, path, description) of each graph to serve besides the task agent."""
    entries = []
    for graph_id, spec in _graph_specs(config_path).items():
        path, description = (spec, "") if isinstance(spec, str) else _spec_fields(spec, graph_id)
        if _is_task_agent(config_path, path):
            continue
        if graph_id == TASK_AGENT:
            raise ConfigError(
                f"{config_path}: graph id {TASK_AGENT!r} is the task agent's;"
                f" give {path} another id."
            )
        entries.append((graph_id, path, description))
    return entries


def _graph_specs(config_path: Path) -> dict[str, Any]:
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"cannot read {config_path} (--config or TASKAGENT_GRAPHS_CONFIG): {exc.strerror}."
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{config_path} is not JSON ({exc.msg}, line {exc.lineno}).") from None
    graphs = config.get("graphs") if isinstance(config, dict) else None
    if not isinstance(graphs, dict) or not graphs:
        raise ConfigError(f'{config_path} has no "graphs" object naming at least one graph.')
    return graphs


def _spec_fields(spec: Any, graph_id: str) -> tuple[str, str]:
    if isinstance(spec, dict) and isinstance(spec.get("path"), str):
        return spec["path"], str(spec.get("description") or "")
    raise ConfigError(f'graph {graph_id!r}: give "path/to/file.py:attribute" or {{"path": ...}}.')


def _is_task_agent(config_path: Path, path: str) -> bool:
    file, _, _ = path.partition(":")
    return file.endswith(".py") and (config_path.parent / file).resolve() == _OWN_BUILDER


async def _load(config_path: Path, graph_id: str, path: str) -> Any:
    file, sep, attribute = path.rpartition(":")
    if not sep or not file or not attribute:
        raise ConfigError(f'graph {graph_id!r}: {path!r} is not "path/to/file.py:attribute".')
    base = str(config_path.parent.resolve())
    if base not in sys.path:
        # langgraph.json's "dependencies": ["."] — the project's own modules import each other.
        sys.path.insert(0, base)
    try:
        if file.endswith(".py"):
            location = (config_path.parent / file).resolve()
            spec = importlib.util.spec_from_file_location(f"taskagent_graph_{graph_id}", location)
            if spec is None or spec.loader is None:
                raise ImportError(f"no such file {location}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(file)
        target = getattr(module, attribute)
        if not isinstance(target, (Pregel, StateGraph)) and callable(target):
            # A graph factory, as langgraph.json allows: called with an empty config.
            produced = target({}) if inspect.signature(target).parameters else target()
            target = await produced if inspect.isawaitable(produced) else produced
    except Exception as exc:
        raise ConfigError(
            f"graph {graph_id!r} ({path}) did not load: {type(exc).__name__}: {exc}"
        ) from None
    return target


def _compile(
    target: Any, graph_id: str, saver: BaseCheckpointSaver[Any] | None, store: BaseStore | None
) -> Compiled:
    if isinstance(target, StateGraph):
        return target.compile(checkpointer=saver, store=store, name=graph_id)
    if isinstance(target, Pregel):
        # Its own interrupt_before/after and nodes stay; persistence is the server's.
        return target.copy(update={"checkpointer": saver, "store": store, "name": graph_id})  # type: ignore[return-value]
    raise ConfigError(
        f"graph {graph_id!r} is a {type(target).__name__}, not a LangGraph graph"
        " (StateGraph, compiled graph, or a function returning one)."
    )
