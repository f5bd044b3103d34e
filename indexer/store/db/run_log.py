"""The catalog's history of index runs: when each started and ended, with which model, roots, counts and timings."""

from __future__ import annotations

from dataclasses import fields

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from indexer.store.db.models import IndexRun, utc_now
from indexer.store.db.records import RunRecord
from indexer.store.db.retry import retrying_methods


@retrying_methods
class RunLog:
    """`Catalog`'s index-run methods (a base class of it); each is one transaction, retried like the rest."""

    url: str
    retry_s: float
    _sessions: sessionmaker[Session]

    def start_run(self, model: str, preprocessing: dict, roots: list[str]) -> int:
        with self._sessions() as session, session.begin():
            run = IndexRun(
                started_at=utc_now(),
                status="running",
                model=model,
                preprocessing=preprocessing,
                roots=roots,
                counts={},
                timings={},
            )
            session.add(run)
            session.flush()
            return run.id

    def finish_run(self, run_id: int, status: str, counts: dict, timings: dict) -> None:
        with self._sessions() as session, session.begin():
            session.execute(
                update(IndexRun)
                .where(IndexRun.id == run_id)
                .values(status=status, counts=counts, timings=timings, finished_at=utc_now())
            )

    def runs(self, limit: int = 20) -> list[RunRecord]:
        with self._sessions() as session:
            rows = session.scalars(select(IndexRun).order_by(IndexRun.id.desc()).limit(limit))
            return [RunRecord(**{field.name: getattr(row, field.name) for field in fields(RunRecord)}) for row in rows]

    def last_run(self) -> RunRecord | None:
        runs = self.runs(limit=1)
        return runs[0] if runs else None
