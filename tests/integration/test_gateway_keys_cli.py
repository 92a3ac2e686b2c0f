"""`python -m gateway keys` against a real Redis, as an operator types it: an empty
table says which Redis it read, limits read as they were given, and a Redis that
does not answer is one line and exit 3."""

from __future__ import annotations

import json

from tests.support import free_port, fresh_db, gateway_keys


def test_keys_list_says_what_it_read(redis_url):
    url = fresh_db(redis_url, 12)
    empty = gateway_keys("list", redis_url=url)
    assert empty.returncode == 0 and empty.stdout.strip() == f"no API keys in {url}"

    made = gateway_keys(
        "create", "--name", "alice", "--rps", "2.5", "--tasks", "100", "--bytes", "500M",
        "--json", redis_url=url,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    key_id = json.loads(made.stdout)["info"]["id"]
    listed = gateway_keys("list", redis_url=url)
    row = next(line for line in listed.stdout.splitlines() if line.startswith(key_id))
    assert row.split()[1:4] == ["client", f"key-{key_id}", "alice"]  # a tenant of its own
    assert row.endswith("rps=2.5, tasks=100, bytes=500 MiB")
    assert json.loads(gateway_keys("list", "--json", redis_url=url).stdout)[0]["limits"][
        "bytes"
    ] == (500 << 20)


def test_keys_with_no_redis_is_one_line_and_exit_3():
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    done = gateway_keys("list", redis_url=url)
    assert done.returncode == 3
    assert done.stderr.startswith("error: cannot reach Redis at redis://:***@127.0.0.1:")
    assert "hunter2" not in done.stderr and "Traceback" not in done.stderr
