"""`python -m evals`: run the outcome eval and print its table."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from evals.cases import load_cases
from evals.report import as_json, summary, table
from evals.runner import CaseResult, ServerFactory, run_cases
from evals.servers import (
    ModelChoice,
    SubprocessServers,
    Target,
    external_server,
    in_process_server,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m evals",
        description="Run multi-turn task conversations against the server and judge each from"
        " the task database. Without a model flag the server answers with the offline engine.",
    )
    model = parser.add_mutually_exclusive_group()
    model.add_argument(
        "--model-base-url",
        "--base-url",
        metavar="URL",
        help="An OpenAI-compatible server (e.g. llama-server's http://127.0.0.1:8080/v1).",
    )
    model.add_argument(
        "--ollama", metavar="URL", help="An Ollama server, e.g. http://127.0.0.1:11434."
    )
    parser.add_argument("--model", help="The model name to ask that server for.")
    parser.add_argument(
        "--context-tokens",
        type=int,
        metavar="N",
        help="The model's context size in tokens (llama-server's -c), so prompts fit it.",
    )
    parser.add_argument(
        "--server", metavar="URL", help="Use this running server instead of starting one."
    )
    parser.add_argument(
        "--data-dir", type=Path, help="The running server's TASKAGENT_DATA_DIR (with --server)."
    )
    parser.add_argument(
        "--api-key", help="The key to call the running server with (with --server)."
    )
    parser.add_argument(
        "--user",
        default="local",
        help="The user that key belongs to (with --server; 'local' without keys).",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="Run the app in this process instead of a subprocess per case (faster).",
    )
    parser.add_argument(
        "--cases",
        default="*",
        metavar="PATTERN",
        help="Globs (comma-separated) over case ids or categories, e.g. 'delete,create-*'.",
    )
    parser.add_argument("--repeat", type=int, default=1, help="Run every case this many times.")
    parser.add_argument("--turn-timeout", type=float, default=180.0, help="Seconds per turn.")
    parser.add_argument(
        "--total-timeout", type=float, default=3600.0, help="Seconds for the whole run."
    )
    parser.add_argument(
        "--json", type=Path, metavar="OUT", help="Also write every case's record here."
    )
    parser.add_argument("--quiet", action="store_true", help="Print only the table.")
    args = parser.parse_args(argv)
    if args.server and not args.data_dir:
        parser.error("--server needs --data-dir: the judge reads the server's task database")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def server_factory(args: argparse.Namespace, model: ModelChoice) -> ServerFactory:
    """Return how each case gets its server."""
    if args.server:

        @asynccontextmanager
        async def running(_: Path) -> AsyncIterator[Target]:
            async with external_server(
                args.server, args.data_dir, args.api_key, args.user, args.turn_timeout
            ) as target:
                yield target

        return running
    if args.in_process:
        return partial(in_process_server, model=model, turn_timeout_s=args.turn_timeout)
    return SubprocessServers(model, args.turn_timeout)


def main(argv: list[str] | None = None) -> int:
    """Run the eval; exit 0 when it ran (the table says how well), 2 on bad flags."""
    args = parse_args(argv)
    model = ModelChoice(args.model_base_url, args.ollama, args.model, args.context_tokens)
    cases = load_cases(args.cases)
    if not cases:
        print(f"no case matches {args.cases!r}", file=sys.stderr)
        return 2

    def progress(result: CaseResult) -> None:
        if not args.quiet:
            mark = "pass" if result.passed else "FAIL"
            print(f"{mark} {result.case_id}", file=sys.stderr, flush=True)

    results = asyncio.run(
        run_cases(
            cases,
            server_factory(args, model),
            model,
            repeat=args.repeat,
            total_timeout_s=args.total_timeout,
            progress=progress,
        )
    )
    where = args.server or ("in process" if args.in_process else "a fresh server per case")
    print(table(results, f"{model.label} ({where}, {len(cases)} cases × {args.repeat})"))
    if args.json:
        args.json.write_text(json.dumps(as_json(results), indent=2, default=str))
    return 0 if summary(results)["cases"] else 1
