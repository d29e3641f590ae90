"""Every line reference in ERRATA.md points at what it cites in the thesis text (issue 17).

A reference is "line N", "lines N–M", "l.N", "l.N, M", "l.N/M", "lines N and M" (any mix). Each one
is checked exactly (no ±k window): the cited line of ``thesis.txt`` must contain

* the equation's own tag ``(X.Y)$$`` / ``\\tag{X.Y}$$`` when the reference directly follows an
  equation number ("eq. (5.14), line 2454", "(5.15) line 2500", "eq. 6.20 (line 3281)",
  "Eq. (6.13), l.3261") and has no entry in :data:`TABLE`;
* otherwise the substring given for it in :data:`TABLE`, keyed by a unique snippet of ERRATA.md that
  contains the reference. For a range N–M both end lines are checked (first and last substring).

``test_every_reference_is_checkable`` needs no thesis: it fails on a reference that is neither
automatic nor in the table, on a table entry whose snippet no longer occurs exactly once (or holds no
reference), and on a line-reference-like phrase that the parser does not read (so a new ERRATA entry
must use a checkable form and get a table row). The thesis is looked up at ``<repo>/../shared/thesis/
thesis.txt`` (the layout of the working tree; a clean clone elsewhere, e.g. ``.ci/run`` in /tmp, has no
``shared/`` next to it) or at ``$TOYMODELS_THESIS``; without it the content test is skipped.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ERRATA = ROOT / "ERRATA.md"
THESIS = Path(os.environ.get("TOYMODELS_THESIS") or ROOT.parent / "shared" / "thesis" / "thesis.txt")

_NUM = r"\d{3,4}(?:\s*[–-]\s*\d{3,4})?"
#: a line reference: keyword, then one or more line numbers / ranges joined by "," "/" "and"
REF = re.compile(rf"\b(?:lines?|l\.)\s*({_NUM}(?:\s*(?:,|/|and)\s*(?:l\.)?\s*{_NUM})*)", re.I)
#: anything that looks like a line reference (must be covered by a REF match or be in NOT_THESIS_LINES)
LOOSE = re.compile(r"\b(?:lines?|ll?\.)\s*\d", re.I)
#: an equation number immediately before a reference: "(5.14), ", "eq. 6.20 (", "eqs. (5.15) "
EQ_BEFORE = re.compile(r"(?:\((\d\.\d{1,2})\)|(?<![\d.])eqs?\.\s*(\d\.\d{1,2}))\s*[,(]?\s*$", re.I)

#: line-number phrases that are not thesis.txt lines
NOT_THESIS_LINES = ("Alg. 4, line 2 ",)

#: references whose cited line is known to be wrong but whose ERRATA section belongs to another
#: change (Ch. 2 CO section): snippet -> reason. Strict xfail: fixing the line makes the test fail
#: until the entry is removed here.
KNOWN_WRONG: dict[str, str] = {}

# snippet of ERRATA.md (unique, contains the reference) -> {item: substring | (first, last) for a range}
TABLE: dict[str, dict[str, object]] = {
    # ---- torch-layer recipes (Ch. 2 settings)
    "Sec. 2.9, l.610": {"610": "with the maximum learning rate 0.3"},
    "App. 2.11.4, l.800": {"800": "suffered from catastrophic overfitting"},
    # ---- Ch. 3, Table 3.7 (the ℓ₂ ablation's η^rand)
    "Table 3.7's ℓ₂ ablation (l.1414)": {"1414": "where the step 7 in Algorithm 3 is"},
    "is step 6 (l.1013)": {"1013": r"$\rho \leftarrow \text{Uniform}(\{-1, 1\})$"},
    # ---- Ch. 5, DLN implicit bias (Thm 5.9.2, 5.9.3)
    "exponent constant, line 2432": {"2432": r"\alpha_{n\text{-SAM}} = \alpha \odot \exp\left(-\frac{2\rho}{n^2}"},
    "exponent constant, line 2486": {"2486": r"\alpha_{1\text{-SAM}} = \alpha \odot \exp\left(-\frac{8\rho}{n}"},
    "exactly as defined at line 2524": {"2524": r"I_{1\text{-SAM}}(t) = \frac{1}{n}"},
    "ascent point, line 2492": {"2492": r"(\mathbf{1} + 4\rho r_i(t) \tilde{x}_i)"},
    "(also l.2504)": {"2504": r"(\mathbf{1} + 4\rho r_i(t) \tilde{x}_i)^2"},
    "expansion of `r_sam,i`, line 2504": {"2504": r"8\rho r_i(t)"},
    "the bound on ρ, line 2488": {"2488": r"4R^2"},
    "(derivation lines 2514–2518)": {"2514–2518": (r"1 + 16\rho^2 r_i(t)", r"\rho \leq \frac{1}{4R^2")},
    "expansion of `r_sam`, line 2468": {"2468": r"r_{sam}(t) &= \tilde{X} w_{sam}(t)^2 - y"},
    "Residual norm vs. loss: line 2434": {"2434": r"\|r_s\|^2 = nL(w(s))"},
    "Thm 5.5.1 line 2271": {"2271": r"\|\Delta_{1\text{-SAM}}\|_1 &\approx d \int_0^\infty L(w(s)) ds"},
    "lines\n  2579–2583 repeat": {"2579–2583": (r"\approx d \int_0^\infty \rho_s L(w(s))",
                                                r"\approx d \int_0^t L(w(s)) ds")},
    "Lines 2420 and 2456 write the KKT": {"2420": r"\nabla \phi_\alpha(w) = X^\top \nu",
                                          "2456": r"\nabla \phi_\alpha(w) = X^\top \nu"},
    "in place of `α` at line 2456": {"2456": r"\nabla \phi_\alpha(w) = X^\top \nu"},
    "Line 2490: `w_sam^(i)(t)": {"2490": r"w_{sam}^{(i)}(t) \in \mathbb{R}^d"},
    "Line 2579 (varying ρ_s)": {"2579": r"= \alpha e^{-\rho \Delta_{1\text{-SAM-}\rho_s}"},
    "Footnote 2 (line 2237)": {"2237": "the signs of u_i and v_i will not change"},
    "interpolation claim (line 2420": {"2420": "interpolates between the ℓ_1 and ℓ_2 norms"},
    # ---- Ch. 5, DLN experiments
    "(Fig. 5.15 caption, l.2577": {"2577": "we switch between the methods after 10k iterations"},
    "radii, l.2568": {"2568": r"$\rho_{1\text{-SAM}} = 0.175$, and $\rho_{\text{GD} \rightarrow 1\text{-SAM}} = 10.0$"},
    "Fig. 5.14 caption, l.2564": {"2564": r"$\gamma = 15/d$ for all methods"},
    "marginal improvements\" (line 2566)": {"2566": "n -SAM leads only to marginal improvements"},
    # ---- Ch. 2, Lemma 1
    "(proof, line 515)": {"515": "is also a random variable since it depends on η_i"},
    "Lemma 1 (lines 367 and 503)": {"367": "Lemma 1. (Effect of the random step)",
                                    "503": "Lemma 1. (Effect of the random step)"},
    "on ηᵢ\" (line 515)": {"515": r"$\text{sign}(\nabla_i)$ is also a random variable"},
    "(lines 367, 503)": {"367": r"$\alpha \in [0, 2\varepsilon]$", "503": r"$\alpha \in [0, 2\varepsilon]$"},
    "(lines 517–527)": {"517–527": (r"\text{sign}(\nabla_i) = 1",
                                    r"-\frac{1}{6\varepsilon}\alpha^3 + \frac{1}{2}\alpha^2 + \frac{1}{3}\varepsilon^2")},
    "range of the bound (line 375)": {"375": r"[1/\sqrt{3}\sqrt{d}\varepsilon, \sqrt{d}\varepsilon]"},
    "high-dimensional inputs\" (line 375)": {"375": "increasingly tight"},
    "\"≈ 7/255\" (line 383": {"383": r"\approx 7/255\sqrt{d}"},
    # ---- Ch. 2, Lemma 2
    "(thesis lines 439–441, 445)": {"439–441": ("k non-overlapping image patches",
                                                r"u_{ij} \max\{\langle w_i, z_j \rangle + b_i, 0\}"),
                                    "445": "Lemma 2. (Gradient alignment at initialization)"},
    "for ε ∈ [0, 0.1]\" (line 594)": {"594": r"very high values in $[0.7, 1.0]$ for $\varepsilon \in [0, 0.1]$"},
    "compared to E‖z‖₂\" (line 451)": {"451": "The lower bound is close to 1 when ε is small compared to"},
    "(lines 539–541)": {"539–541": ("the law of large number ensures", r"\lim_{k, m \rightarrow \infty} \cos")},
    "denominator of eq. 2.9 (line 545)": {"545": r"= 0.5 p \sigma_w^2"},
    "σ⁴(p² + 2p)` (line 561)": {"561": r"\sqrt{p^2 + 2p}"},
    "(lines 549, 557)": {"549": r"\leq e^{-\frac{\langle z, w \rangle^2}{2\varepsilon^2 \|w\|_2^2}}",
                         "557": r"{2\varepsilon^2 \|w\|_2^2}"},
    "Cauchy–Schwarz step (line 560)": {"560": r"\mathbb{E}_w \left[\|w\|_2^4 \right]^{1/2}"},
    "E[…]^{1/2}` (line 576)": {"576": r"1 - \sqrt{1 + \frac{2}{p}}"},
    "plotted in Fig. 2.9 (line 591)": {"591": "Our first lower bound"},
    "for p ≥ 2 (line 585)": {"585": r"we used that $p \geq 2$"},
    "`0.25pσ_w²` branch (line 568)": {"568": r"= 0.25p\sigma_w^2"},
    "cannot be smaller than 0.5\" (line 451)": {"451": "gradient alignment cannot be smaller than 0.5"},
    "increase k and m\" (line 596)": {"596": "this variance is significantly reduced when we increase the parameters k and m"},
    # ---- Ch. 2, CNN model / attacks
    "Line 379: the second-order": {"379": r"\left\langle \delta, \nabla_{xx}^2 f(x) \delta \right\rangle"},
    "Line 408: FGSM (eq. 2.2)": {"408": "is obtained as a closed-form solution of the following optimization problem"},
    "Line 412: gradient alignment": {"412": "it is equal to one for models linear inside the ℓ_∞ -ball"},
    # ---- Ch. 6, ReLU net 1D
    "Line 3190 / Fig. 6.12 caption (l.3556": {"3190": "long linear warmup", "3556": r"($500\times$ vs. $400\times$)"},
    "Line 3155: the feature-sparsity": {"3155": "Pearson’s correlation coefficient is at least 0.95"},
    "Line 3155: rank of": {"3155": "fresh samples equal to the number of parameters"},
    "Line 3190: \"training loss": {"3190": "the training loss stabilizes around $10^{-0.5}$"},
    # ---- Ch. 6, quad1d (eq. 6.6, 6.22, 6.7 are automatic)
    "Prop. 6.7.1, l.3293–3297": {"3293–3297": (r"any initialization in $\theta_0 \in (0, \theta_*)$",
                                               "Also, almost surely, there exists $t, k > 0$")},
    "eqs. 6.28–6.29 (l.3331–3335)": {"3331–3335": (r"\frac{2(1 + \gamma)^{3/2}}{3\sqrt{3}\gamma} \quad (6.28)$$",
                                                   "(6.29)$$")},
    "eqs. 6.47–6.48 (l.3445, 3449)": {"3445": r"P(\theta) < -1. \quad (6.47)$$", "3449": "(6.48)$$"},
    "Lemma 10 (proof, l.3353)": {"3353": r"\epsilon_o = \min\{(\gamma_{\min}^{-1})/3, 0.02\}"},
    # ---- Ch. 6, SDE
    "Lines 3065/3253": {"3065": r"\frac{1}{n(n-1)} \mathbb{E} \|\xi_t\|^2 = 2\mathcal{L}(\theta_t)",
                        "3253": r"\frac{1}{n(n-1)} \mathbb{E} \|\xi_t\|^2 = 2\mathcal{L}(\theta_t)"},
    "Line 3051: \"mini batches": {"3051": "mini batches of size $B > 1$ would lead to similar analysis"},
    "Line 3513: \"c is a constant": {"3513": "c is a constant that we select for each setting separately"},
    # ---- Ch. 7, DLN sharpness
    "u and v swapped (l.3791)": {"3791": r"c_i = \sqrt{|v_i|/|u_i|}$ for $1 \leq i \leq d$"},
    "eq. 7.8–7.9 (l.4087, l.4091)": {"4087": "(7.8)$$", "4091": "(7.9)$$"},
    "local-sharpness constants (l.3791–3795)": {"3791–3795": (r"*local* (i.e., $\rho \rightarrow 0$) sharpness",
                                                              r"= \|\boldsymbol{\beta}\|_\infty")},
    "Prop. 7.8.2 (l.4069)": {"4069": r"\lim_{\rho \rightarrow 0} \frac{2}{\rho^2} S_{avg}^\rho"},
    # ---- Ch. 3, Square Attack
    "Sup. 3.8.3 (l.1282–1288)": {"1282–1288": ("window size $h = 2$", "(-1)^{kl} = c(-1 + 1 - 1 + 1) = 0")},
    "step (iii) (l.1296–1300)": {"1296–1300": ("using the Khintchine inequality", "V_{(r,s)} = ")},
    "Alg. 4, line 2 (l.1309)": {"1309": r"2 sample uniformly $r, s \in \{0, \dots, w\}"},
    "Prop. 3.5.1 (l.1272–1276)": {"1272–1276": (r"\frac{2}{\gamma_t \tilde{C}}", r"\frac{1}{T} \sum_{t=0}^T")},
    "* l.961 (the p schedule)": {"961": "we halve the value of p"},
    "* l.1377 (p = 0.05": {"1377": "we used $p = 0.05$ and $p = 0.1$ for the l_∞ - and l_2 - versions"},
    "CIFAR value p = 0.3,\n  l.1390": {"1390": "we used $p = 0.3$ for all models on MNIST and CIFAR-10"},
    "* l.1067: E‖δ‖₂²": {"1067": r"\mathbb{E}\|\delta_t\|_2^2 \leq 4c\varepsilon^2h^2"},
    # ---- Ch. 5, SAM convergence
    "first bound (l.2753–2755)": {"2753–2755": ("Theorem 5.10.5", r"\frac{4}{\beta\sqrt{T}} (L(w_0) - L_*)")},
    "as in Thm 5.6.1, l.2337": {"2337": r"\frac{4\beta}{\sqrt{T}} (L(w_0) - L_*)"},
    "Lemma 4, second part (l.2643)": {"2643": r"\gamma\beta(2 - \rho\beta) \leq 2"},
    "The proof (l.2665–2669)": {"2665–2669": ("co-coercivity", "where we have used Lemma 3")},
    "the remark on l.2617": {"2617": "For convex functions"},
    "Thm 5.10.2 (l.2673–2675)": {"2673–2675": ("Theorem 5.10.2.", r"\frac{1}{T} \sum_{t=0}^T \|\nabla L(w_t)\|^2")},
    "as in its proof (l.2681)": {"2681": r"summing these inequalities for $t = 0, \dots, T - 1$"},
    "is necessary\" (l.2614)": {"2614": r"The condition $\rho < 1/\beta$ is necessary"},
    "Thm 5.10.5, second part (l.2757)": {"2757": "In addition, under (A2), with step sizes"},
    "Thm 5.10.7, l.2339/2901": {"2339": "In addition, under (A3), with step sizes",
                                "2901": "In addition, under (A3), with step sizes"},
    "Lemma 5 (l.2769)": {"2769": r"\frac{\beta^2 \rho^2 \sigma^2}{2}"},
    "Lemma 6 (l.2793)": {"2793": r"\gamma \beta \sigma^2 (\gamma + \rho^2 \beta)"},
    "Thm 5.10.6 (l.2835)": {"2835": r"4T\sigma^2 \beta (\gamma + \rho^2 \beta) / b"},
    "PL part (l.2609)": {"2609": r"\left(1 - \frac{\gamma(1-\rho\beta)\mu}{2}\right)^T"},
    "strongly convex part (l.2711)": {"2711": r"(2\rho + 1) \|w_0 - w_*\|^2"},
    "(m-SAM, l.2843, l.2871)": {"2843": "Lemma 7.", "2871": "Lemma 8."},
    "it is derived (l.2907)": {"2907": "Theorem 5.6.1 is a direct consequence of Theorem 5.10.7"},
    # ---- Ch. 5, Fig. 5.7
    "- l.2288 gives neither": {"2288": "The sparsity-inducing bias of SAM for a simple ReLU network"},
    "in the CIFAR grid, l.2913": {"2913": r"\rho \in \{0.025, 0.05, 0.1, 0.2, 0.3, 0.4\}"},
    "Footnote 3 (l.2292)": {"2292": "no substantial difference between 1-SAM and n -SAM"},
    "combination of ReLUs\" (l.2288)": {"2288": "sparse combination"},
    # ---- Ch. 7, linear / ReLU classifiers
    "½ tr(∇̃²L(w))\" (l.3808)": {"3808": r"is approximated well by $\frac{1}{2}\text{tr}(\tilde{\nabla}^2 L(\mathbf{w}))$"},
    "Fig. 7.1 / l.3696": {"3696": "adaptive sharpness remains sensitive to the *scale* of the classifier"},
    "multiplicative reparametrizations (l.3656)": {
        "3656": r"S_{avg}^\rho(\mathbf{w} \odot \mathbf{c}, |\mathbf{w} \odot \mathbf{c}|) = S_{avg}^\rho(\mathbf{w}, |\mathbf{w}|)"},
    "Sec. 5.4, l.2188": {"2188": "m -sharpness cannot be a universal quantity"},
    "Fig. 7.7 / l.3808": {"3808": r"the correlation is not perfect (around $\tau = 0.8$)"},
    # ---- Ch. 6, Fig. 6.5, 6.8, 6.9
    "Fig. 6.8 caption (l.3237)": {"3237": "The SGD dynamics (blue points)"},
    "with n = 1 (l.3239)": {"3239": "with one sample in two dimensions"},
    "Fig. 6.9 caption (l.3518, l.3522)": {"3518": "gradient flow discretization exhibits",
                                          "3522": "gradient flow discretization exhibits no rank minimization"},
    "Fig. 6.5 (l.3192)": {"3192": "the training loss stabilizes around $10^{-1.5}$"},
    "- l.3155 \"φ_θ(X)": {"3155": "fresh samples equal to the number of parameters"},
    # ---- Ch. 6, Lemma 11 / 13 repetition
    "- Lemma 13 (l.3461)": {"3461": "Lemma 13. For any $\\theta \\in I_1 \\cup I_2$"},
    "claim of Lemma 11 (l.3389)": {"3389": "Lemma 11. For any $\\theta \\in I_1 \\cup I_2$"},
    "6.36, 6.38, 6.39, up to l.3417": {"3417": "(6.39)"},
    "(lower bound from\n  l.3463": {"3463": "Lower Bound:"},
    "upper bound from l.3473": {"3473": "Upper Bound: From (6.39)"},
    "Lemma 14's proof (l.3485)": {"3485": "For the upper bound, from and (6.36)"},
    # ---- Ch. 7, Prop. 7.8.1
    "- Prop. 7.8.1 (l.4027–4029)": {"4027–4029": ("Proposition 7.8.1.", r"\lim_{\rho \rightarrow 0} S_{max,p}^\rho")},
    # ---- Ch. 2, CO methods in the single-layer CNN (co-study)
    "## Ch. 2 (l.472, l.486; App. 2.11.5)": {"472": r"$3\times$ slowdown on an NVIDIA V100 GPU",
                                             "486": "do not rely on double backpropagation"},
    "- l.825–829: with tuned λ": {"825–829": ("First of all, we note that the originally proposed",
                                              "it is invariant to the gradient norm")},
    "- l.472 (\"a 3× slowdown": {"472": r"$3\times$ slowdown on an NVIDIA V100 GPU"},
    "and l.486 (double backprop": {"486": "leads to an increased runtime due to the use of double backpropagation"},
    # ---- Ch. 2, CO in the single-layer CNN
    "- l.628: the CNN's": {"628": "Training details for the single-layer CNN"},
    "- l.425 / Fig. 2.11": {"425": r"$\varepsilon = 10/255$"},
    "- l.437: zeroing": {"437": "0.71"},
    "- l.437 / Fig. 2.6": {"437": "in its magnitude together with its outgoing weights"},
    "- l.437 \"filter w_4": {"437": "preserves its direction"},
    "- l.462 / Fig. 2.7": {"462": "has mostly negative values"},
    "- l.669 / Fig. 2.12": {"669": "w_4 significantly increases in magnitude after catastrophic overfit"},
    "- l.671 / Fig. 2.13": {"671": "only the last filter w_4 is sensitive to the noise"},
}


def _items(group: str) -> list[str]:
    return [re.sub(r"\s+", "", x) for x in re.findall(_NUM, group)]


def _lines(item: str) -> tuple[int, ...]:
    a, _, b = item.partition("–") if "–" in item else item.partition("-")
    return (int(a), int(b)) if b else (int(a),)


def _references(text: str) -> list[dict]:
    """Every REF match of ``text``, each with its table snippet or its automatic equation number."""
    spans = {}
    for snippet in TABLE:
        i = text.find(snippet)
        spans[snippet] = (i, i + len(snippet), text.count(snippet))
    refs = []
    for m in REF.finditer(text):
        owners = [s for s, (a, b, c) in spans.items() if c == 1 and a <= m.start() and m.end() <= b]
        eq = EQ_BEFORE.search(text[max(0, m.start() - 30):m.start()])
        items = _items(m.group(1))
        auto = (eq.group(1) or eq.group(2)) if eq and len(items) == 1 and len(_lines(items[0])) == 1 else None
        refs.append(dict(ref=m.group(0), pos=m.start(), items=items, owners=owners, auto=auto))
    return refs


def _cases() -> list:
    text = ERRATA.read_text(encoding="utf-8")
    cases = []
    for r in _references(text):
        if r["owners"]:
            (snippet,) = r["owners"][:1]
            for item in r["items"]:
                exp = TABLE[snippet].get(item)
                if exp is None:
                    continue           # reported by test_every_reference_is_checkable
                lines = _lines(item)
                subs = exp if isinstance(exp, tuple) else (exp,) * len(lines)
                marks = ([pytest.mark.xfail(strict=True, reason=KNOWN_WRONG[snippet])]
                         if snippet in KNOWN_WRONG else [])
                for ln, sub in zip(lines, subs):
                    cases.append(pytest.param(ln, sub, id=f"{r['ref']}@{ln}", marks=marks))
        elif r["auto"]:
            eq = re.escape(r["auto"])
            (ln,) = _lines(r["items"][0])
            cases.append(pytest.param(ln, re.compile(rf"(?:\({eq}\)|\\tag\{{{eq}\}})\s*\$\$"),
                                      id=f"{r['ref']}@eq.{r['auto']}"))
    return cases


CASES = _cases()


def test_every_reference_is_checkable():
    text = ERRATA.read_text(encoding="utf-8")
    refs = _references(text)
    problems = []
    for snippet in TABLE:
        n = text.count(snippet)
        if n != 1:
            problems.append(f"table snippet {snippet!r} occurs {n} times in ERRATA.md (must be once)")
        elif not any(snippet in r["owners"] for r in refs):
            problems.append(f"table snippet {snippet!r} contains no line reference")
        elif set(TABLE[snippet]) != {it for r in refs if snippet in r["owners"] for it in r["items"]}:
            problems.append(f"table snippet {snippet!r}: items {sorted(TABLE[snippet])} do not match the "
                            f"reference(s) {[r['ref'] for r in refs if snippet in r['owners']]}")
    for r in refs:
        where = f"{r['ref']!r} at ERRATA.md line {text.count(chr(10), 0, r['pos']) + 1}"
        if len(r["owners"]) > 1:
            problems.append(f"{where} is in several table snippets {r['owners']}")
        elif not r["owners"] and not r["auto"]:
            problems.append(f"{where}: no table entry and no equation number right before it")
        for item in r["items"]:
            lines = _lines(item)
            if len(lines) == 2 and not lines[0] < lines[1]:
                problems.append(f"{where}: empty range {item}")
    covered = [(r["pos"], r["pos"] + len(r["ref"])) for r in refs]
    ignored = [(i, i + len(p)) for p in NOT_THESIS_LINES for i in [text.find(p)] if i >= 0]
    for m in LOOSE.finditer(text):
        if not any(a <= m.start() < b for a, b in covered + ignored):
            problems.append(f"unparsed line reference {text[m.start():m.start() + 30]!r} at ERRATA.md line "
                            f"{text.count(chr(10), 0, m.start()) + 1}")
    assert not problems, "\n".join(problems)
    assert len(CASES) >= 100, len(CASES)


@pytest.mark.skipif(not THESIS.is_file(), reason=f"thesis text not found at {THESIS} (needs the shared/ "
                                                  "folder next to the repository, or $TOYMODELS_THESIS)")
@pytest.mark.parametrize("line,expected", CASES)
def test_reference_points_at_cited_content(line, expected):
    lines = THESIS.read_text(encoding="utf-8").splitlines()
    assert 1 <= line <= len(lines), f"line {line} is past the end of the thesis ({len(lines)} lines)"
    text = lines[line - 1]
    if isinstance(expected, re.Pattern):
        assert expected.search(text), f"thesis line {line} does not carry the equation tag /{expected.pattern}/: {text[:200]!r}"
    else:
        assert expected in text, f"thesis line {line} does not contain {expected!r}: {text[:200]!r}"
