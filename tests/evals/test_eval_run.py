"""The whole outcome eval on the offline engine, and the judge against a real server."""

from pathlib import Path

import pytest

from evals.cases import load_cases
from evals.report import summary, table
from evals.runner import run_cases
from evals.servers import ModelChoice, in_process_server
from tests.fakes.obedient import ObedientOpenAIServer

pytestmark = pytest.mark.integration

# What the offline engine reaches today (2026-12-07, after issue 11's engine work): all 76
# cases and no false claim. A new case the engine misses lowers PASSED_FLOOR only on purpose.
# Silent wrong writes and false claims are held at zero.
PASSED_FLOOR = 76
FALSE_CLAIMS_TODAY = 0


async def test_the_offline_engine_passes_the_eval_without_silent_wrong_writes(tmp_path: Path):
    offline = ModelChoice()
    cases = load_cases()

    def server(data_dir: Path):
        return in_process_server(data_dir, offline, turn_timeout_s=30)

    results = await run_cases(cases, server, offline, total_timeout_s=240, scratch=tmp_path)
    figures = summary(results)
    report = table(results, "offline engine")
    assert figures["cases"] == len(cases) and figures["aborted"] == 0, report
    assert figures["silent_wrong_writes"] == 0, report
    assert figures["false_claims"] <= FALSE_CLAIMS_TODAY, report
    assert figures["passed"] >= PASSED_FLOOR, report
    assert figures["fallbacks"] == 0, report  # the offline engine is the last tier
    assert figures["prompt_tokens_mean"] > 0, report


async def test_a_model_that_writes_another_field_is_caught_from_the_database(tmp_path: Path):
    (case,) = load_cases("update-priority-gym")
    said = str(case.turns[0].say)
    with ObedientOpenAIServer() as model:
        # Right task, right priority, and a title nobody asked for.
        model.teach(
            said,
            [("update_task", {"task_id": "TASK-0002", "priority": "high", "title": "Gym"})],
        )
        choice = ModelChoice(openai_base_url=model.base_url, model="obedient")

        def server(data_dir: Path):
            return in_process_server(data_dir, choice, turn_timeout_s=30)

        (result,) = await run_cases([case], server, choice, total_timeout_s=60, scratch=tmp_path)
    assert model.obeyed == {said: 1}
    assert not result.passed and result.silent_wrong_writes == 1, result.problems
    assert any("also changed ['title']" in p for p in result.problems)
    assert result.turns[0].model_used == "openai:obedient" and result.fallbacks == 0
