"""`glg reenact` through the command line (typer's CliRunner) and the notebook function, on a
tiny checkpoint trained by both training stages, the astronaut's face as a demo-like source and
short driving clips written here (one with an AAC audio track)."""

from __future__ import annotations

import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from _clips import FACE_WINDOW, panning_face
from _training import LGAN, LOSS, MODEL, S, TRAIN, prepared_data
from typer.testing import CliRunner

from glg.cli import app
from glg.config import parse_section
from glg.inference import reenact
from glg.store.networks import REENACTOR_FILE
from glg.train.lgan import train_lgan
from glg.train.reenactor import train_reenact

RATE = Fraction(30000, 1001)  # NTSC: not the params' extract.fps, nor a whole number
DRIVING_FRAMES = 7


def write_video(path: Path, frames: list[np.ndarray], rate: Fraction = RATE,
                audio: bool = False) -> Path:
    """RGB frames as H.264 (and one second of a 440 Hz tone as AAC) through PyAV."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=rate)
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        sound = container.add_stream("aac", rate=48000) if audio else None
        for k, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = k
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)).astype(np.float32)
            samples = av.AudioFrame.from_ndarray(tone[None], format="flt", layout="mono")
            samples.sample_rate = 48000
            container.mux(sound.encode(samples))
            container.mux(sound.encode())
    return path


def decoded(path: Path) -> tuple[list[np.ndarray], Fraction, int]:
    """(frames RGB, frame rate, audio tracks) of a video, decoded back."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return frames, stream.average_rate, len(container.streams.audio)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny trained checkpoint (LGAN with learned embeddings, ViT+LGAN+Style), its params
    with the extract and annotate sections, a source image and a driving clip with audio."""
    root = tmp_path_factory.mktemp("reenact")
    prepared, annotations = prepared_data(root)
    torch.manual_seed(0)
    train_lgan(prepared, annotations, root / "lgan", root / "ck" / "lgan", root / "m" / "lgan",
               parse_section("lgan", LGAN), seed=0, say=lambda _: None)
    train_reenact(prepared, root / "lgan", root / "reenact", root / "ck" / "reenact",
                  root / "m" / "reenact", parse_section("model", MODEL),
                  parse_section("loss", LOSS), parse_section("train", TRAIN), say=lambda _: None)
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump({
        "extract": {"crop_px": 160, "detect_every": 3},  # dlib finds faces of 80 px and up
        "annotate": {"backend": "dlib", "redetect_every": 10}}))
    source = root / "source.png"
    cv2.imwrite(str(source), cv2.cvtColor(FACE_WINDOW, cv2.COLOR_RGB2BGR))
    frames, _ = panning_face(DRIVING_FRAMES, canvas=(288, 288), step=3)
    driving = write_video(root / "driving.mp4", frames, audio=True)
    return {"root": root, "params": params, "source": source, "driving": driving,
            "frames": frames}


def run(setup, *args: str, source=None, driving=None):
    root = setup["root"]
    return CliRunner().invoke(app, [
        "reenact", str(source or setup["source"]), str(driving or setup["driving"]),
        "--checkpoint", str(root / "reenact"), "--lgan", str(root / "lgan"),
        "--params", str(setup["params"]), "--device", "cpu", *args])


def test_output_has_the_driving_frames_rate_and_audio(setup, tmp_path):
    out = tmp_path / "out.mp4"
    result = run(setup, "-o", str(out), "--batch", "3")
    assert result.exit_code == 0, result.output
    frames, rate, audio = decoded(out)
    assert len(frames) == DRIVING_FRAMES
    assert rate == RATE
    assert audio == 1
    assert frames[0].shape == (S, S, 3)
    # the source is nobody the LGAN's learned embeddings know: one warning, lst in the summary
    assert sum("warning" in line for line in result.output.splitlines()) == 1
    summary = result.stdout.strip().splitlines()[-1]
    assert "landmarks: lst" in summary and f"{DRIVING_FRAMES} frames" in summary


def test_side_by_side_known_identity_folder_driving(setup, tmp_path):
    folder = tmp_path / "driving"
    folder.mkdir()
    for k, rgb in enumerate(setup["frames"][:4]):
        cv2.imwrite(str(folder / f"{k:03d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out = tmp_path / "out.mp4"
    result = run(setup, "-o", str(out), "--side-by-side", "--identity", "id00",
                 driving=folder)
    assert result.exit_code == 0, result.output
    frames, _, audio = decoded(out)
    assert (len(frames), audio) == (4, 0)
    assert frames[0].shape == (S, 3 * S, 3)
    assert "warning" not in result.output
    assert "landmarks: lgan" in result.output


def test_an_unseen_identity_in_lgan_mode_falls_back_to_lst_with_a_warning(setup, tmp_path):
    """The LGAN's learned vectors train on the training split only: an unseen person's never
    did, so --identity naming one uses paper Eq. 3 with its statistics, said."""
    table = pd.read_parquet(setup["root"] / "prepared" / "identities.parquet")
    unseen = table.loc[table["role"] == "unseen", "identity"].iloc[0]
    result = run(setup, "-o", str(tmp_path / "out.mp4"), "--identity", unseen)
    assert result.exit_code == 0, result.output
    assert (f"warning: the landmark generator's vector for {unseen} never trained ({unseen} is "
            "an unseen person of the training data): using lst") in result.output
    assert "landmarks: lst" in result.output


def test_faceless_driving_frames_hold_the_last_landmarks(setup, tmp_path):
    blank = np.full_like(setup["frames"][0], 90)
    driving = write_video(tmp_path / "gaps.mp4", setup["frames"][:4] + [blank] * 2)
    root = setup["root"]
    done = reenact(setup["source"], driving, tmp_path / "out.mp4", checkpoint=root / "reenact",
                   lgan=root / "lgan", landmarks="driving", params=setup["params"],
                   device="cpu", progress=False)
    assert (done.frames, done.held) == (6, 2)
    assert len(decoded(tmp_path / "out.mp4")[0]) == 6


def test_paste_back_fills_the_source_frame(setup, tmp_path):
    out = tmp_path / "out.mp4"
    result = run(setup, "-o", str(out), "--paste-back", "--landmarks", "driving")
    assert result.exit_code == 0, result.output
    frames, _, _ = decoded(out)
    assert frames[0].shape == FACE_WINDOW.shape


def _garbage(path: Path) -> Path:
    path.write_bytes(b"not a picture at all" * 10)
    return path


def _blank_clip(path: Path) -> Path:
    return write_video(path, [np.full((96, 96, 3), 90, np.uint8)] * 3)


def _old_checkpoint(path: Path, setup) -> Path:
    saved = torch.load(setup["root"] / "reenact" / REENACTOR_FILE, weights_only=True)
    del saved["format"]  # as written before the format was recorded
    path.mkdir()
    torch.save(saved, path / REENACTOR_FILE)
    return path


BAD = {  # what is bad -> (arguments in place of the good ones, the file the line must name)
    "faceless source": lambda t, s: ({"source": cv2.imwrite(str(t / "grey.png"), np.full(
        (96, 96, 3), 90, np.uint8)) and t / "grey.png"}, "grey.png"),
    "unreadable source": lambda t, s: ({"source": _garbage(t / "broken.png")}, "broken.png"),
    "faceless driving": lambda t, s: ({"driving": _blank_clip(t / "blank.mp4")}, "blank.mp4"),
    "unreadable driving": lambda t, s: ({"driving": _garbage(t / "broken.mp4")}, "broken.mp4"),
    "old checkpoint": lambda t, s: ({"args": ["--checkpoint", str(_old_checkpoint(t / "old", s))]},
                                    REENACTOR_FILE),
    "landmark generator as checkpoint": lambda t, s: (
        {"args": ["--checkpoint", str(s["root"] / "lgan" / "lgan.pt")]}, "lgan.pt"),
    "output folder missing": lambda t, s: ({"out": t / "missing" / "out.mp4"}, "out.mp4"),
    # OpenCV's FFmpeg backend crashed the process on such a name (a segmentation fault)
    "driving named in bytes that are not UTF-8": lambda t, s: (
        {"driving": Path(shutil.copy(s["driving"], t / os.fsdecode(b"z\xe9.mp4")))},
        "z\\xe9.mp4: the path is not valid UTF-8"),
    "source named in bytes that are not UTF-8": lambda t, s: (
        {"source": Path(shutil.copy(s["source"], t / os.fsdecode(b"z\xe9.png")))},
        "z\\xe9.png: the path is not valid UTF-8"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_no_output(setup, tmp_path, case):
    given, named = BAD[case](tmp_path, setup)
    out = given.get("out", tmp_path / "out.mp4")
    result = run(setup, "-o", str(out), *given.get("args", []), source=given.get("source"),
                 driving=given.get("driving"))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and named in lines[0], result.output
    assert not out.exists()
    assert not list(out.parent.glob(".*partial*")) if out.parent.exists() else True


def test_a_real_frame_driven_by_another_real_clip(setup, real_clips, tmp_path):
    capture = cv2.VideoCapture(str(real_clips / "d12.mp4"))
    ok, bgr = capture.read()
    capture.release()
    assert ok
    source = tmp_path / "d12.png"
    cv2.imwrite(str(source), bgr)
    driving = real_clips / "d0.mp4"
    out = tmp_path / "out.mp4"
    result = run(setup, "-o", str(out), "--batch", "16", source=source, driving=driving)
    assert result.exit_code == 0, result.output
    frames, rate, _ = decoded(out)
    expected, expected_rate, _ = decoded(driving)
    assert (len(frames), rate) == (len(expected), expected_rate)


@pytest.mark.parametrize("given", ["source", "driving", "driving by another path",
                                   "driving hard-linked"])
def test_an_output_that_is_an_input_is_refused_before_any_work(tmp_path, given):
    source, driving = tmp_path / "src.png", tmp_path / "drv.mp4"
    source.write_bytes(b"the source")
    driving.write_bytes(b"the driving")
    out = {"source": source, "driving": driving,
           "driving by another path": tmp_path / "." / ".." / tmp_path.name / "drv.mp4",
           "driving hard-linked": tmp_path / "link.mp4"}[given]
    if given == "driving hard-linked":
        out.hardlink_to(driving)
    result = CliRunner().invoke(app, [  # no checkpoint: the refusal comes before reading one
        "reenact", str(source), str(driving), "-o", str(out),
        "--checkpoint", str(tmp_path / "missing"), "--device", "cpu"])
    assert result.exit_code == 1
    role = "source" if given == "source" else "driving"
    assert result.stderr == (f"error: {out}: is the {role}, which the output would replace; "
                             "choose another output file\n")
    assert (source.read_bytes(), driving.read_bytes()) == (b"the source", b"the driving")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["src.png", "drv.mp4"] + (["link.mp4"] if given == "driving hard-linked" else []))
