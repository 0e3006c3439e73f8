"""ZCA whitening fitted on patches: decorrelates pixels while staying close to the input (Bell & Sejnowski)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ._common import as_patches, positive_float


class ZCAWhitening:
    """x ↦ (x − mean) · M with M = U diag(1/sqrt(λ + eps)) Uᵀ from the patch covariance U diag(λ) Uᵀ.

    ``fit`` stores ``mean`` (d,) and the symmetric ``matrix`` M (d, d) so the same transform
    applies to later patches. ``eps`` caps the gain on low-variance directions (noise, and the
    zero-variance direction left by contrast normalization): whitened covariance is
    diag(λ/(λ + eps)), the identity for eps → 0.
    """

    def __init__(self, eps: float = 0.1):
        self.eps = positive_float(eps, "ZCAWhitening", "eps")
        self.mean: Optional[np.ndarray] = None
        self.matrix: Optional[np.ndarray] = None

    def fit(self, patches) -> "ZCAWhitening":
        """Estimate mean and whitening matrix from (n, d) patches (in float64; stored in their dtype)."""
        x = as_patches(patches, "ZCAWhitening.fit")
        mean = x.mean(axis=0, dtype=np.float64)
        centered = x.astype(np.float64) - mean
        cov = centered.T @ centered / x.shape[0]
        eigvals, eigvecs = np.linalg.eigh(cov)
        eigvals = np.clip(eigvals, 0.0, None)  # round-off can make tiny eigenvalues negative
        matrix = (eigvecs / np.sqrt(eigvals + self.eps)) @ eigvecs.T
        self.mean = mean.astype(x.dtype)
        self.matrix = ((matrix + matrix.T) / 2).astype(x.dtype)
        return self

    def _check_fitted(self, patches, op: str) -> np.ndarray:
        if self.matrix is None:
            raise ValueError(f"{op}: call fit(patches) first")
        x = as_patches(patches, op)
        if x.shape[1] != self.matrix.shape[0]:
            raise ValueError(f"{op}: expected patches with {self.matrix.shape[0]} values (as in fit), "
                             f"got shape {x.shape}")
        return x

    def transform(self, patches) -> np.ndarray:
        """Whitened copy of (n, d) patches, in the fitted dtype."""
        x = self._check_fitted(patches, "ZCAWhitening.transform").astype(self.matrix.dtype, copy=False)
        return (x - self.mean) @ self.matrix

    def fit_transform(self, patches) -> np.ndarray:
        return self.fit(patches).transform(patches)

    def __repr__(self) -> str:
        d = "unfitted" if self.matrix is None else f"d={self.matrix.shape[0]}"
        return f"ZCAWhitening(eps={self.eps}, {d})"
