"""What the Mac the agent runs on is: chip, unified memory, OS, free memory, runnable backends.

macOS answers through sysctl and vm_stat; the same calls fall back to /proc on Linux, where the
agent runs in tests (mlx[cpu] serves real models there), so nothing here requires macOS to start.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import subprocess


def _sysctl(name: str) -> str | None:
    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def chip() -> str:
    """'Apple M2 Max' on a Mac; the CPU model elsewhere."""
    brand = _sysctl("machdep.cpu.brand_string")
    if brand:
        return brand
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def total_memory_bytes() -> int:
    """Physical (unified) memory."""
    value = _sysctl("hw.memsize")
    if value and value.isdigit():
        return int(value)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def available_memory_bytes() -> int:
    """Memory free for a new model now (MemAvailable on Linux, free+inactive pages on macOS)."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        out = subprocess.run(["vm_stat"], capture_output=True, text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return total_memory_bytes()
    page = int(re.search(r"page size of (\d+)", out).group(1)) if "page size of" in out else 16384
    pages = sum(int(m) for m in re.findall(r"Pages (?:free|inactive|speculative):\s+(\d+)", out))
    return pages * page


def os_description() -> str:
    """'macOS 14.5 (arm64)' on a Mac, the platform string elsewhere."""
    mac = platform.mac_ver()[0]
    return f"macOS {mac} ({platform.machine()})" if mac else platform.platform()


def runnable_backends() -> list[str]:
    """The MLX backends whose engines are installed here."""
    found = []
    if importlib.util.find_spec("mlx_lm") is not None:
        found.append("mlx")
    if importlib.util.find_spec("mlx_vlm") is not None:
        found.append("mlx-vlm")
    return found
