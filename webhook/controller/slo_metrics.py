"""The watchdog's SLO gauges (names, help and labels in slo.METRICS), served from their own registry.

A pass replaces all samples at once (`update`): a scrape sees either the previous pass or the new one, never a
half-cleared set, so a series does not blink out of an alert's `for:` window between passes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .slo import METRICS, Sample


class _SloCollector(Collector):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: tuple[Sample, ...] = ()

    def update(self, samples: Iterable[Sample]) -> None:
        new = tuple(samples)
        unknown = {s.metric for s in new} - set(METRICS)
        if unknown:
            raise ValueError(f"samples of undeclared metrics: {sorted(unknown)}")
        with self._lock:
            self._samples = new

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            current = self._samples
        families = {name: GaugeMetricFamily(name, doc, labels=labels) for name, (doc, labels) in METRICS.items()}
        for s in current:
            labels = METRICS[s.metric][1]
            families[s.metric].add_metric([s.labels.get(label, "") for label in labels], s.value)
        yield from families.values()


@dataclass
class SloMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self._collector = _SloCollector()
        self.registry.register(self._collector)

    def update(self, samples: Iterable[Sample]) -> None:
        """Replace every SLO sample with those of the latest watchdog pass."""
        self._collector.update(samples)
