"""gunicorn settings for the seed's Flask app (`gunicorn -c bench/seed/gunicorn_conf.py`).

In simple mode (`?wait=true`) every request holds a thread while it blocks on
Celery's result, so the thread count caps the tasks in flight. gthread workers:
2 processes (one per core, so the API's own Python work is not held to one
core by the GIL) x 16 threads: either process alone can hold all 16 blocking
waits of the benchmark, however the kernel spreads the 16 keep-alive
connections between the two. The address comes from SEED_BIND.
"""

import os

bind = os.environ.get("SEED_BIND", "127.0.0.1:8100")
worker_class = "gthread"
workers = int(os.environ.get("SEED_API_WORKERS", os.cpu_count() or 1))
threads = 16
keepalive = 30  # seconds: the load generator keeps its connections open
timeout = 60
accesslog = None
loglevel = "warning"
