"""The joint label of coupled tasks on shared inputs beyond Σ_t (C_t − 1) = 3
(`numeric.replica.latent_joint_labels`) against an independent evaluation of the 4-dim orthant:
Plackett's identity ∂P/∂S_ij = ∂²P/∂μ_i∂μ_j = φ_ij(0, 0) P(x_rest > 0 | x_i = x_j = 0) integrated
along S(t) = blockdiag(S_aa, S_bb) + t S_off from the product of the groups' orthants
(scipy.integrate.quad; Φ₂ by Owen's T, scipy.special.owens_t), and at μ = 0 the joint channel
against the single tasks."""
from itertools import product

import numpy as np
import pytest
from mtsp.numeric.online import _class_diffs
from mtsp.numeric.replica import TaskChannel, plackett_joint_labels, reduced_basis
from scipy.integrate import quad
from scipy.linalg import block_diag
from scipy.special import ndtr, owens_t


def phi2_upper(m1, m2, s11, s12, s22):
    """P(x₁ > 0, x₂ > 0) for (x₁, x₂) ~ N((m1, m2), [[s11, s12], [s12, s22]]) by Owen's T."""
    a, b = m1 / np.sqrt(s11), m2 / np.sqrt(s22)   # P(X < a, Y < b), X = −x₁/… standardised
    rho = s12 / np.sqrt(s11 * s22)
    r = np.sqrt(1.0 - rho * rho)
    a = a if a != 0 else 1e-300
    b = b if b != 0 else 1e-300
    beta = 0.5 if a * b < 0 else 0.0
    return 0.5 * (ndtr(a) + ndtr(b)) - owens_t(a, (b - rho * a) / (a * r)) \
        - owens_t(b, (a - rho * b) / (b * r)) - beta


def orthant4_plackett(mu, S, na=2):
    """P(x > 0), x ~ N(μ, S) of dimension 4 cut into groups (0, 1) and (2, 3)."""
    a_idx, b_idx = list(range(na)), list(range(na, 4))
    off = np.zeros_like(S)
    off[np.ix_(a_idx, b_idx)] = S[np.ix_(a_idx, b_idx)]
    off = off + off.T
    base = S - off

    def orth2(idx, St):
        i, j = idx
        return phi2_upper(mu[i], mu[j], St[i, i], St[i, j], St[j, j])

    p0 = orth2(a_idx, base) * orth2(b_idx, base)

    def dP(t):
        St = base + t * off
        total = 0.0
        for i in a_idx:
            for j in b_idx:
                pair = [i, j]
                rest = [k for k in range(4) if k not in pair]
                Spp = St[np.ix_(pair, pair)]
                dens = np.exp(-0.5 * mu[pair] @ np.linalg.solve(Spp, mu[pair])) / (2 * np.pi * np.sqrt(np.linalg.det(Spp)))
                K = St[np.ix_(rest, pair)] @ np.linalg.inv(Spp)
                m = mu[rest] - K @ mu[pair]
                C = St[np.ix_(rest, rest)] - K @ St[np.ix_(pair, rest)]
                total += off[i, j] * dens * phi2_upper(m[0], m[1], C[0, 0], C[0, 1], C[1, 1])
        return total

    return p0 + quad(dP, 0.0, 1.0, epsabs=1e-14, epsrel=1e-13, limit=200)[0]


def joint_reference(chans, a, V0):
    Lb = block_diag(*[c.L for c in chans])
    S = Lb @ V0 @ Lb.T + np.diag(np.concatenate([[c.sigma ** 2] * c.d for c in chans]))
    Es = [reduced_basis(c.C) for c in chans]
    out = []
    for y in product(*[range(c.C) for c in chans]):
        Dy = block_diag(*[_class_diffs(c.C, k) @ E.T for c, k, E in zip(chans, y, Es)])
        out.append(orthant4_plackett(Dy @ Lb @ a, Dy @ S @ Dy.T))
    return np.array(out)


def random_channels(rng, classes, noise):
    return [TaskChannel(C, rng.normal(size=(C - 1, C - 1)) * 0.8, s, 2.0) for C, s in zip(classes, noise)]


@pytest.mark.parametrize("classes,noise", [((3, 3), (0.3, 0.0)), ((2, 2, 2, 2), (0.3, 0.0, 0.5, 0.2))])
def test_joint_labels_against_plackett_by_quad(classes, noise):
    """Two three-class tasks (one clean) and four two-class tasks: every joint label probability at
    random teacher means and a random joint residual V⁰ within 1e-12 of Plackett's integral by
    adaptive quad, and the Stein gradient within 1e-9 of central differences (step 1e-5, their own
    error ~1e-10) (measured: ≤ 6.1e-16 and ≤ 1.3e-10).  The margins of the table sum to one."""
    rng = np.random.default_rng(1)
    chans = random_channels(rng, classes, noise)
    R = sum(c.r for c in chans)
    X = rng.normal(size=(R, R))
    V0 = X @ X.T / R * 0.5 + 0.05 * np.eye(R)
    a = rng.normal(size=(4, R)) * 0.4
    p, g = plackett_joint_labels(chans, a, V0)
    err = max(np.abs(p[i] - joint_reference(chans, a[i], V0)).max() for i in range(len(a)))
    h, gerr = 1e-5, 0.0
    for j in range(R):
        e = np.zeros(R)
        e[j] = h
        fd = (plackett_joint_labels(chans, a + e, V0)[0] - plackett_joint_labels(chans, a - e, V0)[0]) / (2 * h)
        gerr = max(gerr, np.abs(fd.T - g[:, :, j]).max())
    print(f"P error {err:.2e}, gradient error {gerr:.2e}")
    assert np.abs(p.sum(axis=1) - 1.0).max() < 1e-12
    assert err < 1e-12
    assert gerr < 1e-9


def test_plackett_orthant4_against_quad():
    """`plackett_orthant4` (Gauss–Legendre in t, vectorised) against the adaptive scalar quad of the
    same identity with Owen's T, and its gradient against central differences, on strongly
    correlated groups (measured: 1.4e-11 and 1.5e-12; bounds 1e-10, 1e-11)."""
    from mtsp.numeric.replica import plackett_orthant4
    rng = np.random.default_rng(3)
    X = rng.normal(size=(4, 4))
    S = X @ X.T + 0.1 * np.eye(4)
    mu = rng.normal(size=(5, 4))
    p, g = plackett_orthant4(mu, S)
    ref = np.array([orthant4_plackett(m, S) for m in mu])
    h = 1e-5
    fd = np.stack([(plackett_orthant4(mu + h * e, S)[0] - plackett_orthant4(mu - h * e, S)[0]) / (2 * h)
                   for e in np.eye(4)], axis=1)
    print(f"P error {np.abs(p - ref).max():.2e}, gradient error {np.abs(fd - g).max():.2e}")
    assert np.abs(p - ref).max() < 1e-10
    assert np.abs(fd - g).max() < 1e-11


def test_joint_labels_against_scipy():
    """The joint labels of two three-class tasks with strongly correlated fields (within-task
    correlation 0.95, across tasks 0.88) against SciPy's Genz integrator (`genz_reference`,
    abseps 1e-7, seeded), an independent algorithm, at one node: the four labels computed as
    orthants and one from the margins, within 3e-7 (measured: 4.9e-8; at the worst label SciPy at
    abseps 1e-8 is 1.7e-9 away and at 1e-11 (60 s) 4e-10; the project's nested Genz route
    `orthant_with_mean` errs by 2e-5 there)."""
    from genz_reference import normal_cdf
    rng = np.random.default_rng(5)
    chans = random_channels(rng, (3, 3), (0.4, 0.1))
    X = rng.normal(size=(4, 4))
    V0 = X @ X.T / 4 + 0.1 * np.eye(4)
    a = rng.normal(size=(6, 4))[4:5] * 0.5
    p, _ = plackett_joint_labels(chans, a, V0)
    Lb = block_diag(*[c.L for c in chans])
    S = Lb @ V0 @ Lb.T + np.diag(np.concatenate([[c.sigma ** 2] * c.d for c in chans]))
    Es = [reduced_basis(c.C) for c in chans]
    err = 0.0
    for k, y in enumerate(product(*[range(c.C) for c in chans])):
        if y not in ((0, 0), (0, 1), (1, 0), (1, 1), (2, 2)):
            continue
        Dy = block_diag(*[_class_diffs(c.C, j) @ E.T for c, j, E in zip(chans, y, Es)])
        ref = normal_cdf(Dy @ Lb @ a[0], Dy @ S @ Dy.T, abseps=1e-7)
        err = max(err, abs(p[0, k] - ref))
    print(f"max |P − scipy| {err:.2e}")
    assert err < 3e-7


def _uncoupled_shared_channels(tasks: list):
    """The task channels and teacher Gram G of ``tasks`` on shared inputs at μ = 0 (related
    teachers, alignment 0.7; α = 2, λ = 0.1)."""
    from mtsp.numeric.erm import erm_problem
    from mtsp.setup import setup_from_dict
    s = setup_from_dict({"name": "j", "tasks": tasks, "teacher": {"alignment": 0.7},
                         "student": {"kind": "glm"},
                         "training": {"protocol": "erm", "ridge": 0.1, "coupling": 0.0,
                                      "inputs": "shared", "alpha": 2.0}})
    _, ch, _, G = erm_problem(s)
    return ch, G


def test_joint_channel_hats_at_mu0_are_the_single_tasks():
    """μ = 0 reduction of the joint loss channel of two three-class tasks (4-dim fields, 9 joint
    labels, prox under the full metric): at block-diagonal Q, M, V (related teachers: G_ab ≠ 0,
    so V⁰_ab ≠ 0 and the joint orthants are not products) the joint rule is the tensor product of
    the single-task rules, the prox separates and the joint table's margins are the tasks' labels,
    so the diagonal blocks of Q̂, V̂ and M̂ (own teacher columns) equal each task's own channel's
    hats (measured: 2.9e-13 relative)."""
    from mtsp.numeric.replica import ReplicaAccuracy, channel_hats, loss_channel_hats
    ch, G = _uncoupled_shared_channels([{"name": "A", "classes": 3, "noise": 0.3},
                                        {"name": "B", "classes": 3, "noise": 0.0}])
    acc = ReplicaAccuracy()
    blocks = []
    for t, c in enumerate(ch):
        M = 0.3 * c.L / np.abs(c.L).max()
        blocks.append((M @ M.T + (0.4 + 0.2 * t) * np.eye(2), M, (0.8 + 0.3 * t) * np.eye(2) + 0.1))
    Q, M, V = (block_diag(*[b[k] for b in blocks]) for k in range(3))
    n = 9
    joint = loss_channel_hats(ch, G, Q, M, V, acc, n)
    err = 0.0
    for t, c in enumerate(ch):
        alone = channel_hats(c, *blocks[t], acc, n)
        sl = slice(2 * t, 2 * t + 2)
        for J, A in zip(joint, alone):
            err = max(err, np.abs(J[sl, sl] - A).max() / np.abs(A).max())
    print(f"max relative difference {err:.2e}")
    assert err < 3e-12


@pytest.mark.parametrize("classes,tasks,labels,dims", [(6, 3, 216, 15), (2, 8, 256, 8)])
def test_joint_label_beyond_the_reach_is_refused_naming_the_coupling(classes, tasks, labels, dims):
    """Coupled tasks on shared inputs with more than MAX_JOINT_LABELS (128) joint labels — three
    six-class tasks (216 labels, Σ_t (C_t − 1) = 15), eight two-class tasks (256, Σ = 8) — are
    refused before any work, naming `training.coupling` and both counts."""
    from mtsp.errors import ReachError
    from mtsp.numeric.erm import MAX_JOINT_LABELS, solve_erm
    from mtsp.setup import setup_from_dict
    assert labels > MAX_JOINT_LABELS
    s = setup_from_dict({"name": "j", "tasks": [{"name": f"T{k}", "classes": classes, "noise": 0.3}
                                                for k in range(tasks)],
                         "teacher": {"alignment": 0.5}, "student": {"kind": "glm"},
                         "training": {"protocol": "erm", "ridge": 0.1, "coupling": 1.0,
                                      "inputs": "shared", "alpha": 2.0}})
    with pytest.raises(ReachError) as err:
        solve_erm(s)
    assert err.value.key == "training.coupling"
    assert f"{labels} joint labels" in str(err.value) and f"= {dims} dimensions" in str(err.value)


@pytest.mark.parametrize("noises,nodes", [((0.3, 0.0), 101), ((0.3, 0.0, 0.5), 21)])
def test_joint_train_error_at_mu0_is_the_single_tasks(noises, nodes):
    """train_error of the tensor route's joint channel (two-class tasks, Σ = 2, 3;
    `replica.joint_train_errors_by_boundaries`) at block-diagonal Q, M, V (μ = 0 structure, related
    teachers: the joint labels are not products) equals each task's own train_error in margin
    coordinates (`train_error_by_margins`, ≤ 2e-9).  Measured: ≤ 2.4e-11 (Σ = 2, 101 nodes, 0.3 s;
    Σ = 3, 21 nodes, 7 s at load 11); the grid indicator it replaces erred by 3.6e-4 at the μ = 1
    fixed point of two such tasks (α = 2, λ = 0.1: 0.060218 against 0.060577)."""
    from mtsp.numeric.replica import ReplicaAccuracy, channel_hats, loss_channel_hats
    ch, G = _uncoupled_shared_channels([{"name": "ABC"[t], "classes": 2, "noise": noise}
                                        for t, noise in enumerate(noises)])
    acc = ReplicaAccuracy()
    blocks = []
    for t, c in enumerate(ch):
        M = (0.3 + 0.1 * t) * c.L / np.abs(c.L).max()
        blocks.append((M @ M.T + (0.4 + 0.2 * t) * np.eye(1), M, (0.8 + 0.9 * t) * np.eye(1)))
    Q, M, V = (block_diag(*[b[k] for b in blocks]) for k in range(3))
    joint = loss_channel_hats(ch, G, Q, M, V, acc, nodes, train=True)[3]
    err = max(abs(joint[t][1] - channel_hats(c, *blocks[t], acc, 201, train=True)[4]) for t, c in enumerate(ch))
    print(f"largest |Δ train_error| {err:.2e}")
    assert err < 3e-10
