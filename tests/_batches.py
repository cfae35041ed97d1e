"""Test and benchmark helper: a random batch of `glg.data.Pair`s, collated as the loader does."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import default_collate

from glg.data import Pair
from glg.face.landmarks import AU_IDS, N_LANDMARKS

# Part centres as fractions of the crop side, about where aligned faces have them.
CENTRES = ((0.36, 0.43), (0.64, 0.43), (0.5, 0.57), (0.5, 0.75))


def random_pairs(batch: int, size: int, part_sizes: Sequence[tuple[int, int]], *,
                 identities: int = 3, seed: int = 0, device: str | torch.device = "cpu") -> Pair:
    """A batch of `batch` random float `Pair`s at S = `size`, part crops (h, w) of `part_sizes`.

    Each field has the dtype and range the loader gives (images in [-1, 1], heatmaps in [0, 1],
    AUs 0/1, identities below `identities`); centres sit near CENTRES, off the pixel grid.
    """
    g = torch.Generator().manual_seed(seed)

    def uniform(*shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        return torch.rand(*shape, generator=g) * (high - low) + low

    def pair(i: int) -> Pair:
        return Pair(
            source=uniform(3, size, size, low=-1), driving=uniform(3, size, size, low=-1),
            source_landmarks=uniform(N_LANDMARKS, 2, high=size - 1),
            driving_landmarks=uniform(N_LANDMARKS, 2, high=size - 1),
            reenacted_landmarks=uniform(N_LANDMARKS, 2, high=size - 1),
            driving_heatmap=uniform(1, size, size),
            source_parts=tuple(uniform(3, h, w, low=-1) for h, w in part_sizes),
            driving_heatmap_parts=tuple(uniform(1, h, w) for h, w in part_sizes),
            part_centres=torch.tensor(CENTRES) * size + uniform(len(CENTRES), 2, low=-1),
            driving_pose=uniform(3, low=-20, high=20),
            driving_aus=(uniform(len(AU_IDS)) > 0.5).float(),
            source_identity=torch.tensor(i % identities),
            driving_identity=torch.tensor((i + 1) % identities))

    batched = default_collate([pair(i) for i in range(batch)])
    return Pair(*(field.to(device) if isinstance(field, torch.Tensor)
                  else [t.to(device) for t in field] for field in batched))
