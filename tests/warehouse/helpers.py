from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import duckdb

TABLES = ("events", "fact_call", "fact_leg", "fact_agent_state", "fact_work_order", "dim_agent")
REPO = Path(__file__).resolve().parents[2]
FACT_TABLES = ("events", "fact_call", "fact_leg", "fact_agent_state", "fact_work_order")


def cli_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(LIANXIN_HOME=str(home), LIANXIN_STORE="sqlite", LIANXIN_PSEUDONYM_KEY="test-key",
               PYTHONPATH=str(REPO))
    return env


def lianxin_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from lianxin.cli import main; main()", *args]


def table_differences(db_a: Path, db_b: Path) -> dict[str, Any]:
    """Rows in one loader file and not the other (as multisets), per table."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{db_a}' AS a (READ_ONLY)").fetchall()
    con.execute(f"ATTACH '{db_b}' AS b (READ_ONLY)").fetchall()
    out = {}
    for t in TABLES:
        n_a = con.execute(f"SELECT count(*) FROM a.{t}").fetchall()[0][0]
        n_b = con.execute(f"SELECT count(*) FROM b.{t}").fetchall()[0][0]
        only_a = con.execute(f"SELECT count(*) FROM (SELECT * FROM a.{t} EXCEPT ALL SELECT * FROM b.{t})").fetchall()[0][0]
        only_b = con.execute(f"SELECT count(*) FROM (SELECT * FROM b.{t} EXCEPT ALL SELECT * FROM a.{t})").fetchall()[0][0]
        if n_a != n_b or only_a or only_b:
            out[t] = {"rows": (n_a, n_b), "only_a": only_a, "only_b": only_b}
    con.close()
    return out


def row_counts(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in TABLES}
    finally:
        con.close()


def tree_equals_catalog(wd: Path) -> None:
    """A glob over each table in the `parquet/` tree (what an external engine
    sees) holds exactly the rows of the catalog's view."""
    from warehouse.publish import CATALOG, FACTS, TREE

    con = duckdb.connect(str(wd / CATALOG), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'").fetchall()
        for t in FACT_TABLES:
            n = con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
            pattern = wd / TREE / t / "month=*" / "*.parquet"
            if n == 0:
                assert not list((wd / TREE).glob(f"{t}/month=*/*.parquet")), t
                continue
            # What an external engine sees: every file in the tree, as it is.
            glob = f"read_parquet('{pattern}', hive_partitioning = false)"
            assert con.execute(f"SELECT count(*) FROM {glob}").fetchall()[0][0] == n, t
            for a, b in ((glob, t), (t, glob)):
                diff = con.execute(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL "
                                   f"SELECT * FROM {b})").fetchall()[0][0]
                assert diff == 0, t
            # The partition folder (month=YYYY-MM) is the UTC month of each row.
            col = FACTS[t][0] if t in FACTS else "occurred_at"
            wrong = con.execute(
                f"SELECT count(*) FROM read_parquet('{pattern}', hive_partitioning = true) "
                f"WHERE month::VARCHAR <> coalesce(strftime({col}, '%Y-%m'), 'none')").fetchall()
            assert wrong == [(0,)], t
    finally:
        con.close()
