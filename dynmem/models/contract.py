"""The model contract: what a model can do, written down as protocols, and the one parameter-array base.

The model contract
------------------
Analyses dispatch on what a model *can do*, not on its class.  The
capabilities are written down as :class:`typing.Protocol` classes
(checked structurally with ``isinstance``, so a model needs no base class):

* :class:`Parametrized` - ``param_names``, ``n_params``, ``flatten()`` and
  ``unflatten(theta)`` (C-order concatenation of the trainable arrays).
* :class:`ContinuousModel` - a state ``h`` in R^m driven by ``x`` in R^d,
  ``dh/dt = f(h, x)``, read out linearly as ``y = c^T h``:
  ``vector_field(H, X)`` (batched), ``jacobian(H, X)`` (``df/dh``, batched),
  ``equilibrium(X)`` (rest states under constant inputs), ``impulse_kick(X)``
  (the state displacement an impulse of area x causes) and
  ``linearize(h_star)`` (the :class:`LinearRNN` of the linearisation at an
  equilibrium of the zero input).  :func:`dynmem.memory.memory_function`
  takes the memory of any such model by integrating its exact vector field.
* :class:`DiscreteModel` - a recurrence ``s_{k+1} = F(s_k, x_k)``,
  ``y_k = g(s_{k+1})`` on a flat state ``s`` in R^n: ``state_size``,
  ``dt`` (the time one step stands for), ``outputs(X, s0)`` (batched run),
  ``readout(S)`` and ``equilibrium(X)``.  Memory by differences of the step
  response.
* :class:`DiscreteMap` - a :class:`DiscreteModel` whose step can be taken on
  its own: ``step(S, X)`` (the next flat states, batched) and
  ``step_jacobian(S, X)`` (``dF/ds``, batched).  Lyapunov spectra, fixed
  points and memory capacity of discrete models (:mod:`dynmem.lyapunov_exponents`,
  :mod:`dynmem.fixed_points`, :mod:`dynmem.capacity`) need it.
* :class:`SequenceLayer` - a :class:`DiscreteModel` that can be a layer of a
  :class:`dynmem.stack.Stack`: ``feature_size``, ``features(S)`` (the sequence
  it passes up: its hidden state, or an SSM's flat state),
  ``sequence_forward(X, S0)`` (a :class:`LayerPass`) and
  ``sequence_backward(passed, dF, dy)`` (a :class:`LayerGradient` with
  ``dL/dX`` for the layer below), each family on its own compiled kernels;
  with ``step_input_jacobian(S, X)`` (``dF/dx``, (k, n, d)) as well, a stack
  of such layers is a :class:`DiscreteMap` too.
* :class:`LinearSystem` - ``linear_system()`` returns real ``(A, B, C, D)``
  of shapes (n, n), (n, d), (p, n), (p, d): ``dh/dt = A h + B x``,
  ``y = C h + D x`` for a continuous model, ``s_{k+1} = A s_k + B x_k``,
  ``y_k = C s_k + D x_k`` for a discrete one (a model that reads out the new
  state, ``y_k = c^T s_{k+1}``, returns ``C = c^T A`` and ``D = c^T B``).
  The system norms of :mod:`dynmem.norms` and the exact linear memory
  capacity need it.
* :class:`CTRNNField` - a continuous model whose field is
  ``sigma(W h + U x + b) - leak h`` with ``W``, ``U``, ``b``, ``activation``
  (a registered name) and ``leak`` as attributes (:class:`CTRNN`,
  :class:`LinearRNN`); compiled analyses (Lyapunov spectra of flows) read
  them and evaluate the field in numba.
* :class:`ClosedFormMemory` - ``closed_form_memory(t, input=...)`` for models whose
  memory is known in closed form (linear ones); used before the probes.
* :class:`Trainable` - :class:`Parametrized` plus ``value_and_grad(X, Y,
  loss=...)`` returning an object with ``loss`` and ``flat`` (the gradient in
  ``flatten()`` order); :func:`dynmem.training.train` trains any such model
  that is also a :class:`DiscreteModel` (the GRU/LSTM cells, the discrete
  SSM), and :func:`dynmem.stability.perturbation_curve` perturbs any
  :class:`Parametrized` :class:`DiscreteModel` through ``flatten``/``unflatten``.

The capabilities the engines and analyses choose their fast paths by
(instead of asking for a class):

* :class:`CTRNNForm` - ``as_ctrnn()``: the CTRNN with the same field (a CTRNN
  itself, a LinearRNN with the identity); the compiled engine, the continuous
  adjoint, ``train_ctrnn`` and the teacher target run that form.
* :class:`LinearKernel` - ``W``, ``U``, ``c`` and ``kernel(t)`` of a linear
  continuous model (LinearRNN): perturbation studies take errors on the kernel.
* :class:`EulerStep` - a discrete recurrence that is the Euler image of a
  flow (``dt``, ``as_ctrnn()``: EulerRNN); a recurrence without it is a map.
* :class:`dynmem.recurrences.Recurrence` - the arrays and
  ``recurrence_coefficients()`` the compiled discrete kernels read
  (DiscreteRNN, EulerRNN).

:class:`ParamArrays` is the one parameter-array base: named arrays as the
trainable parameters, with ``param_names``, ``n_params``, ``flatten``,
``unflatten`` and ``replace`` (the RNNs and the gated cells derive from it).

Adding a model (the recipe): write a frozen dataclass with the methods of
one protocol above (plus ``flatten``/``unflatten`` if it is trained) in its
own module of ``dynmem/models/``, export it from ``dynmem/models/__init__.py``
and ``dynmem/__init__.py``, and test it in
``tests/`` - that is all :func:`~dynmem.memory.memory_function` and
:func:`~dynmem.simulate.simulate` need (``tests/test_contract.py`` defines
two models that way).  Files touched outside tests: the new module and
``__init__.py``.  (``train``, ``stability.perturbation_curve`` and the
hypothesis strategies need nothing more than the protocols above.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from .._validation import as_float_array

__all__ = ["Parametrized", "ContinuousModel", "DiscreteModel", "DiscreteMap", "SequenceLayer", "LayerPass",
           "LayerGradient", "LinearSystem", "CTRNNField", "CTRNNForm", "LinearKernel", "ClosedFormMemory",
           "Trainable", "Recurrence", "ParamArrays"]


@runtime_checkable
class Parametrized(Protocol):
    """A model with a flat parameter vector.

    ``flatten()`` returns the trainable arrays (in ``param_names`` order, each
    raveled in C order) as one float64 vector of length ``n_params``;
    ``unflatten(theta)`` builds the model of the same class and settings with
    those parameters (validated like the constructor).
    """

    @property
    def param_names(self) -> tuple[str, ...]: ...

    @property
    def n_params(self) -> int: ...

    def flatten(self) -> np.ndarray: ...

    def unflatten(self, theta): ...


@runtime_checkable
class ContinuousModel(Protocol):
    """A continuous-time model ``dh/dt = f(h, x)``, ``y = c^T h`` with h in R^m, x in R^d.

    Attributes
    ----------
    hidden : int
        State width m.
    inputs : int
        Input dimension d.
    c : ndarray, shape (m,)
        Linear read-out.

    Methods
    -------
    vector_field(H, X) -> ndarray, shape (k, m)
        ``f(H[i], X[i])`` for states H (k, m) and inputs X (k, d).
    jacobian(H, X) -> ndarray, shape (k, m, m)
        ``df/dh`` at each pair.
    equilibrium(X) -> ndarray, shape (k, m)
        A rest state ``f(h, x) = 0`` for each constant input row of X (k, d);
        raises :class:`dynmem.SimulationError` when none is found.
        ``equilibrium(zeros((1, d)))[0]`` is the rest state the memory
        probes start from.
    impulse_kick(X) -> ndarray, shape (k, m)
        The displacement of the state by an impulse of area x (``U x`` for a
        CTRNN: the limit of a short pulse of the input term).
    linearize(h_star) -> LinearRNN
        ``dh/dt = J (h - h*) + B x`` with ``J = df/dh``, ``B = df/dx`` at
        ``(h*, 0)``, read out by c.
    """

    hidden: int
    inputs: int
    c: np.ndarray

    def vector_field(self, H, X) -> np.ndarray: ...

    def jacobian(self, H, X) -> np.ndarray: ...

    def equilibrium(self, X) -> np.ndarray: ...

    def impulse_kick(self, X) -> np.ndarray: ...

    def linearize(self, h_star=None): ...


@runtime_checkable
class DiscreteModel(Protocol):
    """A recurrence ``s_{k+1} = F(s_k, x_k)``, ``y_k = g(s_{k+1})`` on a flat state s in R^n.

    Attributes
    ----------
    inputs : int
        Input dimension d.
    state_size : int
        n (m for an RNN or GRU, 2m for an LSTM: ``s = (h, cell)``).
    dt : float
        The time one step stands for (1 for a plain discrete model).

    Methods
    -------
    outputs(X, S0) -> ndarray, shape (k, T)
        ``y_0 .. y_{T-1}`` for inputs X (k, T, d) from states S0 (k, n).
    readout(S) -> ndarray, shape (k,)
        ``g(s)`` for states S (k, n).
    equilibrium(X) -> ndarray, shape (k, n)
        Fixed points ``s = F(s, x)`` for constant inputs X (k, d); raises
        :class:`dynmem.SimulationError` when the recurrence does not settle.
    """

    inputs: int
    state_size: int
    dt: float

    def outputs(self, X, S0) -> np.ndarray: ...

    def readout(self, S) -> np.ndarray: ...

    def equilibrium(self, X) -> np.ndarray: ...


@runtime_checkable
class DiscreteMap(Protocol):
    """A :class:`DiscreteModel` whose one-step map ``F`` and its Jacobian are available.

    Methods
    -------
    step(S, X) -> ndarray, shape (k, n)
        ``F(S[i], X[i])`` for flat states S (k, n) and inputs X (k, d).
    step_jacobian(S, X) -> ndarray, shape (k, n, n)
        ``dF/ds`` at each pair.
    """

    inputs: int
    state_size: int

    def step(self, S, X) -> np.ndarray: ...

    def step_jacobian(self, S, X) -> np.ndarray: ...


@runtime_checkable
class SequenceLayer(Protocol):
    """A :class:`DiscreteModel` that can be a layer of a :class:`dynmem.stack.Stack`.

    The layer passes a *feature sequence* up (its hidden states ``h_1 .. h_T``,
    or for a diagonal SSM the flat state ``(Re h, Im h)``) and takes the
    cotangents of that sequence back, returning ``dL/dx`` for the layer below.

    Attributes
    ----------
    feature_size : int
        Width p of the feature sequence (the next layer's input dimension).

    Methods
    -------
    features(S) -> ndarray, shape (k, p)
        The features of flat states S (k, n).
    sequence_forward(X, S0) -> LayerPass
        The run on inputs X (B, T, d) from flat states S0 (B, n) (zeros when None):
        features ``f_k = features(s_{k+1})`` (B, T, p), the layer's own outputs
        ``y`` (B, T) and a tape for the backward pass.
    sequence_backward(passed, dF, dy) -> LayerGradient
        BPTT of that run with cotangents ``dF = dL/df`` (B, T, p) and
        ``dy = dL/dy`` (B, T) (either may be None): the parameter gradient in
        ``flatten()`` order, ``dL/dX`` (B, T, d) and ``dL/dS0`` (B, n).
    """

    inputs: int
    state_size: int
    feature_size: int

    def features(self, S) -> np.ndarray: ...

    def sequence_forward(self, X, S0=None): ...

    def sequence_backward(self, passed, dF=None, dy=None): ...


@dataclass(frozen=True, eq=False)
class LayerPass:
    """One layer's forward run (:meth:`SequenceLayer.sequence_forward`).

    Attributes
    ----------
    features : ndarray, shape (B, T, p)
        ``f_k = features(s_{k+1})``, the sequence the next layer reads.
    y : ndarray, shape (B, T)
        The layer's own read-out ``y_k``.
    tape : object
        What the layer's ``sequence_backward`` needs (its trajectory).
    """

    features: np.ndarray
    y: np.ndarray
    tape: object


@dataclass(frozen=True, eq=False)
class LayerGradient:
    """One layer's BPTT (:meth:`SequenceLayer.sequence_backward`).

    Attributes
    ----------
    flat : ndarray, shape (n_params,)
        ``dL/dtheta`` in the order of the layer's ``flatten()``.
    dX : ndarray, shape (B, T, d)
        ``dL/dx_k``: the cotangent handed to the layer below.
    dS0 : ndarray, shape (B, n)
        ``dL/ds_0`` on the flat initial state.
    """

    flat: np.ndarray
    dX: np.ndarray
    dS0: np.ndarray


@runtime_checkable
class LinearSystem(Protocol):
    """A linear time-invariant model that can state its real ``(A, B, C, D)``.

    ``linear_system()`` returns ``(A (n, n), B (n, d), C (p, n), D (p, d))``
    (module docstring for the continuous and discrete conventions).
    """

    def linear_system(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...


@runtime_checkable
class CTRNNField(Protocol):
    """A continuous model whose field is ``f(h, x) = sigma(W h + U x + b) - leak h``, arrays in the open.

    Attributes
    ----------
    hidden, inputs : int
        m and d.
    W : ndarray, shape (m, m)
    U : ndarray, shape (m, d)
    b : ndarray, shape (m,)
    activation : str
        A name of :func:`dynmem.activations.available_activations` (its numba code is what compiled
        code evaluates).
    leak : float
        ``leak >= 0``.

    Declaring these promises that ``vector_field`` and ``jacobian`` are exactly that field and its
    ``diag(sigma'(z)) W - leak I``: analyses with a compiled path
    (:func:`dynmem.lyapunov_exponents.lyapunov_spectrum`) read the arrays and evaluate the field
    themselves.  :class:`CTRNN` and :class:`LinearRNN` (identity, ``b = 0``, ``leak = 0``) have it.
    """

    hidden: int
    inputs: int
    W: np.ndarray
    U: np.ndarray
    b: np.ndarray
    activation: str
    leak: float

    def vector_field(self, H, X) -> np.ndarray: ...

    def jacobian(self, H, X) -> np.ndarray: ...


@runtime_checkable
class ClosedFormMemory(Protocol):
    """A model whose memory function is known in closed form.

    ``closed_form_memory(t, input=...)`` returns ``(values (n,), argmax (n, d))``
    for ``normalize="x"`` (``argmax`` the maximising input of unit inf-norm).
    """

    def closed_form_memory(self, t, *, input: str = "heaviside"): ...


@runtime_checkable
class Trainable(Protocol):
    """A :class:`Parametrized` model with its own loss gradient.

    ``value_and_grad(X, Y, *, loss="mse")`` for inputs X (batch, T, d) and
    targets Y (batch, T) returns an object with ``loss`` (float) and ``flat``
    (ndarray, shape (n_params,): ``dL/dtheta`` in ``flatten()`` order; for a
    complex parameter ``a + i b`` the entries ``dL/da``, ``dL/db``), raising
    ``FloatingPointError`` when the forward pass or the gradient is non-finite.
    """

    @property
    def param_names(self) -> tuple[str, ...]: ...

    @property
    def n_params(self) -> int: ...

    def flatten(self) -> np.ndarray: ...

    def unflatten(self, theta): ...

    def value_and_grad(self, X, Y, *, loss: str = "mse"): ...


@runtime_checkable
class CTRNNForm(Protocol):
    """A continuous model with a CTRNN form: ``as_ctrnn()`` returns the CTRNN with the same field.

    :class:`~dynmem.models.CTRNN` returns itself, :class:`~dynmem.models.LinearRNN`
    the CTRNN with the identity activation, ``b = 0`` and ``leak = 0``.  The
    compiled Runge-Kutta engine (:mod:`dynmem.ode`), the continuous adjoint
    (:func:`dynmem.adjoint.adjoint_gradient`), :func:`dynmem.training.train_ctrnn`
    and the teacher target run any such model through that form; gradients come
    back in the model's own parameters (``param_names``).
    """

    hidden: int
    inputs: int

    def as_ctrnn(self): ...

    def vector_field(self, H, X) -> np.ndarray: ...


@runtime_checkable
class LinearKernel(Protocol):
    """A linear continuous model ``dh/dt = W h + U x``, ``y = c^T h`` whose parameters are ``(W, U, c)``.

    ``kernel(t)`` is ``rho(t)^T = c^T e^{W t} U``, shape (n, d) for times t (n,).
    Perturbation studies (:mod:`dynmem.stability`) take its error on the kernel
    directly instead of integrating (:class:`~dynmem.models.LinearRNN`).
    """

    W: np.ndarray
    U: np.ndarray
    c: np.ndarray

    def kernel(self, t) -> np.ndarray: ...

    def as_ctrnn(self): ...


@runtime_checkable
class EulerStep(Protocol):
    """A discrete recurrence that is the forward-Euler image of a continuous model.

    ``dt`` is the model's own step (a step stands for ``dt`` time units), ``as_ctrnn()`` the
    model it discretises (:class:`~dynmem.models.EulerRNN`).  A plain recurrence without it
    (:class:`~dynmem.models.DiscreteRNN`) is a map in its own right: its margin is ``1 - rho(W)``.
    """

    dt: float

    def as_ctrnn(self): ...

    def recurrence_coefficients(self) -> tuple[float, float]: ...


class ParamArrays:
    """The one parameter-array base: named float64 arrays as the trainable parameters.

    A subclass (a frozen dataclass) lists its trainable fields in ``_param_names``
    (or overrides :attr:`param_names` when they depend on its settings) and
    validates them in ``__post_init__``; this base gives the
    :class:`Parametrized` contract (``param_names``, ``param_shapes``,
    ``n_params``, ``params()``, ``flatten()``, ``unflatten(theta)``) and
    ``replace(**changes)``.
    """

    _param_names: ClassVar[tuple[str, ...]] = ()

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the trainable arrays, in flattening order."""
        return self._param_names

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each trainable array (``name -> shape``, in flattening order)."""
        return {n: getattr(self, n).shape for n in self.param_names}

    @property
    def n_params(self) -> int:
        """Total number of trainable scalars."""
        return int(sum(getattr(self, n).size for n in self.param_names))

    def params(self) -> dict[str, np.ndarray]:
        """The trainable arrays by name (read-only views)."""
        return {n: getattr(self, n) for n in self.param_names}

    def flatten(self) -> np.ndarray:
        """All trainable arrays concatenated into one float64 vector.

        The order is :attr:`param_names`, each array raveled in C order.
        """
        return np.concatenate([getattr(self, n).ravel() for n in self.param_names])

    def unflatten(self, theta):
        """A model of the same class and settings with parameters ``theta``.

        Parameters
        ----------
        theta : array_like, shape (n_params,)
            As produced by :meth:`flatten`.
        """
        theta = as_float_array("theta", theta, ndim=1)
        if theta.size != self.n_params:
            raise ValueError(f"`theta` must have length {self.n_params} (n_params of this model); got length {theta.size}.")
        updates, i = {}, 0
        for n in self.param_names:
            shape = getattr(self, n).shape
            size = int(np.prod(shape))
            updates[n] = theta[i : i + size].reshape(shape)
            i += size
        # Validated like the constructor: a non-finite theta is reported there.
        return dataclasses.replace(self, **updates)

    def replace(self, **changes):
        """A copy with some fields changed (validated like the constructor)."""
        return dataclasses.replace(self, **changes)
