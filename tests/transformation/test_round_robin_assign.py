"""The round_robin_assign macro (dbt_project/macros/round_robin_assign.sql) on a help desk, a shape the
sample company does not have: tickets with integer ids dealt to the agents of their queue, run again and
again with real dbt on DuckDB. An assignment once made never changes; new items go on with the rotation;
an agent who joins a queue joins the rotation without moving anyone's tickets; an agent who leaves it
gets nothing more; a queue with nobody keeps its tickets waiting until someone joins."""

import shutil
from pathlib import Path

import duckdb
import pytest
from dbt.cli.main import dbtRunner

from platform_assets import environment

PROJECT = Path(__file__).parent / "round_robin_project"
MACRO = environment.DBT_PROJECT_DIR / "macros" / "round_robin_assign.sql"


class Helpdesk:
    """The help desk's source tables in a temp DuckDB, and a copy of the dbt project to run on them."""

    def __init__(self, root: Path) -> None:
        self.project = root / "helpdesk"
        shutil.copytree(PROJECT, self.project)
        (self.project / "macros").mkdir()
        shutil.copy(MACRO, self.project / "macros" / MACRO.name)
        self.database = root / "desk.duckdb"
        (self.project / "profiles.yml").write_text(
            "helpdesk:\n  target: local\n  outputs:\n    local:\n      type: duckdb\n"
            f"      path: '{self.database}'\n      schema: main\n      threads: 1\n"
        )
        self.sql(
            "create schema helpdesk;"
            "create table helpdesk.tickets (ticket_id integer, queue_id integer, status varchar,"
            " opened_at timestamp);"
            "create table helpdesk.agents (agent_id integer, queue_id integer, active boolean,"
            " joined_at date)"
        )

    def sql(self, statement: str) -> list[tuple]:
        with duckdb.connect(str(self.database)) as connection:
            result = connection.execute(statement)
            return result.fetchall() if result.description else []

    def agents(self, *rows: tuple[int, int, bool, str]) -> None:
        self.sql("insert into helpdesk.agents values " + ", ".join(str(row) for row in rows))

    def tickets(self, *rows: tuple[int, int, str, str]) -> None:
        self.sql("insert into helpdesk.tickets values " + ", ".join(str(row) for row in rows))

    def run(self) -> None:
        args = ["run", "--project-dir", str(self.project), "--profiles-dir", str(self.project), "--quiet"]
        result = dbtRunner().invoke(args)
        assert result.success, result.exception

    def assignments(self, model: str = "ticket_assignments") -> dict[int, tuple]:
        """ticket -> (agent, seq), or (queue, agent, seq) where the model is partitioned."""
        rows = self.sql(f"select * from main.{model} order by 1")
        return {row[0]: tuple(row[1:]) for row in rows}


@pytest.fixture
def helpdesk(tmp_path: Path) -> Helpdesk:
    return Helpdesk(tmp_path)


@pytest.mark.integration
def test_assignments_are_stable_and_the_rotation_goes_on_as_the_pool_changes(helpdesk: Helpdesk):
    helpdesk.agents(
        (101, 10, True, "2026-01-01"), (102, 10, True, "2026-01-02"), (103, 10, True, "2026-01-03")
    )
    helpdesk.agents((201, 20, True, "2026-01-01"))
    helpdesk.tickets(
        (1, 10, "open", "2026-03-01 09:00:00"),
        (2, 10, "open", "2026-03-01 08:00:00"),  # opened first: dealt first
        (3, 10, "open", "2026-03-01 10:00:00"),
        (4, 10, "open", "2026-03-01 11:00:00"),
        (5, 20, "open", "2026-03-01 09:00:00"),
        (6, 30, "open", "2026-03-01 09:00:00"),  # queue 30 has no agent yet: waits
        (7, 10, "closed", "2026-03-01 07:00:00"),  # not an item of the model
    )
    helpdesk.run()
    first = {2: (10, 101, 1), 1: (10, 102, 2), 3: (10, 103, 3), 4: (10, 101, 4), 5: (20, 201, 1)}
    assert helpdesk.assignments() == first
    # One pool (no partition): every ticket, every agent, by id.
    assert helpdesk.assignments("ticket_assignments_one_pool") == {
        1: (101, 1),
        2: (102, 2),
        3: (103, 3),
        4: (201, 4),
        5: (101, 5),
        6: (102, 6),
        7: (103, 7),
    }

    helpdesk.run()  # nothing new: nothing changes
    assert helpdesk.assignments() == first

    # Agent 104 joins queue 10 (at the end of its rotation), 301 opens queue 30; ticket 1 gets closed.
    helpdesk.agents((104, 10, True, "2026-02-01"), (301, 30, True, "2026-02-01"))
    helpdesk.sql("update helpdesk.tickets set status = 'closed' where ticket_id = 1")
    helpdesk.tickets(
        (8, 10, "open", "2026-03-02 09:00:00"),
        (9, 10, "open", "2026-03-02 10:00:00"),
        (10, 10, "open", "2026-03-02 11:00:00"),
    )
    helpdesk.run()
    second = {**first, 8: (10, 102, 5), 9: (10, 103, 6), 10: (10, 104, 7), 6: (30, 301, 1)}
    assert helpdesk.assignments() == second  # the last one went to 101: 102 is next, then the newcomer
    assert helpdesk.assignments("ticket_assignments_one_pool") == {
        1: (101, 1),
        2: (102, 2),
        3: (103, 3),
        4: (201, 4),
        5: (101, 5),
        6: (102, 6),
        7: (103, 7),
        8: (104, 8),
        9: (201, 9),
        10: (301, 10),
    }

    # 104, who got the last ticket, leaves: the rotation goes on at (7 assignments so far) mod 3 agents.
    helpdesk.sql("update helpdesk.agents set active = false where agent_id = 104")
    helpdesk.tickets((11, 10, "open", "2026-03-03 09:00:00"), (12, 10, "open", "2026-03-03 10:00:00"))
    helpdesk.run()
    assert helpdesk.assignments() == {**second, 11: (10, 102, 8), 12: (10, 103, 9)}
