"""Synthetic face encodings that look like face_recognition's, for tests and
the benchmark (real galleries of 1M people cannot ship with the repo).

Measured on real encodings (face_recognition 1.3, dlib's ResNet; astronaut,
grace_hopper, zidane, bus): norms 1.25-1.46, a large shared component (the
mean of six people's encodings has norm ~1.32), different people 0.62-0.90
apart, one photo re-cropped / mirrored / re-lit / rescaled 0.06-0.26 apart;
different photos of one person are typically 0.3-0.5 apart (dlib's
published behaviour, and why 0.6 is the tolerance).

The model: every encoding = shared mean (norm 1.32) + identity + sample noise.
Identities vary mostly within a 16-dimensional subspace (face embeddings have
a low intrinsic dimension, ~10-20 in Gong, Boddeti & Jain, CVPR 2019) plus a
small full-rank part; sample noise is isotropic. With the defaults: norms
~1.44, the same person ~0.37 apart, different people ~0.81 apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIM = 128


@dataclass(frozen=True)
class FaceModel:
    mean_norm: float = 1.32
    latent_dim: int = 16
    identity_spread: float = 0.50  # norm of an identity's offset in the latent subspace
    identity_residual: float = 0.15  # norm of its full-rank part
    sample_noise: float = 0.26  # norm of one photo's deviation from its identity


class SyntheticFaces:
    """A reproducible population of identities and their encodings."""

    def __init__(self, seed: int = 0, model: FaceModel | None = None) -> None:
        self.model = model or FaceModel()
        rng = np.random.default_rng(seed)
        mean = rng.normal(size=DIM)
        self.mean = mean * (self.model.mean_norm / np.linalg.norm(mean))
        self.basis = np.linalg.qr(rng.normal(size=(DIM, DIM)))[0][:, : self.model.latent_dim]
        self._seed = seed

    def identities(self, count: int, seed: int = 1) -> np.ndarray:
        """(count, 128) identity centres."""
        m = self.model
        rng = np.random.default_rng((self._seed, seed))
        latent = rng.normal(
            scale=m.identity_spread / np.sqrt(m.latent_dim), size=(count, m.latent_dim)
        )
        residual = rng.normal(scale=m.identity_residual / np.sqrt(DIM), size=(count, DIM))
        return self.mean + latent @ self.basis.T + residual

    def photos(self, identities: np.ndarray, per_identity: int = 1, seed: int = 2) -> np.ndarray:
        """(len(identities) * per_identity, 128) float32 encodings, identity-major."""
        rng = np.random.default_rng((self._seed, seed))
        centres = np.repeat(identities, per_identity, axis=0)
        noise = rng.normal(scale=self.model.sample_noise / np.sqrt(DIM), size=centres.shape)
        return (centres + noise).astype(np.float32)

    def gallery(
        self, faces: int, per_identity: int = 5, seed: int = 1
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(encodings float32 (faces, 128), identity index per face, identity centres)."""
        people = -(-faces // per_identity)
        centres = self.identities(people, seed)
        encodings = self.photos(centres, per_identity, seed + 1000)[:faces]
        labels = np.repeat(np.arange(people), per_identity)[:faces]
        return encodings, labels, centres
