"""Bring a trained model: PyTorch modules and plain state dicts as dynmem models.

Supported (exactly, in float64; outputs equal the framework's to rounding):

======================  ==============================================  =================
source                  conditions                                      dynmem model
======================  ==============================================  =================
``torch.nn.GRU``        one layer, unidirectional                       :class:`~dynmem.gated.GRUCell`
``torch.nn.LSTM``       one layer, unidirectional, ``proj_size = 0``    :class:`~dynmem.gated.LSTMCell`
``torch.nn.RNN``        one layer, unidirectional, tanh or relu         :class:`~dynmem.models.DiscreteRNN`
any of the three        ``num_layers = L > 1``, unidirectional          :class:`~dynmem.stack.Stack` of L of the above
======================  ==============================================  =================

``bias=False`` modules give zero biases.  A multi-layer module becomes a
:class:`~dynmem.stack.Stack` (layer l reads layer l-1's hidden sequence, no
nonlinearity between layers, as torch; the read-out belongs to the top layer
and the lower layers' ``c`` are zeros).  Dropout between layers is a
training-time device: the stack is the module in ``eval()`` mode.
Bidirectional modules are refused (a stack runs forward in time only).
The torch modules have no read-out; dynmem's models emit the scalar
``y_k = c^T h_{k+1}``, so a read-out is required: an array ``c`` of shape
(m,) or a ``torch.nn.Linear(m, 1)``.  A Linear's bias only shifts y by a
constant (no memory changes) and is dropped: compare outputs up to it.

:func:`from_state_dict` takes the same arrays from a plain dict or an
``.npz`` file (keys ``weight_ih_l0`` ... as in ``module.state_dict()``, or
without the ``_l0`` suffix), so no torch is needed to analyse a saved model.

PyTorch is imported lazily, only by :func:`from_torch`; without it an
ImportError names the extra to install (``pip install 'dynmem[bench]'``,
which pins ``torch==2.13.0``).
"""

from __future__ import annotations

import os
import re

import numpy as np

from .._validation import as_float_array, check_choice, describe
from .gated import GRUCell, LSTMCell
from .rnn import DiscreteRNN
from .stack import Stack

__all__ = ["from_torch", "from_state_dict", "to_state_dict"]

_KINDS = ("gru", "lstm", "rnn")
_GATES = {"gru": 3, "lstm": 4, "rnn": 1}


def _import_torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised by monkeypatching in the tests
        raise ImportError(
            "dynmem.interop.from_torch needs PyTorch, which is not installed: install the `bench` extra "
            "(pip install 'dynmem[bench]', which pins torch==2.13.0) or `pip install torch==2.13.0`."
        ) from exc
    return torch


def _readout(readout, m: int) -> np.ndarray:
    if readout is None:
        raise ValueError(
            f"`readout` must be given: an array of shape ({m},) or a torch.nn.Linear({m}, 1) (the module has no "
            "read-out of its own and dynmem's models emit y = c^T h)."
        )
    w = getattr(readout, "weight", None)
    if w is not None and hasattr(w, "detach"):
        arr = np.asarray(w.detach().cpu().double().numpy())
        if arr.shape != (1, m):
            raise ValueError(f"`readout` must be a Linear({m}, 1); got a weight of shape {arr.shape}.")
        return arr[0].copy()
    return as_float_array("readout", readout, shape=(m,), copy=True)


def _build(kind: str, arrays: dict, readout, nonlinearity: str = "tanh"):
    g = _GATES[kind]
    Whh = as_float_array("weight_hh", arrays["weight_hh"], ndim=2)
    m = Whh.shape[1]
    Wih = as_float_array("weight_ih", arrays["weight_ih"], ndim=2)
    bih = arrays.get("bias_ih")
    bhh = arrays.get("bias_hh")
    bih = np.zeros(g * m) if bih is None else as_float_array("bias_ih", bih, ndim=1)
    bhh = np.zeros(g * m) if bhh is None else as_float_array("bias_hh", bhh, ndim=1)
    c = _readout(readout, m)
    if kind == "rnn":
        check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        if bih.shape != (m,) or bhh.shape != (m,):
            raise ValueError(f"RNN biases must have shape ({m},); got {bih.shape} and {bhh.shape}.")
        return DiscreteRNN(Whh, Wih, bih + bhh, c, activation=nonlinearity)
    cls = GRUCell if kind == "gru" else LSTMCell
    return cls(weight_ih=Wih, weight_hh=Whh, bias_ih=bih, bias_hh=bhh, c=c)


def from_torch(module, *, readout):
    """A dynmem model with the parameters of a trained ``torch.nn.GRU`` / ``LSTM`` / ``RNN``.

    Parameters
    ----------
    module : torch.nn.GRU, torch.nn.LSTM or torch.nn.RNN
        Unidirectional (LSTM without projection), any number of layers; any
        dtype (the arrays are converted to float64).
    readout : array_like, shape (m,), or torch.nn.Linear(m, 1)
        The read-out ``c`` of ``y = c^T h`` of the (top) layer (a Linear's bias is dropped).

    Returns
    -------
    GRUCell, LSTMCell, DiscreteRNN or Stack
        One layer: for GRU/LSTM the arrays keep PyTorch's layout; for RNN
        ``W = weight_hh_l0``, ``U = weight_ih_l0``, ``b = bias_ih_l0 + bias_hh_l0``.
        ``num_layers = L > 1``: a :class:`~dynmem.stack.Stack` of L such
        layers (layer l from the ``*_l{l}`` arrays), the read-out on the top one.

    Raises
    ------
    ImportError
        If PyTorch is not installed (names the extra).
    TypeError, ValueError
        For another module type or an unsupported configuration (named).
    """
    torch = _import_torch()
    kinds = ((torch.nn.GRU, "gru"), (torch.nn.LSTM, "lstm"), (torch.nn.RNN, "rnn"))
    kind = next((k for cls, k in kinds if isinstance(module, cls)), None)
    if kind is None:
        raise TypeError(f"`module` must be a torch.nn.GRU, torch.nn.LSTM or torch.nn.RNN; got {describe(module)}.")
    if module.bidirectional:
        raise ValueError("`module` must be unidirectional (bidirectional=False): a dynmem model or stack runs forward "
                         "in time only; got bidirectional=True.")
    if kind == "lstm" and getattr(module, "proj_size", 0):
        raise ValueError(f"`module` must have proj_size = 0 (projected LSTMs are not supported); got {module.proj_size}.")
    layers = []
    for layer in range(module.num_layers):
        arrays = {}
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            p = getattr(module, f"{name}_l{layer}", None)
            if p is not None:
                arrays[name] = np.asarray(p.detach().cpu().double().numpy())
        top = layer == module.num_layers - 1
        c = readout if top else np.zeros(module.hidden_size)
        layers.append(_build(kind, arrays, c, getattr(module, "nonlinearity", "tanh")))
    return layers[0] if len(layers) == 1 else Stack(tuple(layers))


_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "c")
_MAX_ELEMENTS = 1 << 26  # per array of an .npz: 64 Mi numbers (512 MiB in float64)


_KEY = re.compile(r"(weight_ih|weight_hh|bias_ih|bias_hh|c)(?:_l(\d+))?")


def _base_name(key: str):
    """The parameter a state key names (``weight_hh_l0`` -> ``weight_hh``, ``weight_hh_l2`` -> ``weight_hh_l2``).

    None for other keys; a bidirectional module's ``*_reverse`` keys are refused.
    """
    if not isinstance(key, str):
        raise ValueError(f"`state` keys must be strings; got the key {key!r}.")
    if key.endswith("_reverse"):
        raise ValueError(f"`state` must hold unidirectional layers (bidirectional=False); got the key {key!r}.")
    match = _KEY.fullmatch(key)
    if match is None:
        return None
    base, layer = match.group(1), int(match.group(2) or 0)
    if base == "c" and layer:
        return None
    return base if layer == 0 else f"{base}_l{layer}"


def _needed_keys(keys) -> dict:
    """``{parameter: key}`` for the keys that name a parameter; two keys for one parameter are refused."""
    found = {}
    for key in keys:
        base = _base_name(key)
        if base is None:
            continue
        if base in found:
            raise ValueError(f"`state` holds two arrays for the parameter {base!r}: {found[base]!r} and {key!r}; "
                             f"keep one of them.")
        found[base] = key
    return found


def _strip(state: dict) -> dict:
    out = {}
    for base, key in _needed_keys(state).items():
        value = state[key]
        out[base] = np.asarray(value.detach().cpu().double().numpy() if hasattr(value, "detach") else value)
    return out


def _load_npz(path) -> dict:
    """The parameter arrays of an ``.npz`` file: only the needed members, checked from their headers first.

    Every failure of the file (not a zip, truncated, a pickled or object
    member, a header that does not match its data, an array too large) is one
    ValueError naming ``state`` and the path.
    """
    import zipfile

    shown = os.fspath(path)

    def fail(why):
        return ValueError(f"`state` file {shown!r} is not a readable .npz of parameter arrays: {why}.")

    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise fail("it does not exist") from None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise fail(f"not a zip archive ({type(exc).__name__}: {exc})") from None
    with zf:
        members = {n[:-4]: n for n in zf.namelist() if n.endswith(".npy")}
        wanted = _needed_keys(members)
        out = {}
        for base, key in wanted.items():
            info = zf.getinfo(members[key])
            try:
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                    else:
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                    header_end = fh.tell()
            except Exception as exc:  # BadZipFile, zlib.error, EOFError, ValueError: a damaged member
                raise fail(f"the header of {key!r} does not read ({type(exc).__name__}: {exc})") from None
            if dtype.hasobject or dtype.kind not in "biuf":
                raise fail(f"{key!r} has dtype {dtype} (parameters must be real numbers; object arrays are refused)")
            n = int(np.prod(shape, dtype=object)) if shape else 1
            if n > _MAX_ELEMENTS:
                raise fail(f"{key!r} has shape {shape}, more than {_MAX_ELEMENTS} numbers")
            if info.file_size != header_end + n * dtype.itemsize:
                raise fail(f"{key!r} holds {info.file_size - header_end} data bytes, but its header {shape} "
                           f"{dtype} needs {n * dtype.itemsize}")
            try:
                with zf.open(info) as fh:
                    out[base] = np.lib.format.read_array(fh, allow_pickle=False)
            except Exception as exc:  # BadZipFile (CRC), zlib.error, EOFError, ValueError
                raise fail(f"{key!r} does not read ({type(exc).__name__}: {exc})") from None
    return out


def from_state_dict(kind: str, state, *, readout=None, nonlinearity: str = "tanh"):
    """A dynmem model from a plain parameter dict or an ``.npz`` file.

    Parameters
    ----------
    kind : {"gru", "lstm", "rnn"}
    state : dict or str or os.PathLike
        Arrays ``weight_ih``, ``weight_hh`` and optionally ``bias_ih``,
        ``bias_hh`` and ``c`` (with or without torch's ``_l0`` suffix, not
        both for one parameter); a path names an ``.npz`` file, of which only
        these members are read, after their headers are checked (real dtype,
        at most 2**26 numbers, a size that matches the data), never with
        pickle.  torch tensors are accepted too.
    readout : array_like, shape (m,), optional
        The read-out ``c``; required unless ``state`` holds ``c``.
    nonlinearity : {"tanh", "relu"}
        For ``kind="rnn"``.

    Returns
    -------
    GRUCell, LSTMCell, DiscreteRNN or Stack
        A :class:`~dynmem.stack.Stack` when ``state`` holds layers ``_l1``, ``_l2`` ...
        (a multi-layer module's state dict), with the read-out on the top layer.

    Raises
    ------
    ValueError
        A file that is not such an ``.npz`` (one message naming ``state`` and
        the path), two keys for one parameter, a missing or ill-shaped array.
    """
    check_choice("kind", kind, _KINDS)
    if isinstance(state, (str, os.PathLike)):
        arrays = _load_npz(state)
        keys = sorted(arrays)
    elif isinstance(state, dict):
        arrays = _strip(state)
        keys = sorted(map(str, state))
    else:
        raise TypeError(f"`state` must be a dict of arrays or a path to an .npz file; got {describe(state)}.")
    missing = [k for k in ("weight_ih", "weight_hh") if k not in arrays]
    if missing:
        raise ValueError(f"`state` must hold {' and '.join(missing)} (or with the _l0 suffix); got keys {keys}.")
    if readout is None:
        readout = arrays.get("c")
    depth = 1 + max([int(k.rsplit("_l", 1)[1]) for k in arrays if "_l" in k] or [0])
    if depth == 1:
        return _build(kind, arrays, readout, nonlinearity)
    layers = []
    for layer in range(depth):
        sub = {n: arrays[f"{n}_l{layer}" if layer else n] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
               if (f"{n}_l{layer}" if layer else n) in arrays}
        missing = [f"{n}_l{layer}" for n in ("weight_ih", "weight_hh") if n not in sub]
        if missing:
            raise ValueError(f"`state` must hold {' and '.join(missing)} for layer {layer} of {depth}; got keys {keys}.")
        m = as_float_array(f"weight_hh_l{layer}", sub["weight_hh"], ndim=2).shape[1]
        layers.append(_build(kind, sub, readout if layer == depth - 1 else np.zeros(m), nonlinearity))
    return Stack(tuple(layers))


def to_state_dict(model) -> dict:
    """The arrays of a GRUCell / LSTMCell / DiscreteRNN under torch's ``*_l0`` names plus ``c``.

    Saved with ``numpy.savez(path, **to_state_dict(model))`` it reads back with
    :func:`from_state_dict`.  A DiscreteRNN's bias is stored as ``bias_ih_l0``
    (with ``bias_hh_l0 = 0``).
    """
    if isinstance(model, (GRUCell, LSTMCell)):
        out = {n + "_l0": np.array(getattr(model, n)) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    elif isinstance(model, DiscreteRNN):
        out = {"weight_ih_l0": np.array(model.U), "weight_hh_l0": np.array(model.W), "bias_ih_l0": np.array(model.b),
               "bias_hh_l0": np.zeros(model.hidden)}
    else:
        raise TypeError(f"`model` must be a GRUCell, LSTMCell or DiscreteRNN; got {describe(model)}.")
    out["c"] = np.array(model.c)
    return out
