"""Numba kernels of the single-layer CNN (private; public API in :mod:`toymodels.cnn.model`,
:mod:`toymodels.cnn.attacks` and :mod:`toymodels.cnn.align_init`), split by role:

* :mod:`.primitives` — per-example building blocks on preallocated padded buffers (convolution,
  dense layer, softmax, backward passes, weight gradients, outer products), the buffer layout, and
  :func:`reduce_grad`, which sums the per-chunk gradient rows;
* :mod:`.passes` — the clean passes and the attacks: :func:`logits`, :func:`loss_grad`,
  :func:`loss_grad_weighted`, :func:`input_grad`, :func:`attack`;
* :mod:`.gradalign` — the GradAlign kernels: :func:`gradalign` and the fused FGSM-AT + GradAlign
  step gradient :func:`fgsm_gradalign`;
* :mod:`.align_init` — Lemma 2's :func:`alignment_terms` (gradient alignment at initialization).

Every public kernel has a numpy reference of the same name and parameters in
:mod:`toymodels.cnn._reference`, registered in its ``CASES`` (parity test, benchmark).

Parallelism: ``prange`` over a fixed number of example chunks (:func:`n_chunks`: it depends on N
only, so the summation order — and the result — does not depend on the number of threads);
parameter gradients go to per-chunk rows of ``gbuf`` (:func:`grad_row_size`) and are reduced at the
end (:func:`reduce_grad`). Work buffers are allocated once per chunk, never per example. Loops may
be reassociated (``fastmath={"reassoc", "contract"}``, no 'nnan'/'ninf': NaN/inf still propagate):
a loop that sums must not also store (see ``primitives._softmax_ce``), so that the rounding does not
depend on where the work buffers lie in memory: results are bitwise the same for any thread count.

Caching: numba keys a cached kernel on its own source file only, but the kernels of :mod:`.passes`
and :mod:`.gradalign` inline the helpers of :mod:`.primitives`. So that an edit of one file never
leaves stale inlined code in another file's cache, this package drops the cache of all its files
when any of them changed (a digest of the sources is kept next to the cache).
"""
import hashlib
from pathlib import Path


def _cache_dir(py_file: Path) -> Path:
    """Where numba caches the kernels of ``py_file`` (its first applicable locator; in-tree by default)."""
    try:
        from numba.core.caching import CacheImpl

        for cls in CacheImpl._locator_classes:
            loc = cls.from_function(_cache_dir, str(py_file))
            if loc is not None:
                return Path(loc.get_cache_path())
    except Exception:  # noqa: BLE001 - numba internals moved: fall back to the in-tree cache
        pass
    return py_file.parent / "__pycache__"


def _drop_stale_cache() -> None:
    files = sorted(Path(__file__).parent.glob("*.py"))
    digest = hashlib.sha256(b"".join(f.name.encode() + f.read_bytes() for f in files)).hexdigest()
    cache = _cache_dir(files[0])
    stamp = cache / "toymodels-cnn-kernels.sha256"
    try:
        if stamp.is_file() and stamp.read_text() == digest:
            return
        modules = {f.stem for f in files}
        for f in cache.glob("*.nb[ic]"):
            if f.name.split(".")[0] in modules:
                f.unlink(missing_ok=True)
        stamp.write_text(digest)
    except OSError:        # a read-only installation: nothing was cached there either
        pass


_drop_stale_cache()

from .align_init import alignment_terms  # noqa: E402
from .gradalign import fgsm_gradalign, gradalign  # noqa: E402
from .passes import attack, input_grad, logits, loss_grad, loss_grad_weighted  # noqa: E402
from .primitives import MAX_CHUNKS, grad_row_size, n_chunks, reduce_grad  # noqa: E402

__all__ = ["MAX_CHUNKS", "n_chunks", "grad_row_size", "reduce_grad", "logits", "loss_grad", "loss_grad_weighted",
           "input_grad", "attack", "gradalign", "fgsm_gradalign", "alignment_terms"]
