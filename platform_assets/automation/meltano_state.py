"""The `meltano_state` job: list, get, set and clear a source's Meltano state from the UI launchpad.

For backfills: clear a source's state (its next run re-extracts everything), clear only some streams'
bookmarks, or set a bookmark to re-extract from a point in time. Launchpad config, e.g.:

    ops:
      meltano_state_action:
        config: {source: salesforce, action: clear, streams: [account]}

The work is done by the ingestion integration's helpers (platform_assets/integrations/meltano/state.py),
which run `meltano state` with the same environment as the pipelines.
"""

import fnmatch
import json
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import yaml
from pydantic import Field

from platform_assets import environment
from platform_assets.integrations.meltano import state as meltano_state

SOURCES_FILE = Path(__file__).resolve().parent.parent / "defs" / "ingestion" / "sources.yaml"


class MeltanoStateJobError(ValueError):
    """The launchpad config cannot be carried out; the message says what to pass instead."""


class MeltanoStateConfig(dg.Config):
    source: str = Field(
        default="", description="Source in defs/ingestion/sources.yaml: landing, app_db, salesforce."
    )
    action: Literal["list", "get", "set", "clear"] = Field(description="list | get | set | clear")
    state: str = Field(
        default="", description='For set: the state JSON, e.g. {"singer_state": {"bookmarks": {...}}}.'
    )
    streams: list[str] = Field(
        default_factory=list,
        description="For clear: only these streams' bookmarks (default: the whole state).",
    )
    state_id: str = Field(
        default="", description="An exact Meltano state id (see action=list); wins over source."
    )


def extractor_of(source: str, sources_file: Path = SOURCES_FILE) -> str:
    declared = (yaml.safe_load(sources_file.read_text()) or {}).get("sources", {})
    if source not in declared:
        raise MeltanoStateJobError(
            f"source {source!r} is not in {sources_file}; use one of {', '.join(sorted(declared)) or 'none'}."
        )
    return declared[source]["extractor"]


def state_ids_for(config: MeltanoStateConfig, sources_file: Path = SOURCES_FILE) -> list[str]:
    """The state ids the config designates: the exact id, or every pipeline of the source's extractor."""
    if config.state_id:
        return [config.state_id]
    every = meltano_state.list_states()
    if not config.source:
        return every
    # Filtered here: `meltano state list` takes a pattern only as --pattern.
    return fnmatch.filter(every, f"*:{extractor_of(config.source, sources_file)}-to-*")


def parse_state(text: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise MeltanoStateJobError(
            f'config `state` is not JSON ({error}); e.g. {{"singer_state": {{}}}}.'
        ) from None
    if not isinstance(parsed, dict):
        raise MeltanoStateJobError('config `state` must be a JSON object, e.g. {"singer_state": {...}}.')
    return parsed


def carry_out(config: MeltanoStateConfig, log: Any, sources_file: Path = SOURCES_FILE) -> dict[str, Any]:
    """Do the action; returns what it did (logged, and checked by tests)."""
    new_state = parse_state(config.state) if config.action == "set" else None  # bad input fails first
    if config.source:
        extractor_of(config.source, sources_file)
    ids = state_ids_for(config, sources_file)
    if config.action == "list":
        log.info(f"{len(ids)} Meltano state id(s): {ids}")
        return {"state_ids": ids}
    if config.action == "set" and not ids and config.source:
        raise MeltanoStateJobError(
            f"source {config.source!r} has no stored state yet, so its state id is unknown; run its streams "
            "once, or pass state_id (e.g. local:tap-landing-to-target-duckdb-bulk)."
        )
    if len(ids) != 1:
        raise MeltanoStateJobError(
            f"action={config.action} acts on exactly one state id; source={config.source!r} matched "
            f"{ids or 'none'}. Pass state_id (run action=list to see them)."
        )
    state_id = ids[0]
    if config.action == "get":
        document = meltano_state.get_state(state_id)
        log.info(f"state of {state_id}: {json.dumps(document)}")
        return {"state_id": state_id, "state": document}
    if config.action == "set":
        meltano_state.set_state(state_id, new_state or {})
        log.info(f"state of {state_id} replaced")
        return {"state_id": state_id}
    if config.streams:
        removed = meltano_state.clear_streams(state_id, config.streams)
        log.info(f"{state_id}: bookmarks cleared for {removed} (others kept); their next run re-extracts all")
        return {"state_id": state_id, "cleared_streams": removed}
    meltano_state.clear_state(state_id)
    log.info(f"state of {state_id} cleared: the next run of its streams extracts everything")
    return {"state_id": state_id, "cleared": True}


@dg.op(name="meltano_state_action", description="list | get | set | clear the Meltano state of a source.")
def meltano_state_op(context: dg.OpExecutionContext, config: MeltanoStateConfig) -> None:
    environment.current().validate()
    carry_out(config, context.log)


@dg.job(
    name="meltano_state",
    description="Backfill helper: list, get, set or clear a source's Meltano state (launchpad config). "
    "For a full re-extract of some streams, materialize them with run config full_refresh: true instead.",
    tags={"platform/path": "operations"},
)
def meltano_state_job() -> None:
    meltano_state_op()
