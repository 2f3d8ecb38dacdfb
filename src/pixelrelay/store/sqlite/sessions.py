"""Browser sessions on SQLite: context and consent by session id, token and identity links."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from pixelrelay.pipeline.enrich import EnrichedFrom, Lookup, SessionContext, merge_context
from pixelrelay.store.queries import queries
from pixelrelay.store.session_codec import (
    click_ids_from,
    click_ids_to_text,
    consent_from_text,
    consent_to_text,
)
from pixelrelay.store.sqlite.writer import UsesConnections

Q = queries("sqlite", "sessions")
PRUNE_EVERY = 1000  # browser hits between two prunes of expired sessions and links
Found = tuple[SessionContext, EnrichedFrom]


class SQLiteSessions(UsesConnections):
    """The Sessions part of SQLiteStore."""

    _session_hits: int = 0

    async def record_session(self, hit: SessionContext, retention_s: float) -> SessionContext:
        # The first hit after a start, then every PRUNE_EVERY-th: a range delete on indexes.
        prune = self._session_hits % PRUNE_EVERY == 0
        self._session_hits += 1
        cutoff = {"cutoff": hit.last_seen - retention_s}

        def run(conn: sqlite3.Connection) -> SessionContext:
            if prune:
                for name in ("prune_sessions", "prune_tokens", "prune_identities"):
                    conn.execute(Q[name], cutoff)
            merged = merge_context(_one(conn, Q["get"], (hit.session_id,)), hit)
            conn.execute(Q["upsert"], _row(merged))
            return merged

        return await self._db.write(run)

    async def get_session(self, session_id: str) -> SessionContext | None:
        return await self._db.read(lambda conn: _one(conn, Q["get"], (session_id,)), quick=True)

    async def link_token(self, kind: str, token: str, session_id: str, now: float) -> None:
        await self._db.write(
            lambda conn: conn.execute(Q["link_token"], (kind, token, session_id, now)))

    async def link_identities(self, links: Sequence[tuple[str, Sequence[str]]],
                              now: float) -> None:
        rows = [(ident, sid, now) for sid, idents in links for ident in idents]
        if rows:
            await self._db.write(lambda conn: conn.executemany(Q["link_identity"], rows))

    async def find_sessions(self, lookups: Sequence[Lookup],
                            identities_since: float) -> list[Found | None]:
        if all(lk.empty for lk in lookups):
            return [None] * len(lookups)
        return await self._db.read(
            lambda conn: [_find(conn, lk, identities_since) for lk in lookups], quick=True)


def _find(conn: sqlite3.Connection, lookup: Lookup, cutoff: float) -> Found | None:
    if lookup.session_id is not None:
        ctx = _one(conn, Q["get"], (lookup.session_id,))
        if ctx is not None:
            return ctx, EnrichedFrom.SESSION
    for kind, token in lookup.tokens:
        ctx = _one(conn, Q["by_token"], (kind, token))
        if ctx is not None:
            return ctx, EnrichedFrom.LINK
    best: SessionContext | None = None
    for identity in lookup.identities:
        ctx = _one(conn, Q["by_identity"], (identity, cutoff))
        if ctx is not None and (best is None or ctx.last_seen > best.last_seen):
            best = ctx
    return None if best is None else (best, EnrichedFrom.IDENTITY)


def _one(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> SessionContext | None:
    row = conn.execute(sql, params).fetchone()
    if row is None or row[0] is None:  # no row, or by_identity's aggregate found none
        return None
    consent, at, source = consent_from_text(row[6])
    return SessionContext(session_id=row[0], ip=row[1], user_agent=row[2], landing_url=row[3],
                          first_seen=row[4], last_seen=row[5], consent=consent, consent_at=at,
                          consent_source=source, click_ids=click_ids_from(row[7]))


def _row(c: SessionContext) -> tuple[Any, ...]:
    return (c.session_id, c.ip, c.user_agent, c.landing_url, c.first_seen, c.last_seen,
            consent_to_text(c), click_ids_to_text(c))
