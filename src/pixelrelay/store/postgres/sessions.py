"""Browser sessions on PostgreSQL: context and consent by session id, token and identity
links; merging a hit into its session holds that session's row lock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pixelrelay.pipeline.enrich import EnrichedFrom, Lookup, SessionContext, merge_context
from pixelrelay.store.coalesce import Coalesced
from pixelrelay.store.postgres.writer import Conn, UsesConnections
from pixelrelay.store.queries import queries
from pixelrelay.store.session_codec import (
    click_ids_from,
    click_ids_to_text,
    consent_from_text,
    consent_to_text,
)

Q = queries("postgres", "sessions")
PRUNE_EVERY = 1000  # browser hits between two prunes of expired sessions and links
Found = tuple[SessionContext, EnrichedFrom]


class PostgresSessions(UsesConnections):
    """The Sessions part of PostgresStore."""

    _session_hits: int = 0

    async def record_session(self, hit: SessionContext, retention_s: float) -> SessionContext:
        # The first hit after a start, then every PRUNE_EVERY-th: range deletes on indexes.
        prune = self._session_hits % PRUNE_EVERY == 0
        self._session_hits += 1
        cutoff = {"cutoff": hit.last_seen - retention_s}

        async def run(conn: Conn) -> SessionContext:
            if prune:
                for name in ("prune_sessions", "prune_tokens", "prune_identities"):
                    await conn.execute(Q[name], cutoff)
            current = await _one(conn, Q["get_for_update"], (hit.session_id,))
            if current is None:
                first = merge_context(None, hit)
                if (await conn.execute(Q["insert_new"], _row(first))).rowcount == 1:
                    return first
                # Another process's first hit won the insert: merge into it, locked.
                current = await _one(conn, Q["get_for_update"], (hit.session_id,))
            merged = merge_context(current, hit)
            row = _row(merged)
            await conn.execute(Q["update"], (*row[1:], row[0]))
            return merged

        return await self._db.transaction(run)

    async def get_session(self, session_id: str) -> SessionContext | None:
        async def run(conn: Conn) -> SessionContext | None:
            return await _one(conn, Q["get"], (session_id,))

        return await self._db.read(run)

    async def link_token(self, kind: str, token: str, session_id: str, now: float) -> None:
        await self._db.execute(Q["link_token"], (kind, token, session_id, now))

    _linker: Coalesced[tuple[Sequence[tuple[str, Sequence[str]]], float], None] | None = None

    async def link_identities(self, links: Sequence[tuple[str, Sequence[str]]],
                              now: float) -> None:
        if not any(idents for _sid, idents in links):
            return
        if self._linker is None:
            self._linker = Coalesced(self._link_all)
        await self._linker((links, now))

    async def _link_all(self, calls: list[tuple[Sequence[tuple[str, Sequence[str]]], float]]
                        ) -> list[None]:
        """The links of every call waiting, in one transaction (a commit each cost a round
        trip and a flush per request). One row per key, the latest call's time: ON CONFLICT
        cannot touch a row twice in one statement."""
        rows = {(ident, sid): now for links, now in calls
                for sid, idents in links for ident in idents}
        await self._db.execute(Q["link_identity"], {
            "identity": [k[0] for k in rows], "session_id": [k[1] for k in rows],
            "linked_at": list(rows.values())})
        return [None] * len(calls)

    _finder: Coalesced[tuple[Sequence[Lookup], float], list[Found | None]] | None = None

    async def find_sessions(self, lookups: Sequence[Lookup],
                            identities_since: float) -> list[Found | None]:
        if all(lk.empty for lk in lookups):
            return [None] * len(lookups)
        if self._finder is None:
            self._finder = Coalesced(self._find_all)
        return await self._finder((lookups, identities_since))

    async def _find_all(self, calls: list[tuple[Sequence[Lookup], float]]
                        ) -> list[list[Found | None]]:
        """The lookups of every call waiting, in one statement (each with its call's cut-off
        for identity links)."""
        keys: list[tuple[int, int, str, str, str | None, float]] = []
        i = 0
        for lookups, since in calls:
            for lk in lookups:
                if lk.session_id is not None:
                    keys.append((i, 0, "session", lk.session_id, None, since))
                keys += [(i, n, "link", kind, token, since)
                         for n, (kind, token) in enumerate(lk.tokens)]
                keys += [(i, n, "identity", ident, None, since)
                         for n, ident in enumerate(lk.identities)]
                i += 1
        params = {name: [k[j] for k in keys]
                  for j, name in enumerate(("i", "seq", "how", "a", "b", "since"))}
        by_lookup: dict[int, list[tuple[Any, ...]]] = {}
        for row in await self._db.fetch(Q["find"], params) if keys else ():
            by_lookup.setdefault(row[0], []).append(row)
        out: list[list[Found | None]] = []
        i = 0
        for lookups, _since in calls:
            out.append([_pick(by_lookup.get(i + n, [])) for n in range(len(lookups))])
            i += len(lookups)
        return out


_HOW = {"session": EnrichedFrom.SESSION, "link": EnrichedFrom.LINK,
        "identity": EnrichedFrom.IDENTITY}


def _pick(rows: list[tuple[Any, ...]]) -> Found | None:
    """One lookup's candidates -> the session SQLite's order of preference finds: by id, else
    the first token that links one, else the most recently seen through an identity (the
    first of equals)."""
    for how in ("session", "link"):
        found = sorted((r for r in rows if r[2] == how), key=lambda r: r[1])
        if found:
            return _context(found[0][3:]), _HOW[how]
    best: tuple[Any, ...] | None = None
    for r in sorted((r for r in rows if r[2] == "identity"), key=lambda r: r[1]):
        if best is None or r[8] > best[8]:
            best = r
    return None if best is None else (_context(best[3:]), EnrichedFrom.IDENTITY)


async def _one(conn: Conn, sql: str, params: tuple[Any, ...]) -> SessionContext | None:
    row = await (await conn.execute(sql, params)).fetchone()
    return None if row is None else _context(row)


def _context(row: Sequence[Any]) -> SessionContext:
    consent, at, source = consent_from_text(row[6])
    return SessionContext(session_id=row[0], ip=row[1], user_agent=row[2], landing_url=row[3],
                          first_seen=row[4], last_seen=row[5], consent=consent, consent_at=at,
                          consent_source=source, click_ids=click_ids_from(row[7]))


def _row(c: SessionContext) -> tuple[Any, ...]:
    return (c.session_id, c.ip, c.user_agent, c.landing_url, c.first_seen, c.last_seen,
            consent_to_text(c), click_ids_to_text(c))
