"""The evaluation's metrics (thesis 4.2): SSIM/PSNR against scikit-image, face readings, CSIM
backends, PRMSE and AUCON, the cache, and outputs without a face."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from glg.annotate.aus import GEOMETRIC_AUS, UNMEASURED_AUS
from glg.annotate.dlib import DlibBackend
from glg.errors import GlgError
from glg.evaluate.face_id import (ARCFACE_TEMPLATE, IRESNET_BLOCKS, ArcFaceEmbedder, IResNet,
                                  align_arcface, arcface_points, load_arcface, load_dlib_resnet,
                                  make_embedder, similarity_transforms)
from glg.evaluate.face_reading import FaceReader, Readings, clip_neutrals
from glg.face.dlib_models import SHAPE_PREDICTOR, model_file
from glg.face.landmarks import AU_IDS
from glg.metrics.faces import aucon, csim, prmse
from glg.metrics.images import psnr, psnr_cap, ssim
from glg.store.annotations import to_table
from glg.store.video import sample_frames
from glg.synthesize.faces import identity_image, make_identity
from glg.synthesize.render import render_frame

SIZE = 224  # the evaluation's image side (prepare.image_px)
CLIP = ("person", "clip")


@functools.cache
def _identity(k: int):
    identity = make_identity(k, np.random.default_rng(k))
    return identity, identity_image(identity)


def face(k=0, pose=(0.0, 0.0, 0.0), aus: dict[int, float] | None = None) -> np.ndarray:
    """A rendered 224 px face of demo identity `k`, RGB uint8."""
    identity, image = _identity(k)
    intensities = np.zeros(len(AU_IDS))
    for au, value in (aus or {}).items():
        intensities[AU_IDS.index(au)] = value
    return render_frame(identity, image, np.array(pose, float), intensities, np.zeros(2), 1.0,
                        SIZE)[0]


@functools.cache
def faces() -> np.ndarray:
    """Four identities in different poses and expressions, (4, 224, 224, 3)."""
    return np.stack([face(0), face(1, (5, -15, 3), {12: 1.0}),
                     face(2, (-5, 10, -5), {25: 1.0, 26: 1.0}), face(3, (0, 20, 0), {1: 1, 2: 1})])


@functools.cache
def reader() -> FaceReader:
    """dlib annotator and embedder, as the evaluation reads outputs by default."""
    return FaceReader("dlib", make_embedder("dlib"))


@functools.cache
def clip_annotator() -> DlibBackend:
    return DlibBackend(redetect_every=1)  # a detection on every frame: no tracking


def alone(images: np.ndarray, r: FaceReader) -> list[tuple[str, str]]:
    """A one-frame clip per image, its neutral the image's own face (a faceless image borrows the
    first test face's: it has no AUs to compare), registered with the reader."""
    clips = []
    for image in [face(0), *images]:
        clip = ("alone", hashlib.sha1(image.tobytes()).hexdigest())
        if clip not in r.neutrals:
            stored = clip_annotator().annotate_clip([(0, image)])
            r.neutrals |= clip_neutrals(to_table(*clip, stored).to_pandas())
        clips.append(clip if clip in r.neutrals else clips[0])
    return clips[1:]


def read_alone(images: np.ndarray) -> Readings:
    """Read images, each against its own face's neutral."""
    return reader().read(images, alone(images, reader()))


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(i, (0, 0), sigma) if sigma else i for i in images])


def noise(images: np.ndarray, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(images + rng.normal(0.0, sigma, images.shape), 0, 255).astype(np.uint8)


# --- SSIM and PSNR -------------------------------------------------------------------------------


def test_ssim_and_psnr_match_scikit_image():
    rng = np.random.default_rng(1)
    clean = faces()[:2]
    pairs = [(clean, blur(clean, 1.5)), (clean, noise(clean, 20)),
             (rng.integers(0, 256, (3, 37, 50, 3), np.uint8),
              rng.integers(0, 256, (3, 37, 50, 3), np.uint8))]  # odd sizes, no structure
    for a, b in pairs:
        ssim_ref = [structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False, data_range=255,
                                          channel_axis=-1) for x, y in zip(a, b)]
        psnr_ref = [peak_signal_noise_ratio(x, y, data_range=255) for x, y in zip(a, b)]
        np.testing.assert_allclose(ssim(a, b), ssim_ref, rtol=0, atol=1e-12)
        np.testing.assert_allclose(psnr(a, b), psnr_ref, rtol=1e-12)
        np.testing.assert_allclose(ssim(torch.from_numpy(b), torch.from_numpy(a)), ssim_ref,
                                   rtol=0, atol=1e-12)  # symmetric, and tensors work alike


def test_image_metrics_are_perfect_for_the_image_itself_and_worsen_with_blur_and_noise():
    images = faces()
    assert (ssim(images, images) == 1.0).all()
    # Identical images: no infinity, the largest PSNR two different images could reach.
    assert (psnr(images, images) == psnr_cap(images.shape)).all()
    one_level = images.copy()
    one_level[:, 0, 0, 0] ^= 1
    assert (psnr(images, one_level) <= psnr_cap(images.shape)).all()
    for degrade, levels in ((blur, (0, 0.7, 1.5, 3)), (noise, (0, 4, 16, 48))):
        scores = [(ssim(degrade(images, s), images), psnr(degrade(images, s), images))
                  for s in levels]
        for (ssim_a, psnr_a), (ssim_b, psnr_b) in zip(scores, scores[1:]):
            assert (ssim_b < ssim_a).all() and (psnr_b < psnr_a).all(), degrade.__name__


def test_metrics_refuse_mismatched_inputs_in_one_line():
    images = faces()
    r = read_alone(images[:2])
    for call in (lambda: ssim(images.astype(np.float32), images),
                 lambda: psnr(images, images[:, :100]),
                 lambda: prmse(r, r.pose[0]),  # one pose for two outputs
                 lambda: aucon(r, r.au_presence[:1]),
                 lambda: csim(read_alone(images[:3]), r)):
        with pytest.raises(GlgError) as err:
            call()
        assert "\n" not in str(err.value)


# --- face metrics --------------------------------------------------------------------------------


def test_face_metrics_are_perfect_for_the_image_itself():
    r = read_alone(faces())
    assert r.found.all()
    np.testing.assert_allclose(csim(r, r).per_pair, 1.0, atol=1e-6)
    assert prmse(r, r.pose).summary()["prmse"] == 0.0
    assert aucon(r, r.au_presence).summary()["aucon"] == 1.0


def _worsen(images: np.ndarray, blurs, noises) -> None:
    """Mean CSIM falls at every step of blur and of noise; PRMSE and AUCON never improve and are
    worse at the strongest step than at none."""
    clean = read_alone(images)
    clips = alone(images, reader())  # a degraded face is still the clean face's person
    for degrade, levels in ((blur, blurs), (noise, noises)):
        rows = []
        for s in levels:
            r = reader().read(degrade(images, s), clips)
            assert r.found.all(), (degrade.__name__, s)  # a lost face would leave the mean
            rows.append((csim(clean, r).summary()["csim"], prmse(r, clean.pose).summary()["prmse"],
                         aucon(r, clean.au_presence).summary()["aucon"]))
        (_, pose_0, au_0), (_, pose_n, au_n) = rows[0], rows[-1]
        assert pose_n > pose_0 and au_n < au_0, (degrade.__name__, rows)
        for (csim_a, pose_a, au_a), (csim_b, pose_b, au_b) in zip(rows, rows[1:]):
            assert csim_b < csim_a and pose_b >= pose_a and au_b <= au_a, (degrade.__name__, rows)


def test_face_metrics_worsen_with_blur_and_noise_on_rendered_faces():
    _worsen(faces(), blurs=(0, 1, 3), noises=(0, 8, 32))


@functools.cache
def real_faces(folder: Path) -> np.ndarray:
    """The first frame of three real clips (face-centred 512 px crops) at 224 px."""
    first = [next(sample_frames(path, 25.0, 1)).bgr for path in sorted(folder.glob("*.mp4"))[:3]]
    return np.stack([cv2.cvtColor(cv2.resize(bgr, (SIZE, SIZE), interpolation=cv2.INTER_AREA),
                                  cv2.COLOR_BGR2RGB) for bgr in first])


def test_face_metrics_worsen_with_blur_and_noise_on_real_faces(real_clips):
    _worsen(real_faces(real_clips), blurs=(0, 2, 4), noises=(0, 8, 32))


def test_driving_as_output_differs_from_the_stored_annotations_only_by_the_annotator():
    """Frames annotated as a clip (detection on every frame, so no tracking noise), then read one
    by one against the clip's neutral: the same pose and AUs, although the frames read are only
    the expressive ones (their own median would make a smile the neutral)."""
    frames = np.stack([face(0)] * 4 + [face(0, (3, 8, 0), {12: 1.0}),
                                       face(0, (0, -6, 2), {12: 1.0, 25: 1.0, 26: 1.0}),
                                       face(0, (-4, 0, 0), {12: 1.0, 45: 1.0})])
    stored = DlibBackend(redetect_every=1).annotate_clip(enumerate(frames))
    assert stored.success.all()
    neutrals = clip_neutrals(to_table(*CLIP, stored).to_pandas())
    out = FaceReader("dlib", neutrals=neutrals).read(frames[4:], [CLIP] * 3)
    assert prmse(out, stored.pose[4:]).summary()["prmse"] < 1e-4  # float32 storage
    assert aucon(out, stored.au_presence[4:]).summary()["aucon"] == 1.0
    assert stored.au_presence[4:].any(1).all()  # every frame read shows AUs to agree on


def test_outputs_without_a_face_are_counted_not_dropped():
    images = faces()[:3]
    blank = np.zeros_like(images[0])
    source = read_alone(np.stack([images[0], blank, images[2], images[0]]))
    output = read_alone(np.stack([blank, images[1], images[2], blank]))
    np.testing.assert_array_equal(output.found, [False, True, True, False])
    assert np.isnan(output.pose[0]).all() and np.isnan(output.embedding[0]).all()
    c = csim(source, output)
    assert np.isnan(c.per_pair[[0, 1, 3]]).all() and np.isfinite(c.per_pair[2])
    assert c.summary() | {"csim": None} == {"csim": None, "scored": 1, "no_face_output": 2,
                                           "no_face_source": 1, "backend": "dlib"}
    truth = read_alone(images[[0, 1, 2, 0]])
    pose, au = prmse(output, truth.pose).summary(), aucon(output, truth.au_presence).summary()
    assert (pose["scored"], pose["no_face"], au["scored"], au["no_face"]) == (2, 2, 2, 2)
    nothing = read_alone(np.stack([blank, blank]))
    assert csim(nothing, nothing).summary()["csim"] is None  # JSON null, not NaN
    assert prmse(nothing, truth.pose[:2]).summary()["prmse"] is None


def test_pose_error_per_angle_and_overall():
    r = read_alone(faces()[:2])
    shifted = r.pose + np.array([3.0, -4.0, 360.0])  # a full turn of roll is no error
    summary = prmse(r, shifted).summary()
    np.testing.assert_allclose([summary["pitch"], summary["yaw"], summary["roll"]], [3, 4, 0],
                               atol=1e-9)
    np.testing.assert_allclose(summary["prmse"], np.sqrt((9 + 16) / 3))


def test_aucon_counts_only_the_measured_aus():
    r = read_alone(faces()[:2])
    truth = r.au_presence.copy()
    truth[:, [AU_IDS.index(au) for au in UNMEASURED_AUS]] = 1  # unmeasured: neither way
    result = aucon(r, truth)
    assert result.aus == GEOMETRIC_AUS and result.summary()["denominator"] == 14
    np.testing.assert_array_equal(result.per_pair, [1.0, 1.0])
    truth[0, AU_IDS.index(25)] ^= 1  # one measured AU disagrees in the first pair
    np.testing.assert_allclose(aucon(r, truth).per_pair, [13 / 14, 1.0])


# --- the cache -----------------------------------------------------------------------------------


def test_keyed_images_are_read_once():
    fresh = FaceReader("dlib", make_embedder("dlib"))
    images = faces()[[0, 1, 0, 0, 1]]
    keys = ["a", "b", "a", "a", "b"]
    clips = alone(images, fresh)
    first = fresh.read(images, clips, keys)
    assert fresh.images_read == 2
    again = fresh.read(images[:2], clips[:2], keys[:2])
    assert fresh.images_read == 2
    unkeyed = fresh.read(images, clips)
    assert fresh.images_read == 7
    for field in ("found", "landmarks", "pose", "au_presence", "embedding"):
        np.testing.assert_array_equal(getattr(again, field), getattr(first, field)[:2])  # cached
        if field != "embedding":  # dlib reads each image alone: the same bytes in any batch
            np.testing.assert_array_equal(getattr(first, field), getattr(unkeyed, field))
    # The embedder's network ran on a batch of 2 (keyed) and of 5 (unkeyed): another BLAS path.
    np.testing.assert_allclose(first.embedding, unkeyed.embedding, rtol=0, atol=1e-6)


# --- CSIM backends -------------------------------------------------------------------------------


def test_dlib_csim_is_higher_for_the_same_person():
    same = read_alone(np.stack([face(0), face(1)]))
    turned = read_alone(np.stack([face(0, (0, 15, 0), {12: 1.0}), face(1, (5, -10, 0))]))
    other = read_alone(np.stack([face(1, (0, 15, 0), {12: 1.0}), face(0, (5, -10, 0))]))
    assert (csim(same, turned).per_pair > csim(same, other).per_pair).all()


def _assert_dlibs_own_descriptors(images: np.ndarray) -> None:
    r = read_alone(images)  # DlibEmbedder: dlib's network run by torch
    assert r.found.all()
    own = np.stack([clip_annotator().embed(i, p) for i, p in zip(images, r.landmarks)])
    own /= np.linalg.norm(own, axis=1, keepdims=True)  # dlib's compute_face_descriptor
    np.testing.assert_allclose(r.embedding, own, atol=2e-6)


def test_dlib_embedder_gives_dlibs_own_descriptors():
    _assert_dlibs_own_descriptors(faces())


def test_dlib_embedder_gives_dlibs_own_descriptors_on_real_faces(real_clips):
    _assert_dlibs_own_descriptors(real_faces(real_clips))


def test_dlib_weights_from_another_file_are_refused_in_one_line():
    with pytest.raises(GlgError) as err:
        load_dlib_resnet(model_file(SHAPE_PREDICTOR))
    assert "\n" not in str(err.value) and SHAPE_PREDICTOR in str(err.value)


def test_arcface_without_weights_is_one_line(tmp_path):
    for call in (lambda: load_arcface(tmp_path / "backbone.pth"),
                 lambda: make_embedder("arcface", None)):
        with pytest.raises(GlgError) as err:
            call()
        message = str(err.value)
        assert "\n" not in message and "arcface_torch" in message
    assert str(tmp_path / "backbone.pth") in str(
        pytest.raises(GlgError, load_arcface, tmp_path / "backbone.pth").value)


def test_iresnets_have_the_published_sizes():
    # insightface's arcface_torch model zoo: IResNet-50 43.6M and IResNet-100 65.2M parameters.
    for name, millions in (("r50", 43.6), ("r100", 65.2)):
        count = sum(p.numel() for p in IResNet(IRESNET_BLOCKS[name]).parameters())
        assert round(count / 1e6, 1) == millions, name


def test_arcface_loads_a_saved_state_dict_and_gives_unit_512_vectors(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "backbone.pth"
    saved = IResNet(IRESNET_BLOCKS["r50"]).state_dict()
    torch.save(saved, path)
    net = load_arcface(path)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert all(torch.equal(v, saved[k]) for k, v in net.state_dict().items())
    embedder = ArcFaceEmbedder(net)
    landmarks = read_alone(faces()[:2]).landmarks
    landmarks = np.concatenate([landmarks, np.full((1, 68, 2), np.nan)])  # no face found
    vectors = embedder.embed(faces()[[0, 1, 1]], landmarks)
    assert vectors.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, atol=1e-5)
    assert np.isnan(vectors[2]).all()
    torch.save({"conv1.weight": torch.zeros(64, 3, 3, 3)}, path)
    with pytest.raises(GlgError) as err:
        load_arcface(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_arcface_alignment_undoes_a_rotation_scale_and_shift():
    image = faces()[1]
    landmarks = read_alone(image[None]).landmarks
    moved = cv2.getRotationMatrix2D((100.0, 120.0), 25.0, 0.8)
    moved[:, 2] += (10.0, -6.0)
    moved_image = cv2.warpAffine(image, moved, (SIZE, SIZE), flags=cv2.INTER_LINEAR)
    moved_landmarks = landmarks @ moved[:, :2].T + moved[:, 2]
    a, b = align_arcface(np.stack([image, moved_image]),
                         np.concatenate([landmarks, moved_landmarks])).astype(float)
    inner = (slice(20, 100), slice(20, 92))  # the face, away from the black border
    assert np.abs(a[inner] - b[inner]).mean() < 6.0  # two bilinear resamplings apart
    # The five points land on insightface's template (a frontal face fits it to a few px).
    points = arcface_points(moved_landmarks)
    m = similarity_transforms(points, ARCFACE_TEMPLATE)[0]
    assert np.abs(points[0] @ m[:, :2].T + m[:, 2] - ARCFACE_TEMPLATE).max() < 4.0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_image_metrics_on_the_gpu_match_the_cpu():
    a, b = faces(), noise(faces(), 10)
    np.testing.assert_allclose(ssim(torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()),
                               ssim(a, b), atol=1e-12)
    np.testing.assert_allclose(psnr(a, b, device="cuda"), psnr(a, b), rtol=1e-12)


def test_pyfeat_annotator_measures_all_18_aus():
    from glg.annotate.pyfeat import check_weights

    try:
        check_weights()
    except GlgError as err:
        pytest.skip(str(err))
    r = FaceReader("pyfeat").read(faces()[:2], None)
    assert r.found.all() and r.measured_aus == AU_IDS
    assert aucon(r, r.au_presence).summary()["denominator"] == 18
