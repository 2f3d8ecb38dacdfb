"""SessionStore: browser-session context, token and identity links on the store's SQL hooks."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import orjson

from pixelrelay.model import Consent, ConsentState
from pixelrelay.pipeline.enrich import EnrichedFrom, Lookup, SessionContext, merge_context

T = TypeVar("T")
Found = tuple[SessionContext, EnrichedFrom]
_COLUMNS = ("session_id, ttclid, ttp, ip, user_agent, landing_url, first_seen, last_seen, "
            "consent")
_GET = f"SELECT {_COLUMNS} FROM sessions WHERE session_id = ?"
_UPSERT = (f"INSERT OR REPLACE INTO sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
_BY_TOKEN = (f"SELECT {_COLUMNS} FROM sessions WHERE session_id = "
             "(SELECT session_id FROM session_tokens WHERE kind = ? AND token = ?)")
_BY_IDENTITY = (
    "SELECT " + ", ".join(f"s.{c.strip()}" for c in _COLUMNS.split(",")) +
    " FROM session_identities i JOIN sessions s ON s.session_id = i.session_id"
    " WHERE i.identity = ? AND i.linked_at >= ? ORDER BY s.last_seen DESC LIMIT 1")
_LINK_TOKEN = ("INSERT OR REPLACE INTO session_tokens (kind, token, session_id, linked_at) "
               "VALUES (?, ?, ?, ?)")
_PRUNE = ("DELETE FROM sessions WHERE last_seen < :cutoff",
          "DELETE FROM session_tokens WHERE linked_at < :cutoff",
          "DELETE FROM session_identities WHERE linked_at < :cutoff")
PRUNE_EVERY = 1000  # browser hits between two prunes of expired sessions and links
_LINK_IDENTITY = ("INSERT OR REPLACE INTO session_identities (identity, session_id, linked_at) "
                  "VALUES (?, ?, ?)")


class SQLHooks(Protocol):
    """The store's extension points (SQLiteStore.read / .write)."""

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...


class SessionStore:
    """Sessions on the gateway's own database, so a restored context survives restarts.

    `find` is on the ingest path of every server event; until the first session exists
    (a gateway without the browser tag) it answers from memory without touching SQLite.
    """

    def __init__(self, store: SQLHooks, identity_window_s: float,
                 retention_s: float | None = None) -> None:
        self.store = store
        self.identity_window_s = identity_window_s
        # Nothing older than the longest cookie or window can be restored any more.
        self.retention_s = max(identity_window_s, retention_s or 0.0)
        self._hits = 0
        self._any: bool | None = None  # None: not yet known whether the table has rows

    async def record(self, hit: SessionContext) -> SessionContext:
        """Create or update a session from one browser hit; returns the merged context."""

        prune = self._hits % PRUNE_EVERY == 0  # the first hit after a start, then every Nth
        self._hits += 1
        cutoff = {"cutoff": hit.last_seen - self.retention_s}

        def run(conn: sqlite3.Connection) -> SessionContext:
            if prune:
                for sql in _PRUNE:
                    conn.execute(sql, cutoff)
            merged = merge_context(_one(conn, _GET, (hit.session_id,)), hit)
            conn.execute(_UPSERT, _row(merged))
            return merged

        merged = await self.store.write(run)
        self._any = True
        return merged

    async def get(self, session_id: str) -> SessionContext | None:
        return await self.store.read(lambda conn: _one(conn, _GET, (session_id,)))

    async def link_token(self, kind: str, token: str, session_id: str, now: float) -> None:
        await self.store.write(
            lambda conn: conn.execute(_LINK_TOKEN, (kind, token, session_id, now)))

    async def link_identities(self, links: Sequence[tuple[str, Sequence[str]]],
                              now: float) -> None:
        """Record (session_id, identities) pairs: who was seen in which session."""
        rows = [(ident, sid, now) for sid, idents in links for ident in idents]
        if rows:
            await self.store.write(lambda conn: conn.executemany(_LINK_IDENTITY, rows))

    async def find(self, lookups: Sequence[Lookup], now: float) -> list[Found | None]:
        """For each lookup the session found by its session id, else by a linked token,
        else by an identity linked within the window (most recently seen session first)."""
        if not any(not lk.empty for lk in lookups) or not await self._has_sessions():
            return [None] * len(lookups)
        cutoff = now - self.identity_window_s
        return await self.store.read(lambda conn: [_find(conn, lk, cutoff) for lk in lookups])

    async def _has_sessions(self) -> bool:
        if self._any is None:
            self._any = await self.store.read(
                lambda conn: conn.execute("SELECT 1 FROM sessions LIMIT 1").fetchone()
                is not None)
        return self._any


def _find(conn: sqlite3.Connection, lookup: Lookup, cutoff: float) -> Found | None:
    if lookup.session_id is not None:
        ctx = _one(conn, _GET, (lookup.session_id,))
        if ctx is not None:
            return ctx, EnrichedFrom.SESSION
    for kind, token in lookup.tokens:
        ctx = _one(conn, _BY_TOKEN, (kind, token))
        if ctx is not None:
            return ctx, EnrichedFrom.LINK
    best: SessionContext | None = None
    for identity in lookup.identities:
        ctx = _one(conn, _BY_IDENTITY, (identity, cutoff))
        if ctx is not None and (best is None or ctx.last_seen > best.last_seen):
            best = ctx
    return None if best is None else (best, EnrichedFrom.IDENTITY)


def _one(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> SessionContext | None:
    row = conn.execute(sql, params).fetchone()
    if row is None:
        return None
    consent, at, source = _decode_consent(row[8])
    return SessionContext(session_id=row[0], ttclid=row[1], ttp=row[2], ip=row[3],
                          user_agent=row[4], landing_url=row[5], first_seen=row[6],
                          last_seen=row[7], consent=consent, consent_at=at,
                          consent_source=source)


def _row(c: SessionContext) -> tuple[Any, ...]:
    consent = None if c.consent is None else orjson.dumps({
        "marketing": c.consent.marketing, "ad_user_data": c.consent.ad_user_data,
        "ad_personalization": c.consent.ad_personalization, "region": c.consent.region,
        "at": c.consent_at, "source": c.consent_source}).decode()
    return (c.session_id, c.ttclid, c.ttp, c.ip, c.user_agent, c.landing_url, c.first_seen,
            c.last_seen, consent)


def _decode_consent(text: str | None) -> tuple[Consent | None, float | None, str | None]:
    if not text:
        return None, None, None
    d = orjson.loads(text)

    def state(key: str) -> ConsentState | None:
        return None if d.get(key) is None else ConsentState(d[key])

    return (Consent(marketing=state("marketing"), ad_user_data=state("ad_user_data"),
                    ad_personalization=state("ad_personalization"), region=d.get("region")),
            d.get("at"), d.get("source"))
