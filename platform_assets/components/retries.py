"""Dagster retry policies for assets whose failures can be transient, declared in defs.yaml.

    attributes:
      retry:                 # optional; these are the defaults. `retry: null` turns retries off.
        max_retries: 3
        delay_seconds: 30    # before the first retry; doubled each retry (exponential), +/- jitter
        backoff: exponential # or linear
        jitter: plus_minus   # or full, or none

A retry policy re-runs a step on any exception, so each component says in one place (its
`is_transient`) which exceptions are transient, and runs its work inside `only_transient_retried`: everything
else becomes `dg.Failure(allow_retries=False)`, which Dagster never retries (bad data, mapping or config
errors, failed blocking checks: a re-run would fail the same way).
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import dagster as dg
from pydantic import model_validator


class RetryDecl(dg.Model, dg.Resolvable):
    """A component's `retry:` block."""

    max_retries: int = 3
    delay_seconds: float = 30.0
    backoff: Literal["exponential", "linear"] = "exponential"
    jitter: Literal["plus_minus", "full", "none"] = "plus_minus"

    @model_validator(mode="after")
    def _not_negative(self) -> "RetryDecl":
        if self.max_retries < 0 or self.delay_seconds < 0:
            raise ValueError("retry: max_retries and delay_seconds cannot be negative")
        return self

    def policy(self) -> dg.RetryPolicy | None:
        if self.max_retries == 0:
            return None
        return dg.RetryPolicy(
            max_retries=self.max_retries,
            delay=self.delay_seconds or None,
            backoff=dg.Backoff.EXPONENTIAL if self.backoff == "exponential" else dg.Backoff.LINEAR,
            jitter={"plus_minus": dg.Jitter.PLUS_MINUS, "full": dg.Jitter.FULL}.get(self.jitter),
        )


def retry_policy(decl: RetryDecl | None) -> dg.RetryPolicy | None:
    return decl.policy() if decl is not None else None


@contextmanager
def only_transient_retried(is_transient: Callable[[BaseException], bool]) -> Iterator[None]:
    """Let transient exceptions through (the retry policy re-runs the step); turn any other exception
    into a `dg.Failure` that is not retried. A `dg.Failure` raised inside keeps its own `allow_retries`."""
    try:
        yield
    except dg.Failure:
        raise
    except Exception as error:
        if is_transient(error):
            raise
        raise dg.Failure(
            description=f"{type(error).__name__}: {error} (not retried: this failure is not transient)",
            allow_retries=False,
        ) from error
