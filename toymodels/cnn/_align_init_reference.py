"""Plain-numpy reference of :func:`toymodels.cnn.align_init._alignment_terms` (same arguments,
returns the outputs instead of filling them).

It builds the two input gradients literally — patch i of ∇ₓf(x) is Σ_r u_{ri} 1[⟨w_r, z_i⟩ ≥ 0] w_r
(thesis l.441) — and takes their inner products, whereas the kernel never forms the gradients (it
uses the Gram matrix WWᵀ, the expanded form of the first line of the proof, thesis l.541). Vectorized
over all samples of a chunk with batched matmuls; it is the test oracle for the kernel and its
benchmark baseline.
"""
from __future__ import annotations

import numpy as np

__all__ = ["alignment_terms_reference"]


def alignment_terms_reference(W, U, Z, H):
    """Per-sample inner products of the input gradients at x and x + η.

    Parameters
    ----------
    W : (S, m, p) filters w_r (rows).
    U : (S, m, k) outgoing weights u_{ri} (filter r, patch i).
    Z : (S, k, p) patches z_i of x.
    H : (S, k, p) noise η_i added to patch i.

    Returns
    -------
    num, n0, n1 : (S,) float arrays
        ⟨∇f(x), ∇f(x+η)⟩, ‖∇f(x)‖², ‖∇f(x+η)‖² (summed over all k patches).
    flips : (S,) int64 array
        number of (filter, patch) ReLU units whose activation differs between x and x + η.
    """
    WT = np.swapaxes(W, 1, 2)                       # (S, p, m)
    A0 = (Z @ WT) >= 0.0                            # (S, k, m): 1[⟨w_r, z_i⟩ ≥ 0]
    A1 = ((Z + H) @ WT) >= 0.0                      # 1[⟨w_r, z_i + η_i⟩ ≥ 0]
    UT = np.swapaxes(U, 1, 2)                       # (S, k, m)
    G0 = (UT * A0) @ W                              # (S, k, p): ∇ₓf(x), patch by patch
    G1 = (UT * A1) @ W                              # ∇ₓf(x + η)
    num = np.einsum("skp,skp->s", G0, G1)
    n0 = np.einsum("skp,skp->s", G0, G0)
    n1 = np.einsum("skp,skp->s", G1, G1)
    flips = (A0 != A1).sum(axis=(1, 2)).astype(np.int64)
    return num, n0, n1, flips
