"""Where the CPU goes: the processes of each part of the pipeline and the CPU time they spend."""

from __future__ import annotations

import contextlib
from pathlib import Path

from omnibot.testkit.processes import cpu_seconds


def find_pids(*needles: str) -> list[int]:
    """Processes whose command line contains every needle (arguments joined by spaces)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if all(needle in command for needle in needles):
                found.append(int(entry.name))
    return found


class CpuMeter:
    """CPU seconds spent by named groups of processes between `start()` and `stop()`, summed
    over several measurements."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.spent: dict[str, float] = dict.fromkeys(groups, 0.0)
        self._at: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in self.groups.items()}

    def start(self) -> None:
        self._at = self._now()

    def stop(self) -> None:
        for name, value in self._now().items():
            self.spent[name] += value - self._at[name]

    def per_message_us(self, messages: int) -> dict[str, float]:
        return {name: spent / messages * 1e6 for name, spent in self.spent.items()}
