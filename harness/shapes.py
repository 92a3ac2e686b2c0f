"""Generated scenes of shapes the demo detector was not trained on, their truth
known: what the object tests and the TypeScript client's fixtures detect."""

from __future__ import annotations

import numpy as np

from object_service import synthetic

HELD_OUT_SEED = 20261128  # training used other seeds (object_service/models/README.md)


def scene_of_reliable_size(rng: np.random.Generator) -> tuple[np.ndarray, list]:
    """A generated scene whose shapes are 60-140 px: the sizes the demo model is
    reliable at (object_service/models/README.md gives accuracy by size)."""
    img = synthetic.make_background(rng, 640, 480)
    shapes = []
    cells = [(cx, cy) for cx in (160, 480) for cy in (120, 360)]
    for index in rng.choice(len(cells), size=int(rng.integers(2, 5)), replace=False):
        cx, cy = cells[index]
        size = float(rng.uniform(60, 140))
        jitter = (240 - size) / 2 - 5
        x, y = cx + rng.uniform(-jitter, jitter), cy + rng.uniform(-jitter * 0.6, jitter * 0.6)
        patch = img[int(y - size / 2) : int(y + size / 2), int(x - size / 2) : int(x + size / 2)]
        color = synthetic.contrasting_color(rng, patch)
        class_id = int(rng.integers(0, len(synthetic.CLASS_NAMES)))
        shapes.append(
            synthetic.draw_shape(img, class_id, x, y, size, color, float(rng.uniform(0, 360)))
        )
    return img, shapes
