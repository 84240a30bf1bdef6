"""Test conventions: offline by construction, tiny inputs, shared data optional."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


class NetworkAccessError(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt to open a network connection fails loudly (Unix sockets stay allowed)."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise NetworkAccessError(f"test tried to reach the network: {address}")
        return real_connect(self, address)

    def refuse(*args, **kwargs):
        raise NetworkAccessError(f"test tried to reach the network: {args[:1]}")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with a reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (../shared is only present in the development workspace)")
    return path


@pytest.fixture
def shared_data():
    return shared_path("data")


@pytest.fixture
def parity_dir():
    return shared_path("fixtures", "parity")


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of small-input tests: on a shared, loaded 2-core machine two
    OpenMP threads spin-wait on each other per op (up to 20x slower); results are unaffected."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
