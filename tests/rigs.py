"""Stand-ins shared by the reconciler rigs of several test modules."""

from __future__ import annotations

from collections.abc import Mapping

from maglev.health.state import Phase
from maglev.model import HealthCheck, ProbeTarget


class Streams:
    """Records what the reconciler asks of the check scheduler."""

    def __init__(self) -> None:
        self.targets: dict[ProbeTarget, HealthCheck] = {}
        self.phases: dict[ProbeTarget, Phase] = {}

    def set_targets(
        self,
        targets: Mapping[ProbeTarget, HealthCheck],
        phases: Mapping[ProbeTarget, Phase] | None = None,
    ) -> tuple[int, int, int]:
        self.targets = dict(targets)
        self.phases.update(phases or {})
        return (0, 0, 0)

    def set_phases(self, phases: Mapping[ProbeTarget, Phase]) -> None:
        self.phases.update(phases)


class NoStreams:
    """A check scheduler that probes nothing: the tests put probe results on the queue."""

    def set_targets(
        self,
        targets: Mapping[ProbeTarget, HealthCheck],
        phases: Mapping[ProbeTarget, Phase] | None = None,
    ) -> tuple[int, int, int]:
        return (0, 0, 0)

    def set_phases(self, phases: Mapping[ProbeTarget, Phase]) -> None:
        pass
