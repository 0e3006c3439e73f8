"""Memory and compute profiler: static per-layer estimates from the tape's own declarations,
measured training steps, batch-size budgets and side-by-side architecture comparisons."""
from .estimate import ModelProfile, memory_summary
from .summary import MemorySummary
from .units import format_bytes, parse_bytes

__all__ = ["memory_summary", "MemorySummary", "ModelProfile", "parse_bytes", "format_bytes"]
