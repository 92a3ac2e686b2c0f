"""A toy gRPC backend the gateway learns of by declaration only.

What a person writes to add a backend, and nothing more: the proto
(proto/toy/v1/toy.proto), the service (server.py) and one declaration
(declaration.py, named in GATEWAY_DECLARATIONS). Its Python is generated from
the proto when the tests start (build.py), as `make proto` makes gen/ for the
built-in services; nothing generated is committed, so it cannot go stale.
"""
