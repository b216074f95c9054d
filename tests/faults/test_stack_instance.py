"""The second stack instance the fault tests use: its own directory and ports, the
default instance unchanged, and the LINKHOP_* variables ignored by it."""

from __future__ import annotations

import os

import pytest

from deploy.local import stack
from shared.settings import (
    DEFAULT_DATABASE_URL,
    DEFAULT_KAFKA_BOOTSTRAP,
    DEFAULT_REDIS_URL,
    LOCAL_KAFKA_CONTROLLER_PORT,
    LOCAL_KAFKA_PORT,
    LOCAL_POSTGRES_PORT,
    LOCAL_REDIS_PORT,
)
from tests.faults.support import FaultStack, cpu_split, pin_servers


def test_default_instance_is_unchanged() -> None:
    paths = stack.StackPaths(stack.repo_root())
    assert paths.var == paths.root / "var"
    assert (paths.postgres_port, paths.redis_port, paths.kafka_port,
            paths.kafka_controller_port) == (LOCAL_POSTGRES_PORT, LOCAL_REDIS_PORT,
                                             LOCAL_KAFKA_PORT, LOCAL_KAFKA_CONTROLLER_PORT)
    assert paths.urls == stack.StackUrls(DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL,
                                         DEFAULT_KAFKA_BOOTSTRAP)
    assert paths.honours_env


def test_named_instance_has_its_own_directory_and_ports() -> None:
    root = stack.repo_root()
    paths = stack.StackPaths(root, instance="faults")
    assert paths.var == root / "var" / "stack-faults"
    assert paths.lock_file.parent == paths.var
    assert paths.pg_data.is_relative_to(paths.var)
    assert paths.kafka_data.is_relative_to(paths.var)
    assert paths.kafka_libs == stack.StackPaths(root).kafka_libs  # the jars are shared
    assert (paths.postgres_port, paths.redis_port, paths.kafka_port,
            paths.kafka_controller_port) == (15532, 16479, 19192, 19193)
    assert paths.urls == stack.StackUrls(
        "postgresql://linkhop@127.0.0.1:15532/linkhop", "redis://127.0.0.1:16479/0",
        "127.0.0.1:19192")
    assert not paths.honours_env
    assert stack.StackPaths(root, instance="x", port_offset=300).redis_port == 16679


def test_instance_names_are_checked() -> None:
    with pytest.raises(stack.StackError):
        stack.StackPaths(stack.repo_root(), instance="../escape")


@pytest.mark.faults
@pytest.mark.stack
def test_fault_stack_is_not_the_shared_one(
    fault_stack: FaultStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    for url in (fault_stack.database_url, fault_stack.redis_url, fault_stack.kafka_bootstrap):
        assert not any(str(port) in url for port in (LOCAL_POSTGRES_PORT, LOCAL_REDIS_PORT,
                                                     LOCAL_KAFKA_PORT))
    # LINKHOP_* pointing at the shared stack does not redirect the faults instance.
    monkeypatch.setenv("LINKHOP_DATABASE_URL", DEFAULT_DATABASE_URL)
    assert stack.start(fault_stack.paths).database_url == fault_stack.paths.database_url
    assert stack.status(fault_stack.paths) == {"postgres": True, "redis": True, "kafka": True}


def test_cpu_split_gives_the_edge_and_the_backend_their_own_cores() -> None:
    split = cpu_split()
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        assert split is None
        return
    assert split is not None
    assert split.edge and split.backend and not split.edge & split.backend
    assert split.edge | split.backend == cpus


@pytest.mark.faults
@pytest.mark.stack
def test_servers_are_pinned_and_given_back_every_core(fault_stack: FaultStack) -> None:
    pids = stack.server_pids(fault_stack.paths)
    assert all(pid is not None for pid in pids.values()), pids
    everywhere = frozenset(os.sched_getaffinity(0))
    one = frozenset({min(everywhere)})
    try:
        pin_servers(fault_stack, one)
        for pid in pids.values():
            assert pid is not None
            threads = os.listdir(f"/proc/{pid}/task")
            assert all(os.sched_getaffinity(int(tid)) == one for tid in threads)
    finally:
        pin_servers(fault_stack, everywhere)
    assert all(os.sched_getaffinity(pid) == everywhere for pid in pids.values() if pid)
