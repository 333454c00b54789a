import os

import pytest
import torch

# CI has 2 cores; keep torch from oversubscribing them when pytest-xdist or helpers run in parallel.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """Tiny networks: one intra-op thread is fastest and immune to OpenMP oversubscription on a busy 2-core box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
