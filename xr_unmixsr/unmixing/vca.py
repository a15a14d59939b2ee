"""Vertex Component Analysis (VCA) endmember extraction.

Implements J. M. P. Nascimento and J. M. Bioucas-Dias, "Vertex Component Analysis: A Fast Algorithm
to Unmix Hyperspectral Data", IEEE TGRS 43(4), 898-910, 2005:

1. Estimate the signal-to-noise ratio from the power of the data and of its projection on the first
   ``p`` principal directions (paper eq. 13).
2. If the SNR exceeds ``15 + 10 log10(p)`` dB, project the data on the first ``p`` directions of
   the (uncentred) correlation matrix and then *projectively* onto the hyperplane ``u^T x = 1``
   (``u`` the mean of the projected data); otherwise project on the first ``p - 1`` principal
   components of the centred data and append a constant coordinate ``c = max ||x||``.
3. Repeat ``p`` times: draw a random direction orthogonal to the subspace spanned by the endmembers
   found so far, project the data on it and take the pixel with the largest absolute projection as
   the next endmember.
"""

from __future__ import annotations

import numpy as np

from xr_unmixsr.errors import InvalidDataError, ParameterError

__all__ = ["vca"]


def _top_eigvecs(mat: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` eigenvectors of the symmetric ``mat`` with the largest eigenvalues (columns).

    Signs are fixed (largest-magnitude component positive) so that results do not depend on the
    LAPACK build's arbitrary choice of sign.
    """
    _, vecs = np.linalg.eigh(mat)
    vecs = vecs[:, ::-1][:, :k]
    pivot = vecs[np.argmax(np.abs(vecs), axis=0), np.arange(vecs.shape[1])]
    return vecs * np.where(pivot < 0, -1.0, 1.0)


def _snr_from(
    data: np.ndarray, centred: np.ndarray, mean: np.ndarray, u_d: np.ndarray, p: int
) -> float:
    """SNR estimate in dB (paper eq. 13) from the data, its centred copy, mean and first ``p`` PCs.

    The signal power is the power of the data projected on its first ``p`` principal components
    plus the power of the mean; what is left is counted as noise. Returns ``inf`` when the data lie
    (numerically) in that subspace and ``-inf`` when the signal estimate is not positive.
    """
    n, n_bands = data.shape
    p_y = float(np.einsum("ij,ij->", data, data)) / n
    proj = centred @ u_d
    p_x = float(np.einsum("ij,ij->", proj, proj)) / n + float(mean @ mean)
    signal = p_x - p / n_bands * p_y
    noise = p_y - p_x
    # Round-off: noise below ~1e-12 of the total power counts as no noise at all.
    if noise <= 1e-12 * max(p_y, np.finfo(float).tiny):
        return float("inf")
    if signal <= 0:
        return float("-inf")
    return float(10.0 * np.log10(signal / noise))


def vca(
    pixels: np.ndarray,
    n_endmembers: int,
    *,
    seed: int | None = 0,
    snr: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Extract endmembers with Vertex Component Analysis (Nascimento & Bioucas-Dias 2005).

    VCA assumes the linear mixing model with pure (or nearly pure) pixels present: the endmembers
    are the vertices of the simplex that contains the data, and they are picked among the pixels.

    Args:
        pixels: ``(n_pixels, n_bands)`` spectra (any real dtype; computed in float64). All values
            must be finite (drop nodata pixels first).
        n_endmembers: Number of endmembers ``p`` to extract, ``2 <= p <= n_bands`` and
            ``p <= n_pixels``.
        seed: Seed of the random directions (:func:`numpy.random.default_rng`); the same seed on
            the same data gives the same result. ``None`` draws fresh entropy.
        snr: Known signal-to-noise ratio in dB. ``None`` (default) estimates it from the data as in
            the paper; it only selects the projection (projective above ``15 + 10 log10(p)`` dB,
            subspace projection otherwise).

    Returns:
        ``(endmembers, indices)``: ``endmembers`` is ``(p, n_bands)`` float64, the chosen pixels
        after projection on the estimated signal subspace (the paper's output, which removes the
        noise outside that subspace); ``indices`` is ``(p,)`` int64, the rows of ``pixels`` that
        were chosen (``pixels[indices]`` are the raw spectra).

    Raises:
        ParameterError: ``n_endmembers < 2``, ``n_endmembers > n_bands``, fewer pixels than
            endmembers, or ``pixels`` not 2-D.
        InvalidDataError: Non-numeric or non-finite input.
    """
    data = np.asarray(pixels)
    if data.ndim != 2:
        raise ParameterError(
            f"pixels must be 2-D (n_pixels, n_bands), got shape {data.shape}; "
            "reshape the cube to (-1, n_bands) first"
        )
    if not (np.issubdtype(data.dtype, np.floating) or np.issubdtype(data.dtype, np.integer)):
        raise InvalidDataError(f"pixels must be numeric (float or int), got dtype {data.dtype}")
    n, n_bands = data.shape
    if isinstance(n_endmembers, bool) or not isinstance(n_endmembers, (int, np.integer)):
        raise ParameterError(f"n_endmembers must be an integer, got {n_endmembers!r}")
    p = int(n_endmembers)
    if p < 2:
        raise ParameterError(
            f"n_endmembers must be at least 2, got {p}; ask for 2 or more endmembers"
        )
    if p > n_bands:
        raise ParameterError(
            f"n_endmembers ({p}) exceeds the number of bands ({n_bands}); a linear mixture of "
            f"{n_bands} bands can identify at most {n_bands} endmembers, so ask for fewer"
        )
    if n < p:
        raise ParameterError(
            f"only {n} pixel(s) for {p} endmembers; VCA picks endmembers among the pixels, so pass "
            "at least as many valid pixels as endmembers (or ask for fewer endmembers)"
        )
    data = data.astype(np.float64)
    if not np.all(np.isfinite(data)):
        raise InvalidDataError(
            "pixels contain NaN or inf; remove nodata pixels (rows) before running VCA"
        )

    mean = data.mean(axis=0)
    centred = data - mean
    u_pca = _top_eigvecs(centred.T @ centred / n, p)
    if snr is None:
        snr = _snr_from(data, centred, mean, u_pca, p)
    snr_threshold = 15.0 + 10.0 * np.log10(p)

    if snr > snr_threshold:
        # Projective projection: p-dim subspace of the correlation matrix, then onto u^T x = 1.
        u_d = _top_eigvecs(data.T @ data / n, p)
        x = data @ u_d
        offset = np.zeros(n_bands)
        u = x.mean(axis=0)
        denom = x @ u
        # Pixels (numerically) orthogonal to the mean direction, e.g. all-zero spectra, cannot be
        # projected; map them to the origin so they are never picked as vertices.
        tiny = np.finfo(float).eps * max(float(np.max(np.abs(denom))), np.finfo(float).tiny)
        scale = np.where(np.abs(denom) > tiny, 1.0 / np.where(denom == 0, 1.0, denom), 0.0)
        y = x * scale[:, None]
    else:
        # Subspace projection: p - 1 principal components plus a constant coordinate.
        u_d = u_pca[:, : p - 1]
        x = centred @ u_d
        offset = mean
        c = float(np.sqrt(np.max(np.einsum("ij,ij->i", x, x))))
        y = np.hstack([x, np.full((n, 1), c)])

    rng = np.random.default_rng(seed)
    basis = np.zeros((p, p))
    basis[p - 1, 0] = 1.0  # e_u: makes the first direction orthogonal to the constant/mean axis
    indices = np.zeros(p, dtype=np.int64)
    for i in range(p):
        w = rng.standard_normal(p)
        f = w - basis @ (np.linalg.pinv(basis) @ w)
        norm = np.linalg.norm(f)
        if norm > 0:
            f /= norm
        v = y @ f
        k = int(np.argmax(np.abs(v)))
        basis[:, i] = y[k]
        indices[i] = k
    # The chosen pixels, projected on the signal subspace (back in band space).
    return x[indices] @ u_d.T + offset, indices
