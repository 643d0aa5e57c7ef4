"""[LSS] kernel limit: the finite-width RNN trained online against its limit ODE (:mod:`dynmem._repro_kernel`)."""

from __future__ import annotations

TITLE = "[LSS] kernel limit of RNNs trained online on ergodic data"
CLAIM = "As width, data and steps grow together the network's output converges to the kernel ODE at rate N^(-1/2)."
PROTOCOLS = ("dynmem",)


def config(size: str = "quick", protocol: str | None = None, **changes) -> dict:
    if (protocol or "dynmem") != "dynmem":
        raise ValueError(f"kernel-limit runs the 'dynmem' protocol only; got {protocol!r}.")
    if size not in ("quick", "full"):
        raise ValueError(f"`size` must be 'quick' or 'full'; got {size!r}.")
    cfg = {"experiment": "kernel-limit", "protocol": "dynmem", "size": size, "seeds": [0, 1, 2]}
    if "seeds" in changes:
        cfg["seeds"] = list(changes["seeds"])
    return cfg


def run(config: dict, *, executor=None, progress: bool = False) -> dict:
    from .._repro_kernel import run_kernel_limit

    r = run_kernel_limit(quick=config["size"] == "quick", seeds=tuple(config["seeds"]), progress=progress,
                         executor=executor)
    r.update(protocol_name="dynmem", config=dict(config), size=config["size"])
    return r


def plot(result: dict, path: str) -> None:
    from .._repro_kernel import plot_kernel_limit

    plot_kernel_limit(result, path)


def verdict(result: dict) -> dict:
    f = result["findings"]
    ok = bool(f.get("ci_contains_-0.5")) or bool(f.get("convergence_slope_in_[-0.65,-0.35]"))
    why = (f"sup-error slope {f['convergence_slope']:.3f} CI [{f['convergence_slope_ci95'][0]:.3f}, "
           f"{f['convergence_slope_ci95'][1]:.3f}]; NTK slope {f['ntk_slope']:.3f}; widths up to {f['max_width']}")
    return {"verdict": "reproduced" if ok else "not reproduced", "why": why,
            "numbers": {k: f[k] for k in ("convergence_slope", "convergence_slope_ci95", "ntk_slope", "max_width")}}
