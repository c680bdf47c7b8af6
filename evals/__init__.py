"""The outcome eval: task conversations judged from the database (`python -m evals`)."""

from evals.cases import Case, load_cases
from evals.judge import diff, false_claims, judge
from evals.runner import CaseResult, run_cases

__all__ = ["Case", "CaseResult", "diff", "false_claims", "judge", "load_cases", "run_cases"]
