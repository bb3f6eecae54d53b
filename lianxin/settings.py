"""Settings from the environment. Everything has an embedded default.

LIANXIN_HOME          data directory (default ./var)
LIANXIN_STORE         sqlite (default) | postgres
LIANXIN_PG_*          HOST, PORT, USER, PASSWORD, DBNAME, SCHEMA for postgres
LIANXIN_TZ            the center's time zone, for "today" and calendars
LIANXIN_SL_THRESHOLD_S  default service-level answer threshold in seconds (20)
LIANXIN_PSEUDONYM_KEY key of the caller-number hash (generated into HOME if unset)
LIANXIN_WORK_ORDER_POLICY  work-order policy TOML (default lianxin/config/work_order_policy.toml)
LIANXIN_CALENDAR      working-day calendar TOML (default lianxin/config/calendar_cn.toml)
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    store: str = "sqlite"
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_user: str = "postgres"
    pg_password: str = ""
    pg_dbname: str = "test"
    pg_schema: str = "public"
    timezone: str = "Asia/Shanghai"
    pseudonym_key: str = ""
    work_order_policy: str = ""
    calendar: str = ""
    service_level_threshold_s: int = 20
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        e = dict(os.environ if env is None else env)
        home = Path(e.get("LIANXIN_HOME") or "var").resolve()
        values: dict[str, object] = dict(
            home=home,
            store=e.get("LIANXIN_STORE", "sqlite").lower(),
            pg_host=e.get("LIANXIN_PG_HOST", "127.0.0.1"),
            pg_port=int(e.get("LIANXIN_PG_PORT", "5432")),
            pg_user=e.get("LIANXIN_PG_USER", "postgres"),
            pg_password=e.get("LIANXIN_PG_PASSWORD", ""),
            pg_dbname=e.get("LIANXIN_PG_DBNAME", "test"),
            pg_schema=e.get("LIANXIN_PG_SCHEMA", "public"),
            timezone=e.get("LIANXIN_TZ", "Asia/Shanghai"),
            pseudonym_key=e.get("LIANXIN_PSEUDONYM_KEY", ""),
            work_order_policy=e.get("LIANXIN_WORK_ORDER_POLICY", ""),
            calendar=e.get("LIANXIN_CALENDAR", ""),
            service_level_threshold_s=int(e.get("LIANXIN_SL_THRESHOLD_S", "20")),
        )
        values.update(overrides)
        if values["store"] not in ("sqlite", "postgres"):
            raise ValueError(f"LIANXIN_STORE must be sqlite or postgres, not {values['store']!r}")
        return cls(**values)  # type: ignore[arg-type]

    # -- derived -----------------------------------------------------------
    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home

    @property
    def event_store_path(self) -> Path:
        return self.home / "events.sqlite"

    @property
    def read_models_path(self) -> Path:
        return self.home / "read_models.sqlite"

    @property
    def warehouse_dir(self) -> Path:
        return self.home / "warehouse"

    def caller_hash_key(self) -> str:
        """The key of the caller-number pseudonym; stable per installation."""
        if self.pseudonym_key:
            return self.pseudonym_key
        path = self.ensure_home() / "pseudonym.key"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_text(secrets.token_hex(32))
            os.replace(tmp, path)
        return path.read_text().strip()

    def eventsourcing_env(self) -> dict[str, str]:
        env: dict[str, str] = {
            "AGGREGATE_CACHE_MAXSIZE": "10000",
            "AGGREGATE_CACHE_FASTFORWARD": "y",
            # The library's JSON, byte for byte, encoded faster (commands/transcoder.py).
            "TRANSCODER_TOPIC": "commands.transcoder:FastJSONTranscoder",
        }
        if self.store == "sqlite":
            self.ensure_home()
            env.update(
                PERSISTENCE_MODULE="eventsourcing.sqlite",
                SQLITE_DBNAME=str(self.event_store_path),
                SQLITE_LOCK_TIMEOUT="30",
                # Hash-chained notification log (audit trail, issue 6), on
                # the faster insert path of commands/recorder_speedups.py.
                APPLICATION_RECORDER_TOPIC=(
                    "commands.recorder_speedups:FastChainedSQLiteApplicationRecorder"),
            )
        else:
            env.update(
                PERSISTENCE_MODULE="eventsourcing.postgres",
                POSTGRES_HOST=self.pg_host,
                POSTGRES_PORT=str(self.pg_port),
                POSTGRES_USER=self.pg_user,
                POSTGRES_PASSWORD=self.pg_password,
                POSTGRES_DBNAME=self.pg_dbname,
                POSTGRES_SCHEMA=self.pg_schema,
                POSTGRES_ENABLE_DB_FUNCTIONS="y",
                POSTGRES_POOL_SIZE="10",
                POSTGRES_LOCK_TIMEOUT="30",
                # Hash-chained notification log (audit trail, issue 6), on
                # the faster insert path of commands/recorder_speedups.py.
                APPLICATION_RECORDER_TOPIC=(
                    "commands.recorder_speedups:FastChainedPostgresApplicationRecorder"),
            )
        env.update(self.extra_env)
        return env
