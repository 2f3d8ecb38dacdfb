"""`record`: the immutable value types made once or more per event (Event, User, Route...).

To the type checker a record is a frozen dataclass (mypy refuses an assignment to a field).
At run time it is a slotted, hashable dataclass whose `__init__` assigns plainly: a frozen
dataclass sets each field through `object.__setattr__`, which made building the values of one
ingested event some 10 % of its CPU (3 µs for an Event, as much for its User).
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def record(cls: type[T]) -> type[T]:
    return dataclasses.dataclass(slots=True, unsafe_hash=True)(cls)
