"""Stacked discrete models: layer l reads layer l-1's hidden sequence; one read-out on top.

For layers ``F_1 .. F_L`` (any discrete models on the
:class:`~dynmem.models.SequenceLayer` contract: :class:`~dynmem.models.DiscreteRNN`,
:class:`~dynmem.models.EulerRNN`, :class:`~dynmem.gated.GRUCell`,
:class:`~dynmem.gated.LSTMCell`, :class:`~dynmem.ssm.DiscreteDiagonalSSM`) and a
layer-wise nonlinearity ``phi`` (an activation name, ``"identity"`` by default)::

    u^0_k = x_k
    s^l_{k+1} = F_l(s^l_k, u^{l-1}_k),      f^l_k = feat_l(s^l_{k+1})         l = 1 .. L
    u^l_k = phi(f^l_k)                                                          l < L
    y_k   = g_L(s^L_{k+1}, u^{L-1}_k)      (the top layer's own read-out)

``feat_l`` is the layer's hidden state (``h`` for an RNN, GRU or LSTM - not
the LSTM's cell state) or, for a diagonal SSM, its flat state ``(Re h, Im h)``.
This is ``torch.nn.RNN``/``GRU``/``LSTM`` with ``num_layers = L`` (phi the
identity, read-out ``c`` of the top layer) and the stacked SSMs with
layer-wise nonlinearity of Wang and Xue (NeurIPS 2023); docs/theory.md
section 9.  The read-out vectors of the lower layers are not used (their
gradient is zero); they stay in ``flatten()`` so each layer keeps its own
parameter layout.

The stack is a :class:`~dynmem.models.DiscreteModel` on the flat state
``(s^1, .., s^L)``, so :func:`dynmem.memory.memory_function` takes its
memory (Def. 3.1 applies to the whole input-output map unchanged), a
:class:`~dynmem.models.Trainable` one, so :func:`dynmem.train` trains it,
a :class:`~dynmem.models.DiscreteMap` (``step``, ``step_jacobian``), so
fixed points and Lyapunov spectra of a multi-layer network are those of the
whole map, and, when every layer is linear and ``phi`` the identity, a
:class:`~dynmem.models.LinearSystem` (system norms, exact memory capacity).

BPTT through the stack (:meth:`Stack.value_and_grad`): the loss's
cotangent enters the top layer's read-out; each layer runs its own compiled
backward sweep with a cotangent on every state (the family's kernel,
``sequence_backward``) and returns ``dL/du^{l-1}``, which becomes the
cotangent of the features below, ``dL/df^{l-1} = phi'(f^{l-1}) dL/du^{l-1}``.
The time loops are the families' numba kernels; Python only loops over layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import as_float_array, check_choice, describe
from ..activations import available_activations, get_activation
from ..recurrences import sequence_loss
from .contract import DiscreteModel, LayerGradient, LayerPass, SequenceLayer

__all__ = ["Stack", "StackTrajectory", "StackGradient"]

_LOSSES = ("mse", "sse")


def _is_linear(layer) -> bool:
    return getattr(layer, "activation", None) == "identity" or bool(getattr(layer, "is_linear", False))


@dataclass(frozen=True, eq=False)
class StackTrajectory:
    """A forward run of a :class:`Stack` (:meth:`Stack.forward`).

    Attributes
    ----------
    y : ndarray, shape (B, T)
        The top layer's outputs.
    features : tuple of ndarray, shapes (B, T, p_l)
        Each layer's feature sequence ``f^l_1 .. f^l_T`` (before ``phi``).
    model : Stack
    """

    y: np.ndarray
    features: tuple
    model: object
    _passes: tuple
    _shared: bool


@dataclass(frozen=True, eq=False)
class StackGradient:
    """A loss and its gradient through a stack (:meth:`Stack.value_and_grad`).

    Attributes
    ----------
    loss : float
    flat : ndarray, shape (n_params,)
        ``dL/dtheta`` in the order of :meth:`Stack.flatten` (layer by layer).
    layers : tuple of ndarray
        The same, split per layer (each in that layer's ``flatten()`` order).
    dX : ndarray, shape (B, T, d)
        ``dL/dx_k``.
    dS0 : ndarray, shape (n,) or (B, n)
        ``dL/ds_0`` on the flat stack state; (n,) when ``S0`` was None or shared.
    """

    loss: float
    flat: np.ndarray
    layers: tuple
    dX: np.ndarray
    dS0: np.ndarray


@dataclass(frozen=True, eq=False, repr=False)
class Stack:
    """A stack of discrete layers with a layer-wise nonlinearity and the top layer's read-out.

    Parameters
    ----------
    layers : sequence of SequenceLayer
        At least one; ``layers[l].inputs`` must equal ``layers[l-1].feature_size``
        and all layers must share ``dt``.
    nonlinearity : str
        ``phi`` between layers (a name of :func:`dynmem.activations.available_activations`);
        ``"identity"`` (the default) is torch's multi-layer RNN/GRU/LSTM.

    Notes
    -----
    The flat state is the concatenation of the layers' flat states (an LSTM
    layer contributes ``(h, s)``, an SSM ``(Re h, Im h)``); :attr:`state_slices`
    gives each layer's part.
    """

    layers: tuple
    nonlinearity: str = "identity"

    def __post_init__(self):
        layers = self.layers
        if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
            raise TypeError(f"`layers` must be a sequence of discrete models; got {describe(layers)}.")
        layers = tuple(layers)
        if not layers:
            raise ValueError("`layers` must hold at least one model; got an empty sequence.")
        for i, layer in enumerate(layers):
            if not isinstance(layer, SequenceLayer) or not isinstance(layer, DiscreteModel):
                hint = (" (discretise it first: model.discretize(dt))"
                        if hasattr(layer, "discretize") and not isinstance(layer, DiscreteModel) else "")
                raise TypeError(
                    f"`layers[{i}]` must be a discrete model that can be stacked (dynmem.models.SequenceLayer: "
                    f"feature_size, features, sequence_forward, sequence_backward){hint}; got {describe(layer)}."
                )
        for i in range(1, len(layers)):
            want = layers[i - 1].feature_size
            if layers[i].inputs != want:
                raise ValueError(
                    f"`layers[{i}]` must read inputs of width {want} (the feature width of layers[{i - 1}]); "
                    f"got inputs = {layers[i].inputs}."
                )
        dts = [float(layer.dt) for layer in layers]
        if any(dt != dts[0] for dt in dts):
            raise ValueError(f"`layers` must share one time step dt; got dt = {dts}.")
        check_choice("nonlinearity", self.nonlinearity, available_activations())
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "_phi", get_activation(self.nonlinearity))  # resolved once, here

    # -- structure ---------------------------------------------------------
    @property
    def depth(self) -> int:
        """Number of layers L."""
        return len(self.layers)

    @property
    def inputs(self) -> int:
        """Input dimension d of the bottom layer."""
        return self.layers[0].inputs

    @property
    def hidden(self) -> int:
        """Feature width of the top layer."""
        return self.layers[-1].feature_size

    @property
    def feature_size(self) -> int:
        """Feature width of the top layer (a stack can itself be stacked)."""
        return self.layers[-1].feature_size

    @property
    def dt(self) -> float:
        """The time one step stands for (shared by the layers)."""
        return float(self.layers[0].dt)

    @property
    def state_size(self) -> int:
        """Length of the flat state: the sum of the layers' state sizes."""
        return int(sum(layer.state_size for layer in self.layers))

    @property
    def state_slices(self) -> tuple:
        """``slice`` of each layer's state in the flat stack state."""
        out, i = [], 0
        for layer in self.layers:
            out.append(slice(i, i + layer.state_size))
            i += layer.state_size
        return tuple(out)

    @property
    def is_linear(self) -> bool:
        """True when every layer is linear and ``phi`` is the identity (the probes' amplitude does not matter)."""
        return self.nonlinearity == "identity" and all(_is_linear(layer) for layer in self.layers)

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Stack([{inner}], nonlinearity={self.nonlinearity!r})"

    # -- parameters (dynmem.models.Parametrized) ---------------------------
    @property
    def param_names(self) -> tuple[str, ...]:
        """``"layers[l].name"`` for each layer's parameter arrays, layer by layer."""
        return tuple(f"layers[{i}].{n}" for i, layer in enumerate(self.layers) for n in layer.param_names)

    @property
    def n_params(self) -> int:
        """Total number of trainable scalars."""
        return int(sum(layer.n_params for layer in self.layers))

    def flatten(self) -> np.ndarray:
        """The layers' flat parameter vectors, concatenated bottom to top."""
        return np.concatenate([layer.flatten() for layer in self.layers])

    def unflatten(self, theta) -> "Stack":
        """A stack of the same structure with parameters ``theta`` (shape (n_params,))."""
        theta = as_float_array("theta", theta, ndim=1)
        if theta.size != self.n_params:
            raise ValueError(f"`theta` must have length {self.n_params} (n_params of this stack); got length "
                             f"{theta.size}.")
        out, i = [], 0
        for layer in self.layers:
            out.append(layer.unflatten(theta[i:i + layer.n_params]))
            i += layer.n_params
        return Stack(tuple(out), nonlinearity=self.nonlinearity)

    def replace(self, **changes) -> "Stack":
        """A copy with ``layers`` or ``nonlinearity`` changed (validated like the constructor)."""
        kw = {"layers": self.layers, "nonlinearity": self.nonlinearity}
        for k in changes:
            if k not in kw:
                raise ValueError(f"`{k}` is not a field of Stack; the fields are 'layers' and 'nonlinearity'.")
        kw.update(changes)
        return Stack(**kw)

    # -- running -----------------------------------------------------------
    def _check_X(self, X) -> np.ndarray:
        X = as_float_array("X", X)
        if X.ndim != 3 or X.shape[2] != self.inputs or X.shape[0] < 1 or X.shape[1] < 1:
            hint = " (add a batch axis with X[None])" if X.ndim == 2 else ""
            raise ValueError(f"`X` must have shape (batch, T, {self.inputs}) with batch, T >= 1; got shape "
                             f"{X.shape}{hint}.")
        return X

    def _split_state(self, S0, batch: int):
        """Per-layer initial states (None for zeros) and whether S0 was shared over the batch."""
        if S0 is None:
            return [None] * self.depth, True
        n = self.state_size
        S0 = as_float_array("S0", S0, ndim=(1, 2))
        if S0.shape not in ((n,), (batch, n)):
            raise ValueError(f"`S0` must have shape ({n},) or ({batch}, {n}) (the flat stack state); got shape "
                             f"{S0.shape}.")
        full = np.ascontiguousarray(np.broadcast_to(S0, (batch, n)))
        return [full[:, sl] for sl in self.state_slices], S0.ndim == 1

    def forward(self, X, S0=None) -> StackTrajectory:
        """Run the stack over a batch of input sequences.

        Parameters
        ----------
        X : array_like, shape (B, T, d)
        S0 : array_like, shape (n,) or (B, n), optional
            Flat initial state of the stack (zeros by default).

        Returns
        -------
        StackTrajectory
        """
        X = self._check_X(X)
        states, shared = self._split_state(S0, X.shape[0])
        phi = self._phi
        passes, u = [], X
        for i, layer in enumerate(self.layers):
            p = layer.sequence_forward(u, states[i])
            passes.append(p)
            if i < self.depth - 1:
                u = p.features if self.nonlinearity == "identity" else phi.fn(p.features)
        return StackTrajectory(y=passes[-1].y, features=tuple(p.features for p in passes), model=self,
                               _passes=tuple(passes), _shared=shared)

    def backward(self, trajectory: StackTrajectory, dy) -> StackGradient:
        r"""Vector-Jacobian product of :meth:`forward` (BPTT through every layer).

        .. math::

            \frac{\partial L}{\partial f^{l-1}_k} = \varphi'(f^{l-1}_k) \odot
            \frac{\partial L}{\partial u^{l-1}_k},\qquad
            \frac{\partial L}{\partial u^{l-1}} = \texttt{layers[l].sequence\_backward}(\cdot)\texttt{.dX}

        from the top layer (which receives ``dy``) down; each layer's sweep is its family's compiled kernel.

        Parameters
        ----------
        trajectory : StackTrajectory
            From :meth:`forward` of this stack.
        dy : array_like, shape (B, T)
            ``dL/dy_k``.

        Returns
        -------
        StackGradient
            With ``loss = nan`` (only cotangents were given).
        """
        if not isinstance(trajectory, StackTrajectory) or trajectory.model is not self:
            raise ValueError(f"`trajectory` must come from forward() of this same stack; got {describe(trajectory)}.")
        B, T = trajectory.y.shape
        return self._backward(trajectory, None, as_float_array("dy", dy, shape=(B, T)))

    def _backward(self, trajectory, dF, dy, reduce_shared: bool = True) -> StackGradient:
        phi = self._phi
        passes = trajectory._passes
        grads = [None] * self.depth
        dS0 = [None] * self.depth
        dyl = dy
        for i in range(self.depth - 1, -1, -1):
            g = self.layers[i].sequence_backward(passes[i], dF, dyl)
            grads[i], dS0[i] = g.flat, g.dS0
            if i > 0:
                dF = g.dX if self.nonlinearity == "identity" else g.dX * phi.deriv(passes[i - 1].features)
                dyl = None
        dS = np.concatenate(dS0, axis=1)
        return StackGradient(loss=float("nan"), flat=np.concatenate(grads), layers=tuple(grads), dX=g.dX,
                             dS0=dS.sum(axis=0) if (trajectory._shared and reduce_shared) else dS)

    def value_and_grad(self, X, Y, *, S0=None, loss: str = "mse") -> StackGradient:
        """Loss on the outputs and its gradient with respect to every layer's parameters, ``X`` and ``S0``.

        Parameters
        ----------
        X : array_like, shape (B, T, d)
        Y : array_like, shape (B, T)
            Targets for ``y_k``.
        S0 : array_like, shape (n,) or (B, n), optional
        loss : {"mse", "sse"}
            ``mean (y - Y)^2`` (``torch.nn.MSELoss``) or ``0.5 sum (y - Y)^2``.

        Returns
        -------
        StackGradient

        Raises
        ------
        FloatingPointError
            If a layer diverges, the loss overflows or a gradient is not finite.
        """
        check_choice("loss", loss, _LOSSES)
        tr = self.forward(X, S0)
        B, T = tr.y.shape
        Y = as_float_array("Y", Y, shape=(B, T))
        value, dy = sequence_loss(tr.y, Y, loss)
        res = self.backward(tr, dy)
        return StackGradient(loss=value, flat=res.flat, layers=res.layers, dX=res.dX, dS0=res.dS0)

    # -- a stack as a layer of a larger stack (dynmem.models.SequenceLayer) --
    def sequence_forward(self, X, S0=None):
        """:meth:`forward` as a layer pass: the top layer's features, the outputs, the trajectory as tape."""
        tr = self.forward(X, S0)
        return LayerPass(features=tr.features[-1], y=tr.y, tape=tr)

    def sequence_backward(self, passed, dF=None, dy=None):
        """BPTT of :meth:`sequence_forward` with cotangents on the top features and the outputs."""
        tr = getattr(passed, "tape", None)
        if not isinstance(tr, StackTrajectory) or tr.model is not self:
            raise ValueError(f"`passed` must be the LayerPass of sequence_forward() of this same stack; "
                             f"got {describe(passed)}.")
        res = self._backward(tr, dF, dy, reduce_shared=False)
        return LayerGradient(flat=res.flat, dX=res.dX, dS0=res.dS0)

    # -- the discrete-model contract (dynmem.models.DiscreteModel) ---------
    def outputs(self, X, S0) -> np.ndarray:
        """``y_0 .. y_{T-1}`` for inputs X (k, T, d) from flat states S0 (k, n); shape (k, T)."""
        return self.forward(X, S0).y

    def readout(self, S) -> np.ndarray:
        """The top layer's read-out of its part of flat states S (k, n); shape (k,)."""
        S = as_float_array("S", S, ndim=2, shape=(None, self.state_size))
        return self.layers[-1].readout(S[:, self.state_slices[-1]])

    def features(self, S) -> np.ndarray:
        """The top layer's features of flat stack states S (k, n); shape (k, p_L)."""
        S = as_float_array("S", S, ndim=2, shape=(None, self.state_size))
        return self.layers[-1].features(S[:, self.state_slices[-1]])

    # -- the one-step map (dynmem.models.DiscreteMap) ------------------------
    def _map_layers(self):
        for i, layer in enumerate(self.layers):
            missing = [a for a in ("step", "step_jacobian", "step_input_jacobian") if not hasattr(layer, a)]
            if missing:
                raise TypeError(f"`layers[{i}]` must have step, step_jacobian and step_input_jacobian for the stack's "
                                f"one-step map; {describe(layer)} lacks {', '.join(missing)}.")
        return self.layers

    def step(self, S, X) -> np.ndarray:
        """One step of the stack on flat states S (k, n) and inputs X (k, d); shape (k, n).

        Layer by layer: ``s^l' = F_l(s^l, phi(feat_{l-1}(s^{l-1}')))`` (layer l reads the new state of
        the layer below, as in the run).
        """
        S = as_float_array("S", S, ndim=2, shape=(None, self.state_size))
        u = as_float_array("X", X, ndim=2, shape=(S.shape[0], self.inputs))
        phi = self._phi
        out = []
        for i, (layer, sl) in enumerate(zip(self._map_layers(), self.state_slices)):
            s = np.asarray(layer.step(S[:, sl], u), dtype=float)
            out.append(s)
            if i < self.depth - 1:
                u = phi.fn(layer.features(s))
        return np.concatenate(out, axis=1)

    def step_jacobian(self, S, X) -> np.ndarray:
        """``dF/ds`` of :meth:`step` at each pair; shape (k, n, n), block lower triangular.

        With ``J_l = dF_l/ds^l``, ``Jx_l = dF_l/du`` (``step_input_jacobian``), the feature selection
        ``P_l`` (``features`` is a linear selection of the state) and ``D_l = diag(phi'(f^l))``, the rows
        of layer l are ``J_l`` on its own block plus ``Jx_l D_{l-1} P_{l-1}`` times the rows of layer l-1.
        """
        S = as_float_array("S", S, ndim=2, shape=(None, self.state_size))
        u = as_float_array("X", X, ndim=2, shape=(S.shape[0], self.inputs))
        phi = self._phi
        k, n = S.shape
        J = np.zeros((k, n, n))
        below = None  # (k, n_{l-1}, n): d s^{l-1}' / d S
        for i, (layer, sl) in enumerate(zip(self._map_layers(), self.state_slices)):
            s_old = S[:, sl]
            J[:, sl, sl] = layer.step_jacobian(s_old, u)
            if below is not None:
                J[:, sl, :] += np.einsum("kij,kjn->kin", layer.step_input_jacobian(s_old, u), below)
            if i < self.depth - 1:
                s_new = np.asarray(layer.step(s_old, u), dtype=float)
                f = layer.features(s_new)
                P = layer.features(np.eye(layer.state_size)).T  # (p, n_l): the selection of the features
                below = np.einsum("kp,pj,kjn->kpn", phi.deriv(f), P, J[:, sl, :])
                u = phi.fn(f)
        return J

    def linear_system(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Real ``(A, B, C, D)`` of a linear stack (:class:`~dynmem.models.LinearSystem`, discrete convention).

        ``s_{k+1} = A s_k + B x_k`` and ``y_k = C s_k + D x_k`` on the flat stack state: with the
        layers' ``(A_l, B_l, C_l, D_l)`` and feature selections ``P_l``, the rows of layer l are
        ``A_l`` on its block plus ``B_l P_{l-1}`` times the rows of layer l-1 (it reads the new state
        below), and the read-out is the top layer's ``C_L s^L + D_L u^{L-1}``.  Raises ``ValueError``
        unless every layer is linear and ``nonlinearity`` is the identity.
        """
        if not self.is_linear:
            raise ValueError("the stack must be linear for a linear system: every layer linear and `nonlinearity` = "
                             f"'identity'; got {self!r}.")
        n, d = self.state_size, self.inputs
        A, B = np.zeros((n, n)), np.zeros((n, d))
        rows_A, rows_B = None, None  # d s^{l-1}' / d(S, x), and the features' selection below
        for i, (layer, sl) in enumerate(zip(self.layers, self.state_slices)):
            Al, Bl, Cl, Dl = (np.asarray(a, dtype=float) for a in layer.linear_system())
            A[sl, sl] = Al
            if rows_A is None:
                B[sl] = Bl
                in_A, in_B = np.zeros((d, n)), np.eye(d)  # u^0 = x
            else:
                in_A, in_B = rows_A, rows_B
                A[sl] += Bl @ in_A
                B[sl] = Bl @ in_B
            P = layer.features(np.eye(layer.state_size)).T
            rows_A, rows_B = P @ A[sl], P @ B[sl]
        C = np.zeros((Cl.shape[0], n))
        C[:, self.state_slices[-1]] = Cl
        C += Dl @ in_A
        return A, B, C, Dl @ in_B

    def equilibrium(self, X) -> np.ndarray:
        """Fixed points of the stack under constant inputs X (k, d), layer by layer; flat, shape (k, n).

        At a fixed point every layer's input is constant, so layer l's rest
        state is that of ``F_l`` under ``phi(feat_{l-1}(s^{l-1}*))``.  Raises
        :class:`dynmem.simulate.SimulationError` when a layer does not settle.
        """
        X = as_float_array("X", X, ndim=2, shape=(None, self.inputs))
        phi = self._phi
        out, u = [], X
        for i, layer in enumerate(self.layers):
            s = np.asarray(layer.equilibrium(u), dtype=float)
            out.append(s)
            if i < self.depth - 1:
                u = phi.fn(layer.features(s))
        return np.concatenate(out, axis=1)
