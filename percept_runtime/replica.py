"""ReplicaService: every server describes itself to monitors (the gateway's
console): its name, model, workers and how its calls have gone."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict

from percept.common.v1 import replica_service_pb2 as pb
from percept.common.v1 import replica_service_pb2_grpc

from percept_runtime.engine import Description
from percept_runtime.interceptors import STATS

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ReplicaService"].full_name


class ReplicaServicer(replica_service_pb2_grpc.ReplicaServiceServicer):
    def __init__(
        self,
        name: Callable[[], str],
        services: list[str],
        describe: Callable[[], Description],
        serving: Callable[[], bool],
    ) -> None:
        self._name = name
        self._services = services
        self._describe = describe
        self._serving = serving
        self._started_at = time.time()

    async def GetReplicaInfo(self, request, context) -> pb.GetReplicaInfoResponse:
        return pb.GetReplicaInfoResponse(
            **asdict(self._describe()),
            replica=self._name(),
            services=self._services,
            calls_in_flight=max(0, STATS.in_flight),
            calls_served=STATS.served,
            calls_failed=STATS.failed,
            calls_refused=STATS.refused,
            mean_call_seconds=STATS.mean_seconds,
            started_at=self._started_at,
            serving=self._serving(),
        )
