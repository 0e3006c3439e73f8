"""Memory and compute profiler: static per-layer estimates from the tape's own declarations,
measured training steps, batch-size budgets and side-by-side architecture comparisons."""
from .budget import Comparison, compare, max_batch_size
from .estimate import ModelProfile, memory_summary
from .measure import StepMeasurement, measure_step
from .summary import MemorySummary
from .units import format_bytes, parse_bytes

__all__ = ["memory_summary", "MemorySummary", "measure_step", "StepMeasurement", "max_batch_size", "compare",
           "Comparison", "ModelProfile", "parse_bytes", "format_bytes"]
