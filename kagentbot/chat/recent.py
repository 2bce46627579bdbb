"""The one bounded "recently seen" map: ids already handled, messages sent, replies pending. A
long-running bot must not grow without bound, and what it forgets first is what it saw first."""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Recent(OrderedDict[K, V]):
    """A dict that forgets its oldest entries past `size`; writing a key makes it the newest."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
