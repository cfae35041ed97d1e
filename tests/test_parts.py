"""glg.face.parts and glg.face.part_crops: part boxes, and one crop rule for numpy's and torch's
crops."""

import numpy as np
import pytest
import torch

from glg.errors import GlgError
from glg.face.mean_face import MEAN_FACE_3D
from glg.face.part_crops import crop_parts, paste_parts
from glg.face.parts import PART_NAMES, PART_POINTS, crop_origin, crop_part, part_boxes

S = 224
SIZES = [(10, 14), (13, 12), (12, 21), (7, 7)]  # odd and even sides


def fractional_centres(n: int, seed: int = 0) -> np.ndarray:
    """(n, 2) centres off and on the pixel grid (x.5 included), inside, at and past the borders."""
    rng = np.random.default_rng(seed)
    whole = rng.integers(-12, S + 12, (n, 2))
    return whole + rng.choice([0.0, 0.25, 0.5, 0.7, 0.999], (n, 2))


def test_part_boxes_are_the_tight_boxes_of_each_parts_landmarks():
    points = MEAN_FACE_3D[:, :2] * 1.3 + S / 2
    centres, sizes = part_boxes(points)
    for k, name in enumerate(PART_NAMES):
        offsets = np.abs(points[PART_POINTS[name]] - centres[k])  # (n, 2)
        np.testing.assert_allclose(offsets.max(0), sizes[k] / 2)
    assert centres[0, 0] > centres[1, 0]  # left eye (subject's) on the image right


@pytest.mark.parametrize(("height", "width"), [(10, 20), (13, 12), (7, 7)])
def test_a_crop_is_centred_on_its_centre(height, width):
    """The crop's middle pixel is the nearest to the centre (pixel centres at integers)."""
    xs, ys = np.meshgrid(np.arange(S), np.arange(S))
    coordinates = np.stack([xs, ys], -1)  # (S, S, 2): each pixel holds its own (x, y)
    for centre in np.random.default_rng(1).uniform(30, S - 30, (200, 2)):
        crop = crop_part(coordinates, centre, height, width)
        middle = (crop[0, 0] + crop[-1, -1]) / 2
        assert np.abs(middle - centre).max() <= 0.5, centre


@pytest.mark.parametrize("centre", [(0.0, 0.0), (223.7, 223.9), (-5.0, 100.0), (1e6, -1e6)])
def test_crop_pads_at_borders(centre):
    image = np.full((S, S), 7, np.uint8)
    crop = crop_part(image, np.array(centre), 16, 24)
    assert crop.shape == (16, 24)
    x0, y0 = crop_origin(centre, 16, 24)
    ys, xs = np.mgrid[y0:y0 + 16, x0:x0 + 24]
    inside = (xs >= 0) & (xs < S) & (ys >= 0) & (ys < S)
    assert (crop[inside] == 7).all() and (crop[~inside] == 0).all()


def test_crop_of_a_non_finite_centre_is_a_clear_error():
    with pytest.raises(GlgError, match="part centre"):
        crop_part(np.zeros((S, S)), np.array([np.nan, 3.0]), 8, 8)


def test_torch_crops_are_the_loaders_numpy_crops_pixel_for_pixel():
    """The loader crops uint8 arrays (padding 0), the trainer tensors in [-1, 1] (padding -1):
    the same black, at the same place, for centres anywhere on or off the pixel grid."""
    image = np.random.default_rng(2).integers(1, 256, (S, S, 3), dtype=np.uint8)
    centres = fractional_centres(16 * len(SIZES)).reshape(16, len(SIZES), 2)
    tensor = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 127.5 - 1  # (1, 3, S, S)
    crops = crop_parts(tensor.expand(16, -1, -1, -1), torch.from_numpy(centres).float(), SIZES)
    for k, (height, width) in enumerate(SIZES):
        as_uint8 = ((crops[k] + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for b in range(16):
            expected = crop_part(image, centres[b, k], height, width)
            np.testing.assert_array_equal(as_uint8[b], expected, err_msg=f"{centres[b, k]}")


def test_crops_and_pasting_never_read_the_centres_back_to_the_host():
    """Traced whole by torch.compile's front end: no host read, so a GPU step never waits on
    them and a compiled G is one graph."""
    image, centres = torch.rand(3, 3, S, S), torch.from_numpy(fractional_centres(12)).float()

    def crop_and_paste(image, centres):
        return paste_parts(crop_parts(image, centres, SIZES), centres, S)

    explained = torch._dynamo.explain(crop_and_paste)(image, centres.view(3, 4, 2))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)
