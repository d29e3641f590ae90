"""Shared test fixtures."""
import contextlib

import pytest


@pytest.fixture(autouse=True, scope="module")
def _torch_one_thread(request):
    """Torch tests run tiny models: torch's intra-op thread pool only costs there (it spin-waits badly on
    a shared 2-core machine), so every tests/test_torch_*.py module runs with one torch thread."""
    if not request.module.__name__.rsplit(".", 1)[-1].startswith("test_torch_"):
        yield
        return
    try:
        import torch
    except ImportError:          # a module that needs torch skips itself; test_torch_sweep does not need it
        yield
        return
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture
def interrupted_after_checkpoint(monkeypatch):
    """``with interrupted_after_checkpoint(): train.run(cfg)`` — the run stops (KeyboardInterrupt) right
    after writing its first checkpoint, as a killed job would; the block expects that interrupt."""
    @contextlib.contextmanager
    def cm():
        from toymodels.torch import train

        orig = train._save_checkpoint

        def save_then_stop(path, obj):
            orig(path, obj)
            raise KeyboardInterrupt

        with monkeypatch.context() as mp:
            mp.setattr(train, "_save_checkpoint", save_then_stop)
            with pytest.raises(KeyboardInterrupt):
                yield
    return cm
