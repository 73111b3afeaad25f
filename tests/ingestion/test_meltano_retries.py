"""Which failed `meltano run`s the stream assets' retry policy may re-run: network-like errors only."""

import dagster as dg
import pytest

from platform_assets.components.meltano import MeltanoProjectComponent, is_transient
from platform_assets.components.retries import only_transient_retried
from platform_assets.integrations.meltano import MeltanoRunError, RunResult


def run_error(*lines: str, failed_streams: dict[str, str] | None = None) -> MeltanoRunError:
    result = RunResult(
        extractor="tap-landing",
        loader="target-duckdb",
        state_id="local:tap-landing-to-target-duckdb",
        streams=("signups",),
        returncode=1,
        error_lines=list(lines),
        failed_streams=failed_streams or {},
    )
    return MeltanoRunError("meltano run failed (exit 1)", result)


@pytest.mark.parametrize(
    "line",
    [
        "requests.exceptions.ConnectionError: ('Connection aborted.', RemoteDisconnected(...))",
        "psycopg2.OperationalError: could not connect to server: Connection refused",
        "HTTPError: 503 Server Error: Service Unavailable for url: https://example.my.salesforce.com",
        "ReadTimeout: HTTPSConnectionPool(host='x', port=443): Read timed out.",
        "429 Client Error: Too Many Requests",
    ],
)
def test_network_like_failures_are_transient(line):
    assert is_transient(run_error(line))
    assert is_transient(run_error(failed_streams={"signups": line}))


@pytest.mark.parametrize(
    "line",
    [
        "ConversionError: could not convert string 'abc' to INT64",
        "jsonschema.exceptions.ValidationError: 'x' is not of type 'integer'",
        "KeyError: 'signup_id'",
    ],
)
def test_data_and_config_failures_are_not_transient(line):
    assert not is_transient(run_error(line))
    assert not is_transient(ValueError(line))


def test_a_deterministic_error_becomes_a_failure_that_is_not_retried():
    with pytest.raises(dg.Failure) as failure, only_transient_retried(is_transient):
        raise run_error("ConversionError: could not convert string 'abc' to INT64")
    assert failure.value.allow_retries is False
    with pytest.raises(MeltanoRunError), only_transient_retried(is_transient):
        raise run_error("Connection reset by peer")


def test_the_component_declares_a_retry_policy_with_backoff_and_jitter():
    component = MeltanoProjectComponent.resolve_from_yaml("retry:\n  max_retries: 2\n  delay_seconds: 5\n")
    policy = component.retry.policy()
    assert (policy.max_retries, policy.delay) == (2, 5.0)
    assert (policy.backoff, policy.jitter) == (dg.Backoff.EXPONENTIAL, dg.Jitter.PLUS_MINUS)
    assert MeltanoProjectComponent.resolve_from_yaml("retry: null\n").retry is None
