"""How a run's row is stored: updates of a live run stay on its page (HOT) while it plays."""

from __future__ import annotations

from uuid import uuid4

from service.core.ids import new_id
from service.db import runs
from service.db.postgres import Pool, transaction
from tests.support.factories import make_company, run_config

_ROW_BYTES = "SELECT pg_column_size(r.*) FROM eval_runs AS r WHERE id = $1"
# An update that changes no indexed column, as each turn's does (service.db.rounds).
_TOUCH = "UPDATE eval_runs SET active_ms = active_ms + 1 WHERE id = $1"
_HOT_SO_FAR = "SELECT pg_stat_get_xact_tuples_hot_updated('eval_runs'::regclass)"


async def test_each_of_four_two_kilobyte_runs_is_updated_in_place(pool: Pool) -> None:
    company = await make_company(pool)
    config = run_config()
    noise = " ".join(uuid4().hex for _ in range(20))  # incompressible: the row stays just under 2 kB
    config["prompts"] = {"agent": noise, "persona": None}
    made = []
    for _ in range(4):
        new = runs.NewRun(id=new_id(), company_id=company.id, config=config)
        async with transaction(pool) as conn:
            made.append(await runs.insert_run(conn, new))
            assert 1_700 < await conn.fetchval(_ROW_BYTES, new.id) < 2_032  # inline, not TOASTed
    async with transaction(pool) as conn:  # one transaction: no dead version can be pruned meanwhile
        for run in made:
            await conn.execute(_TOUCH, run.id)
        # With a fifth of each page free, three such rows share a page and two of their updates
        # find no room there: they move the row and add an entry to every index of the table.
        assert await conn.fetchval(_HOT_SO_FAR) == 4
