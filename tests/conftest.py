import os

os.environ["LANGGRAPH_STRICT_MSGPACK"] = "true"

import shutil  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402
from collections.abc import AsyncIterator, Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from graph.services import Services  # noqa: E402
from graph.settings import Settings  # noqa: E402
from models.providers import Tier  # noqa: E402
from models.resilience import CircuitBreaker  # noqa: E402
from scripts.local_pg import LocalPostgres  # noqa: E402
from server.runs.engine import RunManager  # noqa: E402
from tools.store import TaskStore  # noqa: E402


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "retry_initial_s": 0.01,
        "retry_max_s": 0.05,
        "model_timeout_s": 5.0,
        "breaker_threshold": 3,
        "breaker_cooldown_s": 30.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def make_tier(name: str, model: Any, settings: Settings) -> Tier:
    return Tier(
        name=name,
        label=f"{name}:scripted",
        model=model,
        breaker=CircuitBreaker(
            threshold=settings.breaker_threshold, cooldown_s=settings.breaker_cooldown_s
        ),
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[TaskStore]:
    task_store = await TaskStore.open(tmp_path / "tasks.sqlite")
    yield task_store
    await task_store.close()


EngineFactory = Callable[..., Any]


@pytest.fixture
async def open_engine(tmp_path: Path) -> AsyncIterator[EngineFactory]:
    """Open the run engine on a temp data dir whose tiers are the given models."""
    opened: list[RunManager] = []

    async def factory(*models: tuple[str, Any], **overrides: Any) -> RunManager:
        settings = make_settings(tmp_path, **overrides)
        tasks = await TaskStore.open(settings.tasks_db)
        if models:
            tiers = [make_tier(name, model, settings) for name, model in models]
        else:
            from models.providers import build_tiers

            tiers = build_tiers(settings)
        engine = await RunManager.open(
            settings, services=Services(settings=settings, tiers=tiers, tasks=tasks)
        )
        opened.append(engine)
        return engine

    yield factory
    for engine in opened:
        await engine.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """One PostgreSQL server for the session (Debian's package, installed if missing)."""
    # Not under pytest's tmp dirs: the server runs as the postgres user, who must reach it.
    directory = Path(tempfile.mkdtemp(prefix="taskagent-pg-"))
    try:
        server = LocalPostgres(directory).start()
    except RuntimeError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.skip(f"PostgreSQL cannot run here: {exc}")
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def pg_url(postgres: LocalPostgres) -> str:
    """The DATABASE_URL of a new, empty database."""
    return postgres.create_database(f"t_{uuid.uuid4().hex[:16]}")
