"""Prometheus text exposition (format 0.0.4) for the few series the service keeps."""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    esc = [(k, v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")) for k, v in labels]
    return "{" + ",".join(f'{k}="{v}"' for k, v in esc) + "}"


class Metrics:
    """Counters and latency histograms of this process (each instance exports its own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        self._hist: dict[tuple[tuple[str, str], ...], list[float]] = {}
        self._hist_sum: dict[tuple[tuple[str, str], ...], float] = defaultdict(float)

    def inc(self, name: str, **labels: str) -> None:
        """Add one to the counter ``name`` for these labels."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._counters[name]
            series[key] = series.get(key, 0.0) + 1.0

    def observe(self, seconds: float, **labels: str) -> None:
        """Record one request latency (seconds) in the histogram for these labels."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            counts = self._hist.setdefault(key, [0.0] * (len(BUCKETS) + 1))
            for i, b in enumerate(BUCKETS):
                if seconds <= b:
                    counts[i] += 1
            counts[-1] += 1
            self._hist_sum[key] += seconds

    def render(self, gauges: dict[str, list[tuple[dict[str, str], float]]]) -> str:
        """Counters, the latency histogram and ``gauges`` in the Prometheus text format."""
        lines: list[str] = []
        helps = {
            "jpki_requests_total": "HTTP requests by route and status code.",
            "jpki_verdicts_total": "Verification verdicts by kind and status.",
        }
        with self._lock:
            for name, series in sorted(self._counters.items()):
                lines.append(f"# HELP {name} {helps.get(name, name)}")
                lines.append(f"# TYPE {name} counter")
                for key, v in sorted(series.items()):
                    lines.append(f"{name}{_labels(key)} {v:g}")
            name = "jpki_request_duration_seconds"
            lines.append(f"# HELP {name} Request latency by route.")
            lines.append(f"# TYPE {name} histogram")
            for key, counts in sorted(self._hist.items()):
                for b, c in zip(BUCKETS, counts, strict=False):
                    lines.append(f"{name}_bucket{_labels((*key, ('le', f'{b:g}')))} {c:g}")
                lines.append(f"{name}_bucket{_labels((*key, ('le', '+Inf')))} {counts[-1]:g}")
                lines.append(f"{name}_sum{_labels(key)} {self._hist_sum[key]:.6f}")
                lines.append(f"{name}_count{_labels(key)} {counts[-1]:g}")
        for name, values in sorted(gauges.items()):
            lines.append(f"# HELP {name} {name.replace('_', ' ')}")
            lines.append(f"# TYPE {name} gauge")
            for labels, v in values:
                lines.append(f"{name}{_labels(tuple(sorted(labels.items())))} {v:g}")
        return "\n".join(lines) + "\n"
