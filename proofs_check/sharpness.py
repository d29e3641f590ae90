"""Checks of the diagonal-linear-network sharpness derivations (thesis Ch. 7, Sec. 7.6.2 l.3779–3800,
App. 7.8.1–7.8.2 l.4011–4100), in the project normalization L = 1/(4n) ‖X(u⊙v) − y‖² unless a
check says otherwise. Each check takes the formula under test as a defaulted parameter.
"""
from __future__ import annotations

import sympy as sp

from . import check

__all__: list[str] = []

A = sp.Symbol("alpha", positive=True)
RHO = sp.Symbol("rho", positive=True)


def _uv(d):
    return sp.Matrix(sp.symbols(f"u1:{d + 1}", real=True)), sp.Matrix(sp.symbols(f"v1:{d + 1}", real=True))


def _project_hessian(u, v, X, y):
    n, d = X.shape
    G, r = X.T * X, X * u.multiply_elementwise(v) - y
    V, U = sp.diag(*v), sp.diag(*u)
    off = V * G * U + sp.diag(*(X.T * r))
    return sp.BlockMatrix([[V * G * V, off], [off.T, U * G * U]]).as_explicit() / (2 * n)


def _thesis_eq78(u, v, X, y):
    # as printed (l.4087), for L = ‖Xβ − y‖²: no factor 2, both off-diagonal blocks V Xᵀ X U
    G, r = X.T * X, X * u.multiply_elementwise(v) - y
    V, U = sp.diag(*v), sp.diag(*u)
    off = V * G * U + sp.diag(*(X.T * r))
    return sp.BlockMatrix([[V * G * V, off], [off, U * G * U]]).as_explicit()


@check("sharpness.dln_hessian", "App. 7.8.2, eq. 7.8 (l.4087)")
def dln_hessian(formula=_project_hessian, normalization="project"):
    """Symbolic Hessian of the DLN loss (d = 2, n = 3, generic X, y, any point) equals ``formula``.
    ``normalization="thesis"`` uses L = ‖Xβ − y‖² (eq. 7.6): the correct Hessian is then 2× eq. 7.8 and
    the lower-left block is U XᵀX V (= (V XᵀX U)ᵀ), so the printed eq. 7.8 fails."""
    d, n = 2, 3
    u, v = _uv(d)
    X = sp.Matrix(n, d, sp.symbols(f"x1:{n * d + 1}", real=True))
    y = sp.Matrix(sp.symbols(f"y1:{n + 1}", real=True))
    r = X * u.multiply_elementwise(v) - y
    L = (r.T * r)[0] * (sp.Rational(1, 4 * n) if normalization == "project" else 1)
    w = list(u) + list(v)
    H = sp.hessian(L, w)
    diff = (H - formula(u, v, X, y)).applyfunc(sp.expand)
    return diff == sp.zeros(2 * d, 2 * d), f"nonzero entries of H - formula: {sum(e != 0 for e in diff)}"


@check("sharpness.whitened_blocks", "eq. 7.9–7.10 (l.4091–4097)")
def whitened_blocks(eigs=lambda u, v: (0, (u ** 2 + v ** 2) / 2), scale=sp.Rational(1, 2)):
    """At a minimum with XᵀX = nI the Hessian is ``scale``·[[diag v², diag uv], [diag uv, diag u²]]
    (project: ½; thesis: 1 as printed, 2 correctly) and each 2×2 block has eigenvalues ``eigs``."""
    u1, v1 = sp.symbols("u1 v1", real=True)
    n = 2
    X = sp.sqrt(n) * sp.eye(2)  # XᵀX = nI
    u, v = sp.Matrix([u1, 2]), sp.Matrix([v1, 3])
    H = _project_hessian(u, v, X, X * u.multiply_elementwise(v))  # y = Xβ: zero residual
    closed = scale * sp.Matrix([[v1 ** 2, u1 * v1], [u1 * v1, u1 ** 2]])
    blk = H.extract([0, 2], [0, 2])
    ok_block = (blk - closed).applyfunc(sp.simplify) == sp.zeros(2, 2)
    ev = sorted(blk.eigenvals(), key=lambda e: sp.count_ops(e))
    ok_eigs = set(map(sp.simplify, ev)) == set(map(sp.simplify, eigs(u1, v1)))
    return bool(ok_block and ok_eigs), f"block eigenvalues {ev}"


def _c_correct(u, v):
    return sp.sqrt(sp.Abs(u / v)), sp.sqrt(sp.Abs(v / u))


def _c_printed(u, v):  # l.3791: c_i = √(|v_i|/|u_i|) on the u-coordinates
    return sp.sqrt(sp.Abs(v / u)), sp.sqrt(sp.Abs(u / v))


@check("sharpness.dln_rescaling", "Sec. 7.6.2 (l.3791–3797)")
def dln_rescaling(c=_c_correct):
    """With (c_u, c_v) = ``c``(u, v) the rescaled block ½[[v², uv], [uv, u²]] ⊙ ccᵀ has trace |uv| and
    λ_max |uv| (so tr = ‖β‖₁, λ_max = ‖β‖_∞ over coordinates), and c scales like (u, v) under
    (αu, v/α). The printed c (u and v swapped) gives trace (|u|³/|v| + |v|³/|u|)/2 and fails."""
    u, v = sp.symbols("u v", nonzero=True, real=True)
    cu, cv = c(u, v)
    Hc = sp.Rational(1, 2) * sp.Matrix([[v ** 2 * cu ** 2, u * v * cu * cv],
                                        [u * v * cu * cv, u ** 2 * cv ** 2]])
    tr = sp.simplify(Hc.trace())
    lmax = sp.simplify(tr / 2 + sp.sqrt((Hc[0, 0] - Hc[1, 1]) ** 2 / 4 + Hc[0, 1] ** 2))
    # numeric spot checks avoid sympy's sign bookkeeping of |·|
    pts = [(sp.Rational(3, 2), sp.Rational(-2, 7)), (sp.Rational(-5, 3), sp.Rational(1, 4)), (2, 3)]
    ok_tr = all(sp.simplify(tr.subs({u: a, v: b}) - abs(a * b)) == 0 for a, b in pts)
    ok_lm = all(sp.simplify(lmax.subs({u: a, v: b}) - abs(a * b)) == 0 for a, b in pts)
    cu2, cv2 = c(A * u, v / A)
    ok_inv = all(sp.simplify((cu2 - A * cu).subs({u: a, v: b})) == 0
                 and sp.simplify((cv2 - cv / A).subs({u: a, v: b})) == 0 for a, b in pts)
    return (bool(ok_tr and ok_lm and ok_inv),
            f"trace = {tr}, lambda_max = {lmax}, invariant scaling = {ok_inv}")


@check("sharpness.avg_exact_whitened", "Prop. 7.8.2 (l.4067) specialised to the DLN")
def avg_exact_whitened(formula=lambda b, rho: rho ** 2 / 2 * sp.Abs(b) + rho ** 4 / 4):
    """Per coordinate of a whitened DLN at a minimum, with the DLN rescaling, the average-case
    sharpness is exactly E_γ ¼(δβ)² = ρ²/2·|β| + ρ⁴/4 (γ ~ N(0, ρ²I₂), δβ = (u+c_uγ₁)(v+c_vγ₂) − uv),
    i.e. S_avg = ρ²/2 ‖β‖₁ + dρ⁴/4: the ρ²/2·tr limit of Prop. 7.8.2 with an O(ρ⁴) remainder."""
    u, v = sp.Rational(3, 2), sp.Rational(-2, 5)
    g1, g2 = sp.symbols("g1 g2", real=True)
    cu, cv = _c_correct(u, v)
    db = (u + cu * g1) * (v + cv * g2) - u * v
    e = sp.expand(db ** 2 / 4)
    # Gaussian moments: E g = E g³ = 0, E g² = ρ², E g⁴ = 3ρ⁴ (only even powers ≤ 2 occur per variable)
    mom = {0: 1, 1: 0, 2: RHO ** 2, 3: 0, 4: 3 * RHO ** 4}
    poly = sp.Poly(e, g1, g2)
    ex = sum(cf * mom[i] * mom[j] for (i, j), cf in zip(poly.monoms(), poly.coeffs()))
    diff = sp.simplify(ex - formula(u * v, RHO))
    return diff == 0, f"E = {sp.simplify(ex)}; E - formula = {diff}"


@check("sharpness.avg_local_limit", "Prop. 7.8.2 (l.4067)")
def avg_local_limit(factor=sp.Rational(1, 2)):
    """E_{γ~N(0,ρ²I)} ½γᵀAγ = ``factor``·ρ²·tr A for a generic symmetric 3×3 A (no dimension factor)."""
    a = sp.symbols("a11 a12 a13 a22 a23 a33", real=True)
    Am = sp.Matrix([[a[0], a[1], a[2]], [a[1], a[3], a[4]], [a[2], a[4], a[5]]])
    g = sp.Matrix(sp.symbols("g1:4", real=True))
    q = sp.expand((g.T * Am * g)[0] / 2)
    poly = sp.Poly(q, *g)
    mom = {0: 1, 1: 0, 2: RHO ** 2}
    ex = sum(cf * sp.prod([mom[k] for k in m]) for m, cf in zip(poly.monoms(), poly.coeffs()))
    diff = sp.simplify(ex - factor * RHO ** 2 * Am.trace())
    return diff == 0, f"E = {ex}"


# ------------------------------------------------------------------ Sec. 5.4: 1-sharpness of linear models
# (named sharpness54.* / sharpness7.*: tests/test_sharpness.py counts the five DLN checks "sharpness.*")

def _lagrange_identity_ok(x, dl):
    """‖x‖²‖δ‖² − ⟨x, δ⟩² = Σ_{i<j} (xᵢδⱼ − xⱼδᵢ)² ≥ 0, i.e. |⟨δ, x⟩| ≤ ‖δ‖‖x‖ (Cauchy–Schwarz)."""
    d = len(x)
    lhs = sum(a * a for a in x) * sum(b * b for b in dl) - sum(a * b for a, b in zip(x, dl)) ** 2
    rhs = sum((x[i] * dl[j] - x[j] * dl[i]) ** 2 for i in range(d) for j in range(i + 1, d))
    return sp.expand(lhs - rhs) == 0


@check("sharpness54.one_sharpness_square", "Sec. 5.4 (l.2188), squared loss")
def one_sharpness_square(formula=lambda r, nx, rho: (sp.Abs(r) + rho * nx) ** 2 - r ** 2):
    """max_{‖δ‖₂≤ρ} (r + ⟨δ, x⟩)² − r² = ``formula``(r, ‖x‖, ρ) (d = 3, symbolic x, both signs of r):
    ⟨δ, x⟩ ∈ [−ρ‖x‖, ρ‖x‖] by the Lagrange identity, attained at δ = ±ρx/‖x‖, and the square is
    maximized at the end of the same sign as r. At an interpolating w (r = 0) it is ρ²‖x‖² whatever
    the minimizer: all global minimizers of least squares are equally 1-sharp."""
    x = sp.symbols("x1:4", real=True)
    dl = sp.symbols("d1:4", real=True)
    a = sp.Symbol("a", positive=True)
    nx = sp.sqrt(sum(t * t for t in x))
    ok_cs = _lagrange_identity_ok(x, dl)
    ok = True
    for r in (a, -a):
        s = sp.sign(r)
        dstar = [RHO * s * t / nx for t in x]
        attained = sp.simplify((r + sum(u * v for u, v in zip(dstar, x))) ** 2 - r ** 2)
        # upper bound: (r + t)² ≤ (|r| + ρ‖x‖)² for |t| ≤ ρ‖x‖ — the larger endpoint
        ends = [sp.simplify((r + e) ** 2 - r ** 2) for e in (RHO * nx, -RHO * nx)]
        ok &= sp.simplify(attained - sp.Max(*ends)) == 0
        ok &= sp.simplify(attained - formula(r, nx, RHO)) == 0
    ok_interp = sp.simplify(formula(sp.Integer(0), nx, RHO) - RHO ** 2 * nx ** 2) == 0
    return bool(ok and ok_cs and ok_interp), f"Cauchy-Schwarz identity {ok_cs}, r = 0 value rho^2|x|^2: {ok_interp}"


@check("sharpness54.one_sharpness_margin", "Sec. 5.4 (l.2188), decreasing margin loss")
def one_sharpness_margin(shift=-1):
    """For ℓ decreasing, max_{‖δ‖≤ρ} ℓ(y⟨w + δ, x⟩) = ℓ(y⟨w, x⟩ + ``shift``·ρ‖x‖) (printed: shift = −1):
    y⟨δ, x⟩ ≥ −ρ‖x‖ (Lagrange identity, y² = 1) with equality at δ = −ρyx/‖x‖, checked symbolically
    for d = 3 and y = ±1; the logistic loss log(1 + e^{−t}) is decreasing (derivative < 0)."""
    x = sp.symbols("x1:4", real=True)
    w = sp.symbols("w1:4", real=True)
    nx = sp.sqrt(sum(t * t for t in x))
    t = sp.Symbol("t", real=True)
    ok = _lagrange_identity_ok(x, sp.symbols("d1:4", real=True))
    for y in (1, -1):
        dstar = [-RHO * y * u / nx for u in x]
        m_pert = sp.simplify(y * sum((a + b) * c for a, b, c in zip(w, dstar, x)))
        m = y * sum(a * c for a, c in zip(w, x))
        ok &= sp.simplify(m_pert - (m + shift * RHO * nx)) == 0
    dec = sp.simplify(sp.diff(sp.log(1 + sp.exp(-t)), t) + 1 / (1 + sp.exp(t))) == 0   # = −σ(−t) < 0
    return bool(ok and dec), f"minimizing margin perturbation = -rho|x| attained; logistic decreasing: {dec}"


# ------------------------------------------------------------------ eq. 7.4

@check("sharpness7.kendall_tau_eq74", "eq. 7.4 (l.3676)")
def kendall_tau_eq74(var=lambda M: sp.Rational(2 * (2 * M + 5), 9 * M * (M - 1))):
    """Eq. 7.4 over all M! rankings s of a fixed untied t (M = 5), exactly: τ(t, t) = 1, τ(t, −t) = −1,
    τ = (concordant − discordant)/C(M, 2), mean 0 and variance ``var``(M) (Kendall's null variance)
    — the reference distribution behind reading a measured τ."""
    import itertools

    M = 5
    t = list(range(M))

    def tau(a, b):
        s = sum(sp.sign(a[i] - a[j]) * sp.sign(b[i] - b[j]) for i in range(M) for j in range(i + 1, M))
        return sp.Rational(2, M * (M - 1)) * s

    vals = [tau(t, p) for p in itertools.permutations(t)]
    mean = sum(vals) / len(vals)
    v = sum(x * x for x in vals) / len(vals) - mean ** 2
    ok = tau(t, t) == 1 and tau(t, [-u for u in t]) == -1 and mean == 0 and sp.simplify(v - var(M)) == 0
    return bool(ok), f"mean {mean}, variance {v} (formula {var(M)})"


# ------------------------------------------------------------------ Prop. 7.8.1 (worst case, small ρ)

def _lp_dual_norm(g, p):
    """‖g‖_q with 1/p + 1/q = 1 (p ∈ {1, 2, ∞})."""
    if p == 1:
        return sp.Max(*[sp.Abs(x) for x in g])
    if p == 2:
        return sp.sqrt(sum(x ** 2 for x in g))
    return sum(sp.Abs(x) for x in g)


def _quad_max_on_unit_sphere(H, p):
    """max_{γ ≠ 0} γᵀHγ/‖γ‖_p² for a 2×2 symmetric H (p = 2: λ_max; p = ∞: box boundary, exactly)."""
    if p == 2:
        return max(H.eigenvals(), key=lambda e: float(e))
    assert p == sp.oo
    s = sp.Symbol("s", real=True)
    vals = []
    for i in (0, 1):   # edges |γ_i| = 1, γ_j = s ∈ [−1, 1] (γ and −γ give the same value)
        g = [1, s] if i == 0 else [s, 1]
        q = sp.expand((sp.Matrix(g).T * H * sp.Matrix(g))[0])
        vals += [q.subs(s, e) for e in (-1, 1)]
        vals += [q.subs(s, r) for r in sp.solve(sp.diff(q, s), s) if r.is_real and abs(r) <= 1]
    return max(vals, key=lambda e: float(e))


def _prop781(g, H, p, rho):
    """Prop. 7.8.1 as printed (l.4029), one batch: g = ∇L ⊙ |w|, H = ∇²L ⊙ |w||w|ᵀ.
    S_max^ρ = ‖g‖_q ρ + O(ρ²) if g ≠ 0; ρ²/2 · max_γ γᵀHγ/‖γ‖_p² + O(ρ³) if g = 0 and H is not
    negative definite; O(ρ³) (here: 0) if g = 0 and H is negative definite."""
    if any(x != 0 for x in g):
        return _lp_dual_norm(g, p) * rho
    if all(float(e) < 0 for e in H.eigenvals()):
        return sp.Integer(0)
    return rho ** 2 / 2 * _quad_max_on_unit_sphere(H, p)


def _exact_worst_case(V, g1, g2, rho, p):
    """max_{‖γ‖_p ≤ ρ} V(γ) for a polynomial V (2D), to 40 digits: all critical points of V on the
    boundary of the ℓ_p ball (circle: rational parametrization; box / diamond: the four edges, with their
    end points) and γ = 0. Valid when V has no other interior critical point in the ball, as in the
    cases of :func:`max_local_limit` (∇V ≠ 0 near 0, or ∇V = H_c γ + O(γ²) with H_c invertible)."""
    t = sp.Symbol("t", real=True)
    pieces = []   # (γ₁(t), γ₂(t), candidate t values)
    if p == 2:
        den = 1 + t ** 2
        e1, e2 = rho * (1 - t ** 2) / den, rho * 2 * t / den
        num = sp.numer(sp.together(sp.diff(V.subs({g1: e1, g2: e2}), t)))
        roots = [r for r in sp.Poly(num, t).nroots(n=40, maxsteps=200) if abs(sp.im(r)) < 1e-25]
        pieces.append((e1, e2, [sp.re(r) for r in roots]))
        pieces.append((-rho + 0 * t, 0 * t, [0]))                      # t = ∞
    else:
        edges = ([(s1 * rho + 0 * t, t) for s1 in (-1, 1)] + [(t, s2 * rho + 0 * t) for s2 in (-1, 1)]
                 if p == sp.oo else
                 [(s1 * (rho - t), s2 * t) for s1 in (-1, 1) for s2 in (-1, 1)])
        lo, hi = (-rho, rho) if p == sp.oo else (0, rho)
        for e1, e2 in edges:
            f = sp.expand(V.subs({g1: e1, g2: e2}))
            crit = [sp.re(r) for r in sp.Poly(sp.diff(f, t), t).nroots(n=40, maxsteps=200)
                    if abs(sp.im(r)) < 1e-25 and lo <= sp.re(r) <= hi] if sp.degree(f, t) > 1 else []
            pieces.append((e1, e2, [lo, hi, *crit]))
    vals = [sp.Integer(0)]
    for e1, e2, ts in pieces:
        vals += [sp.N(V.subs({g1: e1.subs(t, v), g2: e2.subs(t, v)}), 40) for v in ts]
    return max(vals)


@check("sharpness7.max_local_limit", "Prop. 7.8.1 (l.4027–4029)")
def max_local_limit(formula=_prop781):
    """Worst-case adaptive sharpness S_max^ρ(w, |w|) = max_{‖γ‖_p ≤ ρ} L(w + γ ⊙ |w|) − L(w) of concrete
    cubic losses in 2D, computed exactly (up to 40 digits) at ρ = 10⁻², 10⁻³, 10⁻⁴ by enumerating the
    critical points on the ℓ_p sphere, against ``formula``(∇L ⊙ |w|, ∇²L ⊙ |w||w|ᵀ, p, ρ). The
    proposition's order claim is that |S − formula| = O(ρ^{k+1}), k = 1 at a non-critical point
    (p = 1, 2, ∞: the dual norm), k = 2 at a critical point (p = 2, ∞; indefinite H_c), and S = O(ρ³)
    when H_c is negative definite (there S = 0 exactly for small ρ). Passes when |S − formula|/ρ^{k+1}
    does not grow from ρ = 10⁻² to 10⁻⁴ (by more than 2×); a wrong leading term makes it grow ~100×."""
    g1, g2 = sp.symbols("g1 g2", real=True)
    x1, x2 = sp.symbols("x1 x2", real=True)
    w0 = (sp.Rational(3, 2), sp.Rational(-1, 2))
    aw = [abs(c) for c in w0]
    d1, d2 = x1 - w0[0], x2 - w0[1]
    losses = {   # name: (L, ps)
        "noncritical": (x1 ** 2 * x2 + x2 ** 3 / 3 - 2 * x1 * x2 + x1 + x1 ** 2 + x2 ** 2, (1, 2, sp.oo)),
        "critical_indefinite": (2 * d1 ** 2 + 3 * d1 * d2 - d2 ** 2 + d1 ** 3 - 2 * d1 * d2 ** 2 + d2 ** 3,
                                (2, sp.oo)),
        "critical_neg_def": (-d1 ** 2 + d1 * d2 - 3 * d2 ** 2 + d1 ** 3 + d2 ** 3, (2,)),
    }
    rhos = [sp.Rational(1, 10 ** k) for k in (2, 3, 4)]
    ok, out = True, []
    for name, (L, ps) in losses.items():
        grad = [sp.diff(L, v).subs({x1: w0[0], x2: w0[1]}) for v in (x1, x2)]
        hess = sp.hessian(L, (x1, x2)).subs({x1: w0[0], x2: w0[1]})
        gc = [grad[i] * aw[i] for i in range(2)]
        Hc = sp.Matrix(2, 2, lambda i, j: hess[i, j] * aw[i] * aw[j])
        k = 1 if any(x != 0 for x in gc) else 2
        V = sp.expand(L.subs({x1: w0[0] + g1 * aw[0], x2: w0[1] + g2 * aw[1]}) - L.subs({x1: w0[0], x2: w0[1]}))
        for p in ps:
            r = [abs(_exact_worst_case(V, g1, g2, rho, p) - sp.N(formula(gc, Hc, p, rho), 40)) / rho ** (k + 1)
                 for rho in rhos]
            good = bool(r[2] <= 2 * r[0] + sp.Float("1e-20") and r[1] <= 2 * r[0] + sp.Float("1e-20"))
            ok &= good
            out.append(f"{name} p={p}: |S-F|/rho^{k + 1} = {', '.join(f'{float(x):.3g}' for x in r)}"
                       + ("" if good else " (grows)"))
    return ok, "; ".join(out)
