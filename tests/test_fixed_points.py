"""Fixed points (dynmem.fixed_points) of Hopfield-type networks with known attractors, and slow points."""

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize

import dynmem as dm
from dynmem.fixed_points import find_fixed_points

N, G = 16, 2.0
XI = scipy.linalg.hadamard(N).astype(float)[[1, 2, 3]]  # three orthogonal +-1 patterns
W = G * XI.T @ XI / N
# h = a xi is a fixed point of dh/dt = tanh(W h) - h (and of h -> tanh(W h)) iff a = tanh(G a)
A_STAR = scipy.optimize.brentq(lambda a: a - np.tanh(G * a), 0.1, 1.0)


def _trajectory_starts(step, seed=1):
    """States visited from random initial conditions ([SB]: starts from real trajectories)."""
    rng = np.random.default_rng(seed)
    H, out = rng.standard_normal((40, N)), []
    for k in range(400):
        H = step(H)
        if k % 40 == 0:
            out.append(H.copy())
    return np.concatenate(out)


def _check_patterns(fp):
    stable = fp.stable
    assert stable.shape[0] == 2 * XI.shape[0]  # +-xi_mu, and nothing else is stable
    overlaps = stable @ XI.T / (N * A_STAR)
    got = sorted(tuple(np.round(o, 9)) for o in overlaps)
    want = sorted(tuple(s * e) for s in (1.0, -1.0) for e in np.eye(3))
    assert got == want
    assert np.max(fp.residuals) <= 1e-12
    origin = np.flatnonzero(np.linalg.norm(fp.points, axis=1) < 1e-9)
    assert origin.size == 1 and fp.kinds[origin[0]] == "saddle" and fp.unstable_dims[origin[0]] == 3


def test_continuous_hopfield_attractors_found_and_classified():
    model = dm.CTRNN(W, np.zeros((N, 1)), np.zeros(N), np.ones(N), activation="tanh", leak=1.0)
    fp = find_fixed_points(model, starts=_trajectory_starts(lambda H: H + 0.01 * (np.tanh(H @ W.T) - H)),
                           noise=0.05, rng=0)
    _check_patterns(fp)
    i = int(np.argmax(np.abs(fp.stable @ XI[0])))
    # eigenvalues at a pattern: -1 + G (1 - a^2) on the pattern span (3), -1 on its complement
    ev = np.sort(fp.eigenvalues[[k for k in range(len(fp.kinds)) if fp.kinds[k] == "stable"][i]].real)
    np.testing.assert_allclose(ev, np.sort([-1 + G * (1 - A_STAR ** 2)] * 3 + [-1.0] * (N - 3)), atol=1e-10)
    assert not fp.discrete


def test_discrete_hopfield_map():
    model = dm.DiscreteRNN(W, np.zeros((N, 1)), np.zeros(N), np.ones(N), activation="tanh")
    fp = find_fixed_points(model, starts=_trajectory_starts(lambda H: 0.5 * H + 0.5 * np.tanh(H @ W.T)),
                           noise=0.05, rng=0)
    _check_patterns(fp)
    assert fp.discrete
    # the map's multipliers at a pattern: G (1 - a^2) (x3) and 0
    k = fp.kinds.index("stable")
    np.testing.assert_allclose(np.abs(fp.eigenvalues[k][:3]), G * (1 - A_STAR ** 2), atol=1e-10)


class Saddle1D:
    """dh/dt = h^2 + eps: no fixed point, a slow point at 0 with q = eps^2 / 2."""

    hidden, inputs = 1, 1

    def __init__(self, eps):
        self.eps = eps

    def vector_field(self, H, X):
        return H ** 2 + self.eps + 0 * X

    def jacobian(self, H, X):
        return 2 * H[:, :, None]


def test_slow_points_apart_and_fixed_points_of_a_user_model():
    fp = find_fixed_points(Saddle1D(1e-3), n_starts=5, rng=0)
    assert fp.points.shape == (0, 1)
    assert fp.slow_points.shape == (1, 1)
    assert abs(fp.slow_points[0, 0]) < 1e-6 and fp.slow_q[0] == pytest.approx(0.5e-6, rel=1e-6)
    fp = find_fixed_points(Saddle1D(-0.25), n_starts=10, init_scale=2.0, rng=0)  # h = +-1/2: -1/2 stable, 1/2 unstable
    np.testing.assert_allclose(np.sort(fp.points[:, 0]), [-0.5, 0.5], atol=1e-13)
    assert fp.kinds == ("stable", "unstable")


def test_validation():
    with pytest.raises(TypeError, match="vector_field"):
        find_fixed_points(object())
    with pytest.raises(ValueError, match="`starts`"):
        find_fixed_points(dm.DiscreteRNN.random(3, rng=0), starts=np.zeros((2, 4)))


# ---------------------------------------------------------------------------
# gated cells as maps, and the 3-bit flip-flop GRU ([SB], [GOL])


@pytest.mark.parametrize("cls", [dm.GRUCell, dm.LSTMCell])
def test_gated_step_is_the_compiled_cell_and_its_jacobian_matches_differences(cls):
    rng = np.random.default_rng(11)
    cell = cls.random(4, 2, scale=1.2, rng=rng)
    assert isinstance(cell, dm.models.DiscreteMap)
    S, X = rng.standard_normal((3, cell.state_size)), rng.standard_normal((3, 2))
    # one step of the map = one step of the compiled forward kernel
    np.testing.assert_allclose(cell.step(S, X), cell.final_state(X[:, None, :], S), rtol=0, atol=1e-15)
    J = cell.step_jacobian(S, X)
    # central differences at two steps: the O(h^2) error falls by 4, so extrapolate (Richardson)
    def cd(h):
        return np.stack([(cell.step(S + h * e, X) - cell.step(S - h * e, X)) / (2 * h)
                         for e in np.eye(cell.state_size)], axis=2)
    rich = (4 * cd(1e-4) - cd(2e-4)) / 3
    np.testing.assert_allclose(J, rich, rtol=0, atol=1e-10)


def _flipflop(rng, B, T, p=0.1):
    """3-bit flip-flop data [SB]: +-1 pulses on 3 channels (one at step 0 on each); targets hold the last pulse."""
    X = np.zeros((B, T, 3))
    pulses = rng.random((B, T, 3)) < p
    pulses[:, 0, :] = True
    X[pulses] = rng.choice([-1.0, 1.0], size=int(pulses.sum()))
    Y = np.zeros_like(X)
    last = np.zeros((B, 3))
    for k in range(T):
        last = np.where(X[:, k] != 0, X[:, k], last)
        Y[:, k] = last
    return X, Y


def _train_flipflop_gru(m=16, iterations=900, seed=0):
    """A GRU trained on the task through the library: the cell's layer forward/BPTT with a 3-output read-out."""
    rng = np.random.default_rng(seed)
    cell = dm.GRUCell.random(m, 3, rng=rng)
    C = rng.standard_normal((m, 3)) / np.sqrt(m)
    theta = np.concatenate([cell.flatten(), C.ravel()])
    n1 = cell.n_params
    mom, var = np.zeros_like(theta), np.zeros_like(theta)
    for it in range(1, iterations + 1):  # Adam, lr 1e-2
        X, Y = _flipflop(rng, 32, 40)
        cell, C = cell.unflatten(theta[:n1]), theta[n1:].reshape(m, 3)
        passed = cell.sequence_forward(X)
        r = passed.features @ C - Y
        dY = 2 * r / r.size
        g = cell.sequence_backward(passed, dY @ C.T)
        grad = np.concatenate([g.flat, np.einsum("btm,btj->mj", passed.features, dY).ravel()])
        mom = 0.9 * mom + 0.1 * grad
        var = 0.999 * var + 0.001 * grad ** 2
        theta -= 1e-2 * (mom / (1 - 0.9 ** it)) / (np.sqrt(var / (1 - 0.999 ** it)) + 1e-8)
    return cell.unflatten(theta[:n1]), theta[n1:].reshape(m, 3), float(np.mean(r * r))


def test_flipflop_gru_has_eight_stable_fixed_points():
    cell, C, loss = _train_flipflop_gru()
    assert loss < 1e-2
    X, _ = _flipflop(np.random.default_rng(1), 32, 60)
    states = cell.sequence_forward(X).features.reshape(-1, cell.hidden)
    starts = states[np.random.default_rng(2).choice(len(states), 64, replace=False)]
    fp = find_fixed_points(cell, starts=starts, noise=0.02, rng=3)
    assert fp.stable.shape[0] == 8, fp.message
    assert np.all(fp.residuals <= 1e-12)
    # one attractor per memory: the read-out signs of the 8 stable points are the 8 corners of {-1, 1}^3
    corners = {tuple(v) for v in np.sign(fp.stable @ C).astype(int)}
    assert corners == {(a, b, c) for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)}
    # each is a fixed point of the compiled cell too (independent of the step method used to find it)
    nxt = cell.final_state(np.zeros((8, 1, 3)), fp.stable)
    np.testing.assert_allclose(nxt, fp.stable, rtol=0, atol=1e-12)
