"""What every Percept gRPC server shares: bootstrap, health, reflection,
graceful shutdown, interceptors, metrics, image and video decoding, limits,
error mapping and the worker pool. Nothing here imports a model library."""
