"""How much memory this process may still use: the smaller of the system's available memory and what the cgroup
(container) limit leaves. Used to refuse, with a message, an input that cannot fit before minutes are spent on it."""

from __future__ import annotations

from pathlib import Path


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> int | None:
    """Bytes that can still be allocated without swapping or being killed, or None where unknown (not Linux)."""
    candidates = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    cgroup = Path("/sys/fs/cgroup")
    limit, used = _read_int(cgroup / "memory.max"), _read_int(cgroup / "memory.current")
    if limit is not None and used is not None:
        candidates.append(max(0, limit - used))
    return min(candidates) if candidates else None
