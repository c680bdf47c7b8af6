from pathlib import Path

from graph.builder import graph

SNAPSHOT = Path(__file__).parent / "snapshots" / "graph.mmd"


def test_graph_shape_matches_the_snapshot():
    drawn = graph.get_graph().draw_mermaid()
    assert drawn == SNAPSHOT.read_text(), "graph shape changed: review and update the snapshot"


def test_langgraph_json_points_at_the_checkpointer_less_graph():
    import importlib
    import json

    config = json.loads((Path(__file__).parents[2] / "langgraph.json").read_text())
    module_path, attribute = config["graphs"]["agent"].removeprefix("./").split(":")
    module = importlib.import_module(module_path.removesuffix(".py").replace("/", "."))
    exported = getattr(module, attribute)
    assert exported is graph
    assert exported.checkpointer is None
