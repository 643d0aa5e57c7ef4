"""Decay fits of memory curves: exponential, polynomial, non-decaying, growing or undetermined (docs/theory.md section 2).

:func:`loglog_slope` is the package's one log-log slope fit (power-law
exponents of memory tails, error-versus-width rates, ...).

:func:`fit_decay` classifies a memory curve ``M(t)`` (from
:func:`dynmem.memory.memory_function` or any sampled curve) by comparing
least-squares fits of the candidate models by BIC; :class:`DecayFit` holds
the winner, its parameters and every candidate.  (These were part of
:mod:`dynmem.memory`, which still re-exports them.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize
import scipy.special
import scipy.stats

from ._validation import as_float_array, check_increasing, check_positive

__all__ = ["DecayFit", "fit_decay", "SlopeFit", "loglog_slope"]


@dataclass(frozen=True, eq=False)
class DecayFit:
    """Classification of a memory curve's decay.

    Attributes
    ----------
    kind : str
        "exponential", "polynomial", "non-decaying", "growing" or
        "undetermined".  "growing": ``M`` peaks at the end of the window and
        still rises there (``fits["growth"]`` holds the tail's exponential
        growth rate and log-log slope); a growing memory does not decay either.
    rate : float
        beta of ``C e^{-beta t}`` (NaN unless exponential was fitted).
    exponent : float
        p of ``C (t + s)^{-p}`` (NaN unless the polynomial model was fitted).
    shift : float
        s of the polynomial model.
    constant : float
        C of the selected model.
    r2 : float
        Coefficient of determination of ``log M`` for the selected model.
    window : tuple of float
        ``(t_start, t_end)`` of the points used.
    n_points : int
    bic_exponential, bic_polynomial : float
        Bayesian information criteria in log space (lower is better).
    decades : float
        How many decades ``M`` falls across the window.
    note : str
        Why this verdict, and how confident.
    power : float
        q of the prefactor ``(1 + t)^q`` of the exponential model (0 for a pure
        exponential; NaN unless the verdict is exponential).
    fits : dict
        Both fitted models' parameters and residual sums of squares.
    """

    kind: str
    rate: float
    exponent: float
    shift: float
    constant: float
    r2: float
    window: tuple
    n_points: int
    bic_exponential: float
    bic_polynomial: float
    decades: float
    note: str
    power: float = float("nan")
    fits: dict = field(default_factory=dict)


def _bic(rss: float, n: int, k: int) -> float:
    # Residuals below ~1e-12 per point in log M are rounding, not misfit:
    # floor them, so that exact data never "prefers" a richer model.
    return n * np.log(max(rss, n * 1e-24) / n) + k * np.log(n)


def _fit_two_exponentials(tw, y, rate0):
    """Least-squares fit of ``log(C1 e^{-b1 t} + C2 e^{-b2 t})`` to ``y``, with ``b2 > b1 > 0``.

    Parametrised as ``(log C1, log b1, log C2, log(b2 - b1))``; started from
    the slopes of the last and first thirds of the window and from the
    single-exponential rate.  ``None`` when the window is too small or the fit
    fails.
    """
    n = y.size
    if n < 8 or tw[-1] <= tw[0]:
        return None
    k = max(3, n // 3)

    def slope(ts, ys):
        return -float(np.polyfit(ts, ys, 1)[0])

    b_tail, b_head = slope(tw[-k:], y[-k:]), slope(tw[:k], y[:k])
    if not (np.isfinite(b_tail) and np.isfinite(b_head)) or b_tail <= 0:
        return None
    b1 = min(b_tail, max(rate0, 1e-12))
    logc1 = float(np.median(y[-k:] + b1 * tw[-k:]))
    head_excess = np.exp(y[:k]) - np.exp(logc1 - b1 * tw[:k])

    def res(p):
        lc1, lb1, lc2, ld = p
        r1, r2 = np.exp(lb1), np.exp(lb1) + np.exp(ld)
        return np.logaddexp(lc1 - r1 * tw, lc2 - r2 * tw) - y

    def jac(p):
        lc1, lb1, lc2, ld = p
        r1, d = np.exp(lb1), np.exp(ld)
        w = scipy.special.expit((lc1 - r1 * tw) - (lc2 - (r1 + d) * tw))  # share of the slow term
        return np.column_stack([w, -r1 * tw, 1.0 - w, -(1.0 - w) * d * tw])

    sol = None
    # Several starts for the fast rate: a fast mode may only show in the
    # first few points, where the slope of the head third does not see it.
    for b2 in {max(b_head, 1.5 * b1), 3.0 * b1, 10.0 * b1}:
        logc2 = float(np.log(max(np.median(head_excess * np.exp(b2 * tw[:k])), 1e-300)))
        # Rates are bounded (log-rates in [-30, 12]) so e^{log b} never overflows.
        x0 = np.clip([logc1, np.log(b1), logc2, np.log(b2 - b1)], [-690, -29.9, -690, -29.9], [690, 11.9, 690, 11.9])
        try:
            cand = scipy.optimize.least_squares(res, x0, jac=jac, x_scale="jac", max_nfev=400,
                                                bounds=([-700, -30, -700, -30], [700, 12, 700, 12]))
        except (ValueError, FloatingPointError):
            continue
        if np.all(np.isfinite(cand.x)) and (sol is None or cand.cost < sol.cost):
            sol = cand
    if sol is None:
        return None
    lc1, lb1, lc2, ld = (float(v) for v in sol.x)
    r1, r2 = float(np.exp(lb1)), float(np.exp(lb1) + np.exp(ld))
    return dict(rate=r1, fast_rate=r2, log_c1=lc1, log_c2=lc2, rss=float(2 * sol.cost),
                slow_dominates_end=bool(lc1 - r1 * tw[-1] > lc2 - r2 * tw[-1]))


def _fit_decay_once(
    t,
    M,
    *,
    floor: float | None = None,
    relative_floor: float = 1e-11,
    min_decades: float = 1.0,
    min_time_decades: float = 1.0,
    bic_margin: float = 10.0,
    tail_fraction: float = 0.2,
    plateau_ratio: float = 1e-3,
    min_r2: float = 0.97,
    plateau_slope: float = 0.05,
    envelope: bool = True,
) -> DecayFit:
    """One fit of :func:`fit_decay` on the whole window (see its Notes)."""
    t = check_increasing("t", as_float_array("t", t, ndim=1))
    M = as_float_array("M", M, shape=(t.size,), finite=False)
    if np.any(np.isnan(M)) or np.any(M < 0):
        raise ValueError("`M` must be non-negative and not NaN.")
    if t.size < 4:
        raise ValueError(f"`t` must hold at least 4 points to fit a decay; got {t.size}.")
    nan = float("nan")

    def result(kind, note, **kw):
        base = dict(kind=kind, rate=nan, exponent=nan, shift=nan, constant=nan, r2=nan,
                    window=(float(tw[0]), float(tw[-1])) if tw.size else (nan, nan), n_points=int(tw.size),
                    bic_exponential=nan, bic_polynomial=nan, decades=decades, note=note, fits={})
        base.update(kw)
        return DecayFit(**base)

    peak = int(np.argmax(M))
    M_peak = float(M[peak])
    M_raw = M
    if envelope:
        # Running maximum from the right: removes the dips of oscillating
        # memories (zeros of rho) without changing monotone curves.  The peak
        # is taken first, so the transient before it is still skipped.
        M = np.maximum.accumulate(M[::-1])[::-1]
    if not np.isfinite(M_peak) or M_peak <= 0:
        tw = t[:0]
        decades = nan
        if M_peak == 0:
            return result("undetermined", "M is identically zero.")
        return result("non-decaying", "M is infinite.")
    # 1b. growing: the peak sits in the last tail_fraction of the window and the raw curve still
    # rises there (log-log slope above plateau_slope).  A fit after the peak would see too few
    # points and say "undetermined" of a curve whose verdict is plain.
    n_end = max(3, int(np.ceil(tail_fraction * t.size)))
    if peak >= t.size - n_end:
        tg, Mg = t[-n_end:], M_raw[-n_end:]
        if np.all(Mg > 0) and tg[0] > 0:
            up = float(np.polyfit(np.log(tg), np.log(Mg), 1)[0])
            growth = float(np.polyfit(tg, np.log(Mg), 1)[0])
            if up > plateau_slope and M_raw[-1] >= M_raw[-n_end]:
                tw = t[-n_end:]
                decades = nan
                return result("growing",
                              f"M still rises at the end of the window: log-log slope {up:.3g} and exponential "
                              f"growth rate {growth:.3g} over t in [{tg[0]:.3g}, {tg[-1]:.3g}]; its peak is the "
                              f"last points, so it does not decay on this window.",
                              fits={"growth": dict(rate=growth, loglog_slope=up)})
    fl = max(floor or 0.0, relative_floor * M_peak)
    tw, Mw = t[peak:], M[peak:]
    # A noise floor: the last points sit far below the peak and no longer decay
    # (their median is no larger than the median of the 10% before them, and
    # both are below plateau_ratio * peak); fit only what stands 10x above it.
    n10 = max(3, Mw.size // 10)
    if floor is None and Mw.size >= 3 * n10:
        last, before = np.median(Mw[-n10:]), np.median(Mw[-2 * n10 : -n10])
        if 0 < last < plateau_ratio * M_peak and before <= 3.0 * last:
            fl = max(fl, 10.0 * float(last))
    below = np.flatnonzero(Mw <= fl)
    if below.size:
        tw, Mw = tw[: below[0]], Mw[: below[0]]
    decades = float(np.log10(Mw[0] / Mw[-1])) if Mw.size else nan
    if envelope and tw.size >= 8:
        # An oscillating memory (several deep dips) decays along its peaks: fit
        # the local maxima of the raw curve, where the running maximum would
        # only offer a staircase.
        raw = M_raw[peak : peak + tw.size]
        inner = np.arange(1, raw.size - 1)
        maxima = inner[(raw[inner] >= raw[inner - 1]) & (raw[inner] > raw[inner + 1])]
        minima = inner[(raw[inner] <= raw[inner - 1]) & (raw[inner] < raw[inner + 1])]
        future_max = np.maximum.accumulate(raw[::-1])[::-1]
        deep = [i for i in minima if raw[i] < 0.5 * future_max[i]]  # below half of a later value
        if len(deep) >= 2 and maxima.size >= 4:
            keep = np.concatenate([[0], maxima])
            tw, Mw = tw[keep], raw[keep]
    if tw.size < 4:
        return result("undetermined", f"only {tw.size} points above the noise floor {fl:.3g} after the peak.")

    # 2. plateau: the tail is flat on log-log axes (|d log M / d log t| < plateau_slope),
    # which a power law with p >= plateau_slope or an exponential never is.
    n_tail = max(3, int(np.ceil(tail_fraction * tw.size)))
    tail_t, tail_M = tw[-n_tail:], Mw[-n_tail:]
    length = float(tw[-1] - tw[0])
    if tail_t[0] > 0 and tail_t[-1] > tail_t[0]:
        tail_slope = float(np.polyfit(np.log(tail_t), np.log(tail_M), 1)[0])
    else:
        tail_slope = -np.inf
    if tail_M.min() >= plateau_ratio * M_peak and abs(tail_slope) < plateau_slope:
        level = float(np.median(tail_M))
        return result("non-decaying",
                      f"the tail settles near {level:.3g} ({level / M_peak:.2g} of the peak): its log-log slope "
                      f"{tail_slope:.2g} is flatter than {plateau_slope} over t in [{tail_t[0]:.3g}, {tail_t[-1]:.3g}].",
                      constant=level)

    # 4. fits: exponential C e^{-beta t}, exponential with a polynomial prefactor
    # C (1 + t)^q e^{-beta t} (Jordan blocks), and a power law C (t + s)^{-p}.
    y = np.log(Mw)
    n = y.size
    tss = float(np.sum((y - y.mean()) ** 2)) or 1e-300
    A = np.column_stack([np.ones(n), -tw])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    rss_e = float(np.sum((A @ coef - y) ** 2))
    A3 = np.column_stack([np.ones(n), np.log1p(tw), -tw])
    coef3, *_ = np.linalg.lstsq(A3, y, rcond=None)
    rss_e3 = float(np.sum((A3 @ coef3 - y) ** 2))

    def poly_res(params):
        logC, p, logs = params
        return logC - p * np.log(tw + np.exp(logs)) - y

    def poly_jac(params):
        _, p, logs = params
        sh = np.exp(logs)
        return np.column_stack([np.ones(n), -np.log(tw + sh), -p * sh / (tw + sh)])

    # The shift is capped at the window's end: (t + s)^{-p} with s -> inf and
    # p / s fixed is e^{-beta t}, so an uncapped power law would swallow exponentials.
    best = None
    span = max(tw[-1], 1e-6)
    s_max = span
    for s0 in (1e-3 * span, 1e-2 * span, 0.1 * span, min(1.0, span), max(min(tw[0], span), 1e-6)):
        s0 = min(max(s0, 1e-9), s_max)
        lt = np.log(tw + s0)
        A2 = np.column_stack([np.ones(n), -lt])
        c2, *_ = np.linalg.lstsq(A2, y, rcond=None)
        sol = scipy.optimize.least_squares(poly_res, [c2[0], c2[1], np.log(s0)], jac=poly_jac,
                                           bounds=([-np.inf, -np.inf, np.log(1e-9)], [np.inf, np.inf, np.log(s_max) + 1e-12]),
                                           x_scale="jac", max_nfev=2000)
        if best is None or sol.cost < best.cost:
            best = sol
    logC_p, p_fit, logs_fit = best.x
    rss_p = float(2 * best.cost)
    s_fit = float(np.exp(logs_fit))
    bic_e2, bic_e3, bic_p = _bic(rss_e, n, 2), _bic(rss_e3, n, 3), _bic(rss_p, n, 3)
    mix = _fit_two_exponentials(tw, y, float(coef[1]))
    bic_e4 = _bic(mix["rss"], n, 4) if mix is not None else np.inf
    # The exponential family must owe at least one decade of decay to e^{-beta t} itself,
    # otherwise (1 + t)^q e^{-beta t} with beta ~ 0 is just a power law.
    e_ok2 = coef[1] * length >= np.log(10)
    # Jordan blocks give q > 0; a negative q only imitates a sum of exponentials
    # whose fast terms die early, and would understate the asymptotic rate.
    e_ok3 = coef3[2] * length >= np.log(10) and coef3[1] > 0
    # A mixture C1 e^{-b1 t} + C2 e^{-b2 t} (b2 > b1 > 0, both C > 0): a sum
    # of modes whose fast one dies inside the window.  Its rate is b1, which
    # must carry a decade of the decay and dominate the window's end (else b1
    # is not identified by the data).
    e_ok4 = mix is not None and mix["rate"] * length >= np.log(10) and mix["slow_dominates_end"]
    cands = [(bic_e2, "e2")] if e_ok2 else []
    if e_ok3:
        cands.append((bic_e3, "e3"))
    if e_ok4:
        cands.append((bic_e4, "e4"))
    bic_e, which = min(cands) if cands else (np.inf, "")
    # Prefer the simpler exponential families unless the mixture is decisively better.
    if which == "e4" and min([b for b, w in cands if w != "e4"], default=np.inf) <= bic_e4 + bic_margin:
        bic_e, which = min((b, w) for b, w in cands if w != "e4")
    if which == "e3":
        rate, q, logC_e, rss_sel = float(coef3[2]), float(coef3[1]), float(coef3[0]), rss_e3
    elif which == "e4":
        rate, q, logC_e, rss_sel = mix["rate"], 0.0, mix["log_c1"], mix["rss"]
    else:
        rate, q, logC_e, rss_sel = float(coef[1]), 0.0, float(coef[0]), rss_e
    fits = dict(exponential=dict(rate=float(coef[1]), constant=float(np.exp(min(coef[0], 700))), rss=rss_e),
                exponential_prefactor=dict(rate=float(coef3[2]), power=float(coef3[1]),
                                           constant=float(np.exp(min(coef3[0], 700))), rss=rss_e3),
                polynomial=dict(exponent=float(p_fit), shift=s_fit, constant=float(np.exp(min(logC_p, 700))), rss=rss_p))
    if mix is not None:
        fits["exponential_mixture"] = dict(rate=mix["rate"], fast_rate=mix["fast_rate"],
                                           constant=float(np.exp(min(mix["log_c1"], 700))),
                                           fast_constant=float(np.exp(min(mix["log_c2"], 700))), rss=mix["rss"])
    common = dict(bic_exponential=float(min(bic_e2, bic_e3, bic_e4)), bic_polynomial=float(bic_p), fits=fits)

    # 3. window too short
    if not decades >= min_decades:
        return result("undetermined",
                      f"M falls by only {decades:.2f} decades across t in [{tw[0]:.3g}, {tw[-1]:.3g}] "
                      f"(need {min_decades}); the window is too short to tell exponential from polynomial decay.",
                      **common)
    time_decades = float(np.log10((tw[-1] + s_fit) / (tw[0] + s_fit)))
    if bic_e + bic_margin < bic_p:
        r2 = 1 - rss_sel / tss
        if r2 < min_r2:
            return result("undetermined", f"the exponential model fits best but poorly (R^2 = {r2:.3f} < {min_r2}).",
                          **common)
        pref = f" with prefactor (1 + t)^{q:.3g}" if which == "e3" else ""
        if which == "e4":
            pref = f" (slowest of two modes; the other decays at {mix['fast_rate']:.3g})"
        return result("exponential",
                      f"exponential decay{pref} preferred (BIC {bic_e:.1f} vs power law {bic_p:.1f}); "
                      f"M falls {decades:.1f} decades.",
                      rate=rate, power=q, constant=float(np.exp(min(logC_e, 700))), r2=r2, **common)
    if bic_p + bic_margin < bic_e and p_fit > 0:
        r2 = 1 - rss_p / tss
        if r2 < min_r2:
            return result("undetermined", f"the power law fits best but poorly (R^2 = {r2:.3f} < {min_r2}).", **common)
        if time_decades < min_time_decades:
            return result("undetermined",
                          f"a power law fits best (p = {p_fit:.3g}) but t + s spans only {time_decades:.2f} decades "
                          f"(need {min_time_decades}).", **common)
        return result("polynomial",
                      f"power-law fit preferred (BIC {bic_p:.1f} vs {bic_e:.1f}) over {time_decades:.1f} decades of t + s.",
                      exponent=float(p_fit), shift=s_fit, constant=float(np.exp(min(logC_p, 700))), r2=r2, **common)
    return result("undetermined",
                  f"neither model is decisively better (BIC exponential {bic_e:.1f}, polynomial {bic_p:.1f}, "
                  f"margin {bic_margin}).", **common)


def fit_decay(t, M, **options) -> DecayFit:
    """Classify a memory curve as exponential, polynomial, non-decaying, growing or undetermined.

    The decay class is an asymptotic property, so when the whole window gives
    no decisive verdict (a fast early transient, a sum of exponentials whose
    fast terms die first) the head of the curve is skipped: the fit is
    repeated from the points where ``M`` has fallen by 1/4, 1/2 and then 3/4
    of its decades, and the first decisive verdict is returned (its note says
    which part was skipped).  The last start matters for sums of modes
    whose slow mode takes over late, after a near-cancellation of the
    kernel.  A window that is too short is never rescued.  An exponential
    verdict's rate is then re-estimated on the last half of the window's
    decades, where the asymptotic rate shows (a plateau before the decay or a
    polynomial prefactor no longer trades against it); the note and
    ``fits["whole_window"]`` keep the whole-window numbers.

    Parameters
    ----------
    t : array_like, shape (n,)
        Increasing non-negative times.
    M : array_like, shape (n,)
        Non-negative memory values.
    **options
        ``floor``, ``relative_floor``, ``min_decades``, ``min_time_decades``,
        ``bic_margin``, ``tail_fraction``, ``plateau_ratio``, ``min_r2``,
        ``plateau_slope``, ``envelope``: see the steps below.

    Returns
    -------
    DecayFit

    Notes
    -----
    Steps of one fit:

    0. With ``envelope=True`` (default) ``M`` is replaced by its running
       maximum from the right, ``max_{s >= t} M(s)``, so that isolated dips
       (an oscillating kernel passing through zero) do not spoil the fits.
    1. Window: start at the peak of ``M`` (skipping the transient growth of
       non-normal ``W``); drop points below the noise floor
       ``max(floor, relative_floor * max M)`` (default ``relative_floor``
       1e-11) and everything after the first such point.  Without ``floor``,
       a flat tail far below the peak is taken as the floor and only points
       10x above it are kept.  Growing: if the peak of ``M`` lies in the
       last ``tail_fraction`` of the grid and the raw curve still rises
       there (log-log slope above ``plateau_slope``), the verdict is
       "growing", with the tail's growth rate in ``fits["growth"]``.
    2. Non-decaying: the tail (last ``tail_fraction`` = 0.2 of the window)
       stays above ``plateau_ratio`` (1e-3) times the peak and is flat on
       log-log axes, ``|d log M / d log t| < plateau_slope`` (0.05).
    3. Too short: if ``M`` falls by fewer than ``min_decades`` (1) decades
       across the window, the verdict is "undetermined" whatever fits best,
       so a short window is never called exponential.
    4. Fit ``log M = log C - beta t`` and ``log M = log C + q log(1 + t) - beta t``
       with ``q > 0`` (Jordan blocks), by linear least squares, and
       ``log M = log C - p log(t + s)`` with ``0 < s <= t_end``
       (``scipy.optimize.least_squares``); compare BICs.  The winner must
       beat the other family by ``bic_margin`` (10) and reach
       ``R^2 >= min_r2`` (0.97) in log space; the exponential family must owe
       at least a decade of the decay to ``e^{-beta t}`` itself, and a
       polynomial verdict needs ``min_time_decades`` (1) decades of ``t + s``.
    """
    fit = _classify(t, M, options)
    if fit.kind != "exponential":
        return fit
    return _tail_rate(as_float_array("t", t, ndim=1), as_float_array("M", M, finite=False), fit, options)


def _tail_rate(t, M, fit, options):
    """Re-estimate an exponential verdict's rate on the last half of its decades.

    The rate is asymptotic; over a whole window a plateau before the decay
    (tanh saturation) or a polynomial prefactor trades against the rate.  If
    the tail alone is decisively exponential its fit is returned, with the
    whole-window numbers kept in ``fits["whole_window"]``.
    """
    lo, hi = fit.window
    sel = np.flatnonzero((t >= lo) & (t <= hi))
    if sel.size < 16:
        return fit
    env = np.maximum.accumulate(M[sel][::-1])[::-1]
    drop = np.log10(env[0] / np.maximum(env, 1e-300))
    later = np.flatnonzero(drop >= 0.5 * fit.decades)
    if later.size == 0 or sel.size - later[0] < 8:
        return fit
    start, stop = int(sel[later[0]]), int(sel[-1]) + 1
    # Only the window the whole fit kept (its noise floor was found there), and
    # the floor stays relative to the curve's peak, not to the tail's start.
    opts = dict(options)
    opts["floor"] = max(opts.get("floor") or 0.0, opts.get("relative_floor", 1e-11) * float(M[sel].max()))
    tail = _fit_decay_once(t[start:stop], M[start:stop], **opts)
    if tail.kind != "exponential":
        return fit
    # On a short tail (1 + t)^q e^{-beta t} can trade q against beta: q = 23 with beta = 1.1 has the
    # local slope of beta = 0.5.  A Jordan block adds 1 to q per size, so a tail that needs a prefactor
    # much steeper than the whole window's has not identified its rate: keep the whole-window fit.
    if tail.power > max(fit.power, 0.0) + 2.0:
        return fit
    whole = dict(rate=fit.rate, power=fit.power, window=fit.window, r2=fit.r2, note=fit.note)
    note = (f"{tail.note} Rate from the tail t >= {t[start]:.3g} (the last half of the decades); "
            f"on the window [{lo:.3g}, {hi:.3g}]: rate {fit.rate:.4g} ({fit.note})")
    return dataclasses.replace(tail, note=note, fits={**tail.fits, "whole_window": whole})


def _classify(t, M, options) -> DecayFit:
    first = _fit_decay_once(t, M, **options)
    if first.kind != "undetermined" or "too short" in first.note or not np.isfinite(first.decades):
        return first
    t_arr = as_float_array("t", t, ndim=1)
    M_arr = as_float_array("M", M, shape=(t_arr.size,), finite=False)
    peak = int(np.argmax(M_arr))
    logs = np.log10(M_arr[peak] / np.maximum(M_arr, 1e-300))
    for frac in (0.25, 0.5, 0.75):
        later = np.flatnonzero((np.arange(t_arr.size) > peak) & (logs >= frac * first.decades))
        if later.size == 0 or t_arr.size - later[0] < 4:
            continue
        start = int(later[0])
        fit = _fit_decay_once(t_arr[start:], M_arr[start:], **options)
        if fit.kind in ("exponential", "polynomial", "non-decaying"):
            note = f"{fit.note} (the head t < {t_arr[start]:.3g}, {frac:.0%} of the decades, was skipped: " \
                   f"on the whole window: {first.note})"
            return dataclasses.replace(fit, note=note)
    return first


# --------------------------------------------------------------------------
# log-log slopes


@dataclass(frozen=True)
class SlopeFit:
    """A log-log least-squares slope with a 95% confidence interval."""

    slope: float
    intercept: float
    stderr: float
    ci_low: float
    ci_high: float
    n_points: int

    def to_dict(self) -> dict:
        return dict(slope=self.slope, intercept=self.intercept, stderr=self.stderr, ci=[self.ci_low, self.ci_high],
                    n_points=self.n_points)


def loglog_slope(x, y, *, level: float = 0.95) -> SlopeFit:
    r"""Slope of :math:`\log y` on :math:`\log x` with a Student-t confidence interval.

    Non-finite or non-positive pairs are dropped; fewer than three points give
    a NaN interval.
    """
    x = as_float_array("x", x, finite=False).ravel()
    y = as_float_array("y", y, finite=False).ravel()
    if x.shape != y.shape:
        raise ValueError(f"`x` and `y` must have the same length (one y per x); got {x.size} and {y.size}.")
    level = check_positive("level", level)
    if not level < 1:
        raise ValueError(f"`level` must lie in (0, 1); got {level!r}.")
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    n = int(ok.sum())
    if n < 2 or np.unique(x[ok]).size < 2:
        nan = float("nan")
        return SlopeFit(nan, nan, nan, nan, nan, n)
    r = scipy.stats.linregress(np.log(x[ok]), np.log(y[ok]))
    if n >= 3:
        q = float(scipy.stats.t.ppf(0.5 + level / 2, n - 2))
        lo, hi = r.slope - q * r.stderr, r.slope + q * r.stderr
    else:
        lo = hi = float("nan")
    return SlopeFit(float(r.slope), float(r.intercept), float(r.stderr), float(lo), float(hi), n)
