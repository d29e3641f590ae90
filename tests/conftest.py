"""Shared test fixtures."""
import pytest


@pytest.fixture(autouse=True, scope="module")
def _torch_one_thread(request):
    """Torch tests run tiny models: torch's intra-op thread pool only costs there (it spin-waits badly on
    a shared 2-core machine), so every tests/test_torch_*.py module runs with one torch thread."""
    if not request.module.__name__.rsplit(".", 1)[-1].startswith("test_torch_"):
        yield
        return
    torch = pytest.importorskip("torch")
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
