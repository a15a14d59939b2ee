"""Fully constrained least squares (FCLS) abundance estimation, batched over all pixels.

For every pixel ``y`` (``n_bands``) and endmember matrix ``E`` (``p x n_bands``) FCLS solves

    minimise ||E^T a - y||^2   subject to   a >= 0,  sum(a) = 1.

The solver is a primal active-set method (Lawson & Hanson, *Solving Least Squares Problems*, 1974,
extended with the sum-to-one equality constraint) run for all pixels at once: every pixel keeps its
own passive set ``P`` (the abundances allowed to be non-zero), and each iteration solves the
equality-constrained KKT system restricted to ``P``

    [ G_PP  1 ] [ a_P ]   [ (E y)_P ]
    [ 1^T   0 ] [ mu  ] = [    1    ],        G = E E^T,

for every unconverged pixel at once. The rows and columns outside ``P`` are replaced by identity
rows, so all systems share one ``(p + 1) x (p + 1)`` shape; pixels sharing a passive set share the
matrix, so it is inverted once per distinct pattern (batched :func:`numpy.linalg.inv`) and applied
to all their right-hand sides in one batched product. The first iteration (every endmember
passive) is a single affine map of ``E y`` for all pixels and already solves every pixel whose
sum-to-one least-squares solution is non-negative; for pixels with a single negative abundance the
next step is a closed-form rank-one update of that solution; the remaining iterations only touch
the other pixels. The only Python loop is over active-set iterations, few (typically fewer than
``p``) and over shrinking sets of pixels. The result is the exact FCLS optimum, not a penalty
approximation.
"""

from __future__ import annotations

import warnings

import numpy as np

from xr_unmixsr.errors import InvalidDataError, ParameterError, UnmixSRWarning

__all__ = ["fcls", "reconstruction_rmse"]

#: Memory bound (elements) per chunk: ``chunk x (p + 1)^2`` for the batched KKT products, and
#: ``chunk x n_bands / 4`` for the float64 copy of non-float64 input.
_MAX_ELEMENTS = 1 << 22
#: Upper bound on pixels per chunk.
_MAX_CHUNK = 65536
#: Relative eigenvalue floor of ``G`` below which a tiny ridge is added (duplicate endmembers).
_RIDGE_REL = 1e-12


def _check_inputs(pixels: np.ndarray, endmembers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate shapes and return ``(pixels, endmembers as float64)``."""
    pixels = np.asarray(pixels)
    endmembers = np.asarray(endmembers)
    if pixels.ndim != 2:
        raise ParameterError(
            f"pixels must be 2-D (n_pixels, n_bands), got shape {pixels.shape}; "
            "reshape the cube to (-1, n_bands) first"
        )
    if endmembers.ndim != 2:
        raise ParameterError(
            f"endmembers must be 2-D (n_endmembers, n_bands), got shape {endmembers.shape}"
        )
    if endmembers.shape[1] != pixels.shape[1]:
        raise ParameterError(
            f"endmembers have {endmembers.shape[1]} bands but pixels have {pixels.shape[1]}; "
            "pass endmembers with one value per band of the pixels (shape (p, n_bands))"
        )
    if endmembers.shape[0] < 1:
        raise ParameterError("at least one endmember is needed; pass a (p, n_bands) array, p >= 1")
    for name, arr in (("pixels", pixels), ("endmembers", endmembers)):
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise InvalidDataError(f"{name} must be numeric (float or int), got dtype {arr.dtype}")
    endmembers = endmembers.astype(np.float64)
    if not np.all(np.isfinite(endmembers)):
        raise InvalidDataError(
            "endmembers contain NaN or inf; drop or repair those bands before unmixing"
        )
    return pixels, endmembers


def _kkt_inverses(gram: np.ndarray, patterns: np.ndarray) -> np.ndarray:
    """Inverses of the ``(p + 1) x (p + 1)`` KKT matrices of the given passive-set patterns.

    For a pattern ``P`` the matrix is ``[[G_PP, 1], [1^T, 0]]`` with the rows and columns of the
    bound abundances replaced by identity rows/columns (so they solve to zero). A singular matrix
    (degenerate endmembers) gets its pseudo-inverse, i.e. the minimum-norm solution.
    """
    u, p = patterns.shape
    kkt = np.zeros((u, p + 1, p + 1))
    kkt[:, :p, :p] = gram * (patterns[:, :, None] & patterns[:, None, :])
    diag = np.arange(p)
    kkt[:, diag, diag] += ~patterns
    kkt[:, :p, p] = patterns
    kkt[:, p, :p] = patterns
    try:
        inv = np.linalg.inv(kkt)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(kkt)
    bad = ~np.all(np.isfinite(inv), axis=(1, 2))
    if bad.any():
        inv[bad] = np.linalg.pinv(kkt[bad])
    return inv


def _solve_kkt(gram: np.ndarray, rhs: np.ndarray, passive: np.ndarray) -> np.ndarray:
    """Solve the sum-to-one constrained LS restricted to each row's passive set.

    Pixels sharing a passive set share the KKT matrix, so the matrix is inverted once per distinct
    pattern (at most ``2^p``, in practice a few dozen) and applied to all their right-hand sides in
    one batched product; no per-pixel factorisation.

    Args:
        gram: ``(p, p)`` Gram matrix ``E E^T``.
        rhs: ``(m, p)`` right-hand sides ``E y`` per pixel.
        passive: ``(m, p)`` boolean passive sets (each row has at least one ``True``).

    Returns:
        ``(m, p + 1)``: the abundances (zero outside the passive set) and, in the last column, the
        Lagrange multiplier ``mu`` of the sum-to-one constraint.
    """
    m, p = rhs.shape
    b = np.empty((m, p + 1))
    np.multiply(rhs, passive, out=b[:, :p])
    b[:, p] = 1.0
    if p <= 16:  # pattern code -> dense table lookup (no sort)
        codes = passive.astype(np.float64) @ (2.0 ** np.arange(p))
        codes = codes.astype(np.intp)
        table = np.full(1 << p, -1, dtype=np.intp)
        table[codes] = 0
        present = np.flatnonzero(table == 0)
        table[present] = np.arange(present.size)
        which = table[codes]
        patterns = ((present[:, None] >> np.arange(p)) & 1).astype(bool)
    elif p <= 52:  # pattern codes are exact in float64
        codes = passive.astype(np.float64) @ (2.0 ** np.arange(p))
        _, first, which = np.unique(codes, return_index=True, return_inverse=True)
        patterns = passive[first]
        which = which.reshape(-1)
    else:
        patterns, which = np.unique(passive, axis=0, return_inverse=True)
        which = which.reshape(-1)
    inv = _kkt_inverses(gram, patterns)
    if inv.shape[0] == 1:
        sol = b @ inv[0].T
    else:
        sol = np.einsum("nij,nj->ni", inv[which], b)
    sol[:, :p] *= passive
    return sol


def _any_rows(mask: np.ndarray) -> np.ndarray:
    """``mask.any(axis=1)`` for an ``(m, p)`` boolean array, as ``p`` column passes (faster)."""
    out = mask[:, 0].copy()
    for k in range(1, mask.shape[1]):
        out |= mask[:, k]
    return out


def _drop_single_negative(
    rhs_t: np.ndarray, z_t: np.ndarray, inv: np.ndarray, gram: np.ndarray, tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form first active-set step for pixels with exactly one negative abundance.

    Fixing abundance ``k`` at zero in the all-passive problem (KKT inverse ``M``) gives
    ``x' = x - M[:, k] x_k / M[k, k]`` (a rank-one update, no factorisation). Where ``x'`` is
    non-negative and the multiplier of the new bound is ``>= -tol``, ``x'`` satisfies the KKT
    conditions, i.e. it is the FCLS optimum. This is exactly the first iteration of
    :func:`_active_set` for those pixels, done in the ``(p, pixels)`` layout.

    Args:
        rhs_t: ``(p, t)`` scaled ``E y``.
        z_t: ``(p, t)`` all-passive solutions (each column has a negative entry).
        inv: ``(p + 1, p + 1)`` inverse of the all-passive KKT matrix.
        gram: ``(p, p)`` scaled Gram matrix.
        tol: Optimality tolerance on the multipliers.

    Returns:
        ``(done, solution)``: boolean mask over the ``t`` pixels, and the ``(p, done.sum())``
        optimal abundances of the pixels it marks.
    """
    p, t = z_t.shape
    # Row-wise loops over the p endmembers: numpy reductions over a short leading axis are slow.
    count = np.zeros(t, dtype=np.intp)
    k_all = np.zeros(t, dtype=np.intp)
    for i, row in enumerate(z_t):
        neg_i = row < 0
        count += neg_i
        k_all[neg_i] = i
    cols = np.flatnonzero(count == 1)
    k = k_all[cols]
    pivot = np.diagonal(inv)[k]
    ok = pivot > np.finfo(float).eps * np.abs(inv).max()
    if not ok.all():
        cols, k, pivot = cols[ok], k[ok], pivot[ok]
    x = np.empty((p + 1, cols.size))
    x[:p] = z_t[:, cols]
    x[p] = inv[p, :p] @ rhs_t[:, cols] + inv[p, p]
    r = np.arange(cols.size)
    x -= inv[:, k] * (x[k, r] / pivot)
    x[k, r] = 0.0
    a = x[:p]
    nonneg = a[0] >= 0
    for row in a[1:]:
        nonneg &= row >= 0
    nu_k = (gram @ a)[k, r] - rhs_t[k, cols] + x[p]
    good = nonneg & (nu_k >= -tol)
    done = np.zeros(t, dtype=bool)
    done[cols[good]] = True
    return done, a[:, good]


def _active_set(
    rhs: np.ndarray, z0: np.ndarray, gram: np.ndarray, max_iter: int, tol: float
) -> tuple[np.ndarray, int]:
    """Primal active-set FCLS for pixels whose all-passive solution ``z0`` has negative entries.

    Args:
        rhs: ``(m, p)`` scaled right-hand sides ``E y``.
        z0: ``(m, p)`` sum-to-one least-squares solutions (rows sum to 1, some entries < 0).
        gram: ``(p, p)`` scaled Gram matrix.
        max_iter: Maximum number of iterations.
        tol: Optimality tolerance on the multipliers.

    Returns:
        The ``(m, p)`` abundances and the number of pixels that hit ``max_iter``.
    """
    m, p = rhs.shape
    # Feasible start: clip and renormalise; the passive set is its support.
    abund = np.clip(z0, 0.0, None)
    abund /= abund.sum(axis=1, keepdims=True)
    passive = abund > 0
    todo = np.arange(m)
    last_added = np.full(m, -1)

    for _ in range(max_iter):
        if todo.size == 0:
            break
        pas = passive[todo]
        cur = abund[todo]
        sol = _solve_kkt(gram, rhs[todo], pas)
        z, mu = sol[:, :p], sol[:, p]
        blocking = pas & (z <= 0)
        infeasible = _any_rows(blocking)

        # (a) z feasible: accept it, then test the multipliers of the bound abundances.
        ok = ~infeasible
        idx_ok = todo[ok]
        z_ok = z[ok]
        abund[idx_ok] = z_ok
        nu = z_ok @ gram - rhs[idx_ok] + mu[ok, None]  # KKT: nu >= 0 on the bound set
        nu[passive[idx_ok]] = np.inf
        j = np.argmin(nu, axis=1)
        improvable = nu[np.arange(idx_ok.size), j] < -tol
        grow = idx_ok[improvable]
        passive[grow, j[improvable]] = True
        last_added[grow] = j[improvable]
        still = np.zeros(todo.size, dtype=bool)
        still[np.flatnonzero(ok)[improvable]] = True

        # (b) z infeasible: step from the feasible point towards z until the first bound is hit.
        bad = np.flatnonzero(infeasible)
        if bad.size:
            idx_bad = todo[bad]
            a0, z1, blk = cur[bad], z[bad], blocking[bad]
            # a0 > 0 on P except for an index added in the previous iteration (a0 = 0 there), and
            # z <= 0 where blocking, so the denominator is >= a0 >= 0; 0/0 means a ratio of 0.
            denom = a0 - z1
            safe = np.where(denom > 0, denom, 1.0)
            ratio = np.where(blk, np.where(denom > 0, a0 / safe, 0.0), np.inf)
            k = np.argmin(ratio, axis=1)
            alpha = np.clip(ratio[np.arange(bad.size), k], 0.0, 1.0)
            new = a0 + alpha[:, None] * (z1 - a0)
            # The blocking index leaves the passive set, and so does anything now at/below zero.
            new[np.arange(bad.size), k] = 0.0
            new_pas = passive[idx_bad] & (new > 0)
            new = np.where(new_pas, new, 0.0)
            # Numerical stall: the index just added blocks at once (its multiplier was only
            # negative through round-off) -> the previous point is optimal to working precision.
            stalled = (alpha <= 0) & (k == last_added[idx_bad])
            keep = ~stalled
            new /= new.sum(axis=1, keepdims=True)  # > 0: the step keeps sum(new) = 1
            abund[idx_bad[keep]] = new[keep]
            passive[idx_bad[keep]] = new_pas[keep]
            passive[idx_bad[stalled], k[stalled]] = False
            last_added[idx_bad] = -1
            still[bad[keep]] = True
        todo = todo[still]
    return abund, int(todo.size)


def fcls(
    pixels: np.ndarray,
    endmembers: np.ndarray,
    *,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> np.ndarray:
    """Fully constrained least-squares abundances (non-negative, summing to one) for all pixels.

    Solves ``min ||E^T a - y||^2  s.t.  a >= 0, sum(a) = 1`` exactly for every pixel ``y`` with a
    batched active-set method (no per-pixel solver calls); see the module docstring.

    Args:
        pixels: ``(n_pixels, n_bands)`` spectra (any real dtype; computed in float64). Rows with a
            NaN or inf (or values so large that their sum overflows) get NaN abundances; other
            rows are unaffected.
        endmembers: ``(p, n_bands)`` endmember spectra. Duplicate or collinear endmembers are
            allowed (a tiny ridge keeps the systems solvable; the result stays finite and feasible).
        max_iter: Maximum number of active-set iterations per chunk of pixels. Convergence normally
            takes fewer than ``2 * p``; a pixel still unconverged after ``max_iter`` keeps its last
            feasible (non-negative, sum-to-one) iterate.
        tol: Optimality tolerance on the KKT multipliers, relative to the squared norm of the
            largest endmember.

    Returns:
        ``(n_pixels, p)`` float64 abundances, ``>= 0`` with rows summing to 1.

    Raises:
        ParameterError: Shapes do not match, or ``max_iter``/``tol`` are out of range.
        InvalidDataError: Non-numeric input, or non-finite endmembers.
    """
    pixels, endm = _check_inputs(pixels, endmembers)
    if int(max_iter) < 1:
        raise ParameterError(f"max_iter must be >= 1, got {max_iter}")
    if not tol >= 0:
        raise ParameterError(f"tol must be >= 0, got {tol}")
    n, _ = pixels.shape
    p = endm.shape[0]
    out = np.empty((n, p))
    if n == 0:
        return out

    # Scale so that the largest endmember has unit norm: abundances are scale invariant and the
    # tolerances become relative.
    scale = float(np.sqrt(np.max(np.einsum("ij,ij->i", endm, endm))))
    if scale == 0.0:  # all endmembers zero: every feasible a is optimal
        out[:] = 1.0 / p
        out[~np.all(np.isfinite(pixels), axis=1)] = np.nan
        return out
    endm = endm / scale
    gram = endm @ endm.T
    eig = np.linalg.eigvalsh(gram)
    floor = _RIDGE_REL * eig[-1]
    if eig[0] < floor:
        gram = gram + (floor - min(eig[0], 0.0)) * np.eye(p)
    # One BLAS pass over the data gives the scaled right-hand sides E y / scale^2 and, in the last
    # row, the pixel sums, whose finiteness flags pixels holding a NaN or inf. Work is done in the
    # (p, n_pixels) layout, where element-wise operations run over long contiguous rows.
    weights_t = np.vstack([endm / scale, np.ones((1, endm.shape[1]))])
    # All-passive KKT system, shared by every pixel: the solution is an affine map of E y.
    inv = _kkt_inverses(gram, np.ones((1, p), dtype=bool))[0]
    lin, offset = np.ascontiguousarray(inv[:p, :p]), inv[:p, p : p + 1]

    chunk = min(_MAX_CHUNK, _MAX_ELEMENTS // (p + 1) ** 2)
    if pixels.dtype != np.float64:  # each chunk is copied to float64: bound that copy too
        chunk = min(chunk, 4 * _MAX_ELEMENTS // pixels.shape[1])
    chunk = int(max(256, chunk))
    n_left = 0
    for start in range(0, n, chunk):
        block = np.asarray(pixels[start : start + chunk], dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf pixels are masked below
            rhs_t = weights_t @ block.T  # (p + 1, m)
            abund_t = lin @ rhs_t[:p]
            abund_t += offset
        finite = np.isfinite(rhs_t[p])
        for row in rhs_t[:p]:
            finite &= np.isfinite(row)
        if not finite.all():
            abund_t[:, ~finite] = np.nan
        neg = abund_t[0] < 0  # NaN < 0 is False: invalid pixels stay out
        for row in abund_t[1:]:
            neg |= row < 0
        todo = np.flatnonzero(neg)
        if todo.size:
            # Most such pixels have a single negative abundance, and dropping it is optimal.
            done, sol = _drop_single_negative(rhs_t[:p, todo], abund_t[:, todo], inv, gram, tol)
            abund_t[:, todo[done]] = sol
            todo = todo[~done]
        if todo.size:
            sub, left = _active_set(
                np.ascontiguousarray(rhs_t[:p, todo].T),
                np.ascontiguousarray(abund_t[:, todo].T),
                gram,
                int(max_iter),
                float(tol),
            )
            n_left += left
            np.clip(sub, 0.0, None, out=sub)
            abund_t[:, todo] = sub.T
        abund_t /= abund_t.sum(axis=0)
        out[start : start + chunk] = abund_t.T
    if n_left:
        warnings.warn(
            f"fcls: {n_left} pixel(s) did not converge in max_iter={max_iter} active-set "
            "iterations; their abundances are feasible but may be slightly suboptimal "
            "(raise max_iter)",
            UnmixSRWarning,
            stacklevel=2,
        )
    return out


def reconstruction_rmse(
    pixels: np.ndarray, endmembers: np.ndarray, abundances: np.ndarray
) -> np.ndarray:
    """Per-pixel root-mean-square reconstruction error over bands.

    Args:
        pixels: ``(n_pixels, n_bands)`` spectra.
        endmembers: ``(p, n_bands)`` endmember spectra.
        abundances: ``(n_pixels, p)`` abundances (e.g. from :func:`fcls`).

    Returns:
        ``(n_pixels,)`` float64: ``sqrt(mean_b((y - a @ E)^2))`` for each pixel.

    Raises:
        ParameterError: The shapes are inconsistent.
    """
    pixels, endm = _check_inputs(pixels, endmembers)
    abundances = np.asarray(abundances, dtype=np.float64)
    if abundances.shape != (pixels.shape[0], endm.shape[0]):
        raise ParameterError(
            f"abundances must have shape (n_pixels, p) = {(pixels.shape[0], endm.shape[0])}, "
            f"got {abundances.shape}"
        )
    n = pixels.shape[0]
    out = np.empty(n)
    chunk = int(max(256, min(_MAX_CHUNK, _MAX_ELEMENTS // max(pixels.shape[1], 1))))
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        diff = np.asarray(pixels[sl], dtype=np.float64) - abundances[sl] @ endm
        out[sl] = np.sqrt(np.mean(diff * diff, axis=1))
    return out
