"""The two ways to reach Percept: `rest` (the gateway) and `grpc` (the services).

Import the one you use (`percept.transport.rest`, `percept.transport.grpc`);
nothing is imported here, so a REST user never loads grpc and the other way
round. Both run the operations of `_ops` (and their own) on `_core`'s drivers.
"""
