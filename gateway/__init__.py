"""Percept's REST gateway: FastAPI in front, a Redis job table, and dispatchers
that feed the work to the gRPC replicas."""
