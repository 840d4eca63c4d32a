"""What every life-cycle machine shares: a failure printed the moment it happens (with what
the database's sessions were doing), and the count of steps the soak reports."""

from __future__ import annotations

import functools
import os
import traceback
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from . import probes


def print_failures(machine: type[RuleBasedStateMachine]) -> None:
    """Print a rule's or an invariant's failure the moment it happens. A failure that depends on
    timing may not come back when Hypothesis replays the sequence, and Hypothesis then reports
    only that (Flaky..., "Inconsistent data generation"): the first error must be in the log."""
    for value in vars(machine).values():
        for marker in ("hypothesis_stateful_rule", "hypothesis_stateful_invariant"):
            data = getattr(value, marker, None)
            if data is not None:
                rule = marker == "hypothesis_stateful_rule"
                object.__setattr__(data, "function", _printing(data.function, rule))


STEPS_RUN = [0]  # rules run in this process: the soak reports how many steps it made


def _printing(function: Any, rule: bool) -> Any:
    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        if args and getattr(args[0], "halted", None):
            return None  # the sequence ended (half_done_step): nothing more to check
        STEPS_RUN[0] += rule
        try:
            return function(*args, **kwargs)
        except Exception:
            print(f"  !! {function.__name__} failed:\n{traceback.format_exc()}")
            if args and hasattr(args[0], "url"):
                print(probes.server_activity(args[0].url))
            raise

    return run


# Shrinking a failure replays it many times (up to five minutes): LIFECYCLE_SHRINK=0 reports
# the sequence as found.
PHASES = [p for p in Phase if p != Phase.shrink or os.environ.get("LIFECYCLE_SHRINK", "1") != "0"]


def run_machine(machine: type[RuleBasedStateMachine], examples: int, steps: int) -> None:
    """Run `examples` random sequences of at most `steps` steps, then say how many ran."""
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            print_blob=True,
            phases=PHASES,
            suppress_health_check=list(HealthCheck),
        ),
    )
    print(f"{STEPS_RUN[0]} random steps run so far in this session, invariants checked after each")
