"""A group writer's runs: each bulk job's calls together where the first was queued."""

from __future__ import annotations

from dataclasses import dataclass

from pixelrelay.store.write_groups import runs


@dataclass(eq=False)
class Call:
    name: str
    bulk: object | None = None


def test_calls_of_one_bulk_job_run_together_where_the_first_was_queued() -> None:
    insert, log = object(), object()
    group = [Call("i1", insert), Call("claim"), Call("l1", log), Call("i2", insert),
             Call("finish"), Call("l2", log), Call("i3", insert)]
    assert [[c.name for c in run] for run in runs(group)] == [
        ["i1", "i2", "i3"], ["claim"], ["l1", "l2"], ["finish"]]


def test_calls_without_a_bulk_job_each_run_alone_in_their_order() -> None:
    group = [Call("a"), Call("b"), Call("c")]
    assert [[c.name for c in run] for run in runs(group)] == [["a"], ["b"], ["c"]]
