"""The platform's own Meltano integration: a runner around the `meltano` CLI (not dagster-meltano).

dagster-meltano pins an old dagster-shell and only builds ops; the platform needs one asset per stream,
subset runs, row counts and reconciliation, so it drives the CLI itself. See docs/ingestion.md.
"""

from platform_assets.integrations.meltano.project import (
    Extractor,
    MeltanoProject,
    MeltanoProjectError,
    load_project,
)
from platform_assets.integrations.meltano.runner import (
    MeltanoRunError,
    RunResult,
    build_env,
    plugin_settings,
    run_pipeline,
    state_id,
)
from platform_assets.integrations.meltano.state import (
    MeltanoStateError,
    clear_state,
    clear_streams,
    get_state,
    list_states,
    set_state,
)

__all__ = [
    "Extractor",
    "MeltanoProject",
    "MeltanoProjectError",
    "MeltanoRunError",
    "MeltanoStateError",
    "RunResult",
    "build_env",
    "clear_state",
    "clear_streams",
    "get_state",
    "list_states",
    "load_project",
    "plugin_settings",
    "run_pipeline",
    "set_state",
    "state_id",
]
