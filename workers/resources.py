"""Peak memory of one trial, and what kind of failure an exception is.

Peak memory is in MiB: on CUDA the allocator's maximum since the trial started; on CPU the
process's peak resident set size (RSS). On Linux the RSS peak is reset at the start of each trial
(`/proc/self/clear_refs`), so a long-lived worker reports each trial's own peak; where that is not
possible it is the process's peak so far (`resource.getrusage`).
"""

from __future__ import annotations

import resource
import sys

import torch


def reset_peak_memory(device: torch.device) -> None:
    """Start measuring a new peak (best effort on CPU)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # Linux: reset the peak RSS (VmHWM, ru_maxrss) to the current RSS
    except OSError:
        pass


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory since `reset_peak_memory`, in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


_CPU_OOM = ("can't allocate memory", "cannot allocate memory", "out of memory")


def failure_kind(exc: BaseException) -> str:
    """`oom` for CUDA or CPU out-of-memory errors, `error` for anything else."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return "oom"
    if isinstance(exc, RuntimeError) and any(s in str(exc).lower() for s in _CPU_OOM):
        return "oom"  # torch's CPU allocator raises RuntimeError("... DefaultCPUAllocator: can't allocate memory ...")
    return "error"


def one_line(exc: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message`, at most `limit` characters."""
    text = (str(exc).strip().splitlines() or [""])[0]
    out = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return out if len(out) <= limit else out[:limit - 1] + "…"


def crash_failure(exc: BaseException, device: torch.device) -> tuple[str, str]:
    """`(kind, message)` of a trial that raised `exc` on `device`: ``oom`` (named with the device), or
    another `failure_kind`, with the error on one line."""
    kind = failure_kind(exc)
    return kind, (f"out of memory on {device}: {one_line(exc)}" if kind == "oom" else one_line(exc))
