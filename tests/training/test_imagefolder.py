"""Image folders written by the test: splits, the uint8 cache and the streamed path, and every
bad input as one ConfigError line naming data.root."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from bench.imagefolder_data import write_folder
from pipeline.config import ConfigError, Data, Experiment
from pipeline.training import imagefolder
from pipeline.training.data import load
from pipeline.training.loop import fit


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("shapes"), per_class=20, classes=3)


def _data(root: Path, **kw) -> Data:
    return Data(dataset="imagefolder", root=root, image_size=16, **kw)


def test_stratified_seeded_splits_without_val_and_test_folders(folder: Path) -> None:
    a = load(_data(folder, val_fraction=0.2, test_fraction=0.1), seed=1)
    assert a.num_classes == 3 and a.input_shape == (3, 16, 16)
    assert Counter(a.y_val.tolist()) == {0: 4, 1: 4, 2: 4}   # 20% of 20 per class
    assert Counter(a.y_test.tolist()) == {0: 2, 1: 2, 2: 2}  # 10% of 20 per class
    assert len(a.y_train) == 60 - 12 - 6
    assert a.x_train.dtype == torch.uint8
    b = load(_data(folder, val_fraction=0.2, test_fraction=0.1), seed=1)
    assert torch.equal(a.x_val, b.x_val) and torch.equal(a.x_test, b.x_test)
    other = load(_data(folder, val_fraction=0.2, test_fraction=0.1), seed=2)
    assert not torch.equal(a.x_val, other.x_val)
    # no image in two splits
    rows = {tuple(x.flatten().tolist()) for x in (*a.x_train, *a.x_val, *a.x_test)}
    assert len(rows) == 60
    assert "6 non-image file(s) skipped (.txt x3, hidden x3)" in a.source
    assert "into memory as uint8" in a.source


def test_no_test_split_without_test_fraction(folder: Path) -> None:
    data = load(_data(folder))
    assert data.x_test is None and data.y_test is None


def test_train_val_test_folders_are_used_as_they_are(tmp_path: Path) -> None:
    for split, n in (("train", 6), ("val", 3), ("test", 2)):
        write_folder(tmp_path / split, per_class=n, classes=2, seed=len(split))
    data = load(_data(tmp_path, val_fraction=0.5, test_fraction=0.4))
    assert Counter(data.y_train.tolist()) == {0: 6, 1: 6}
    assert Counter(data.y_val.tolist()) == {0: 3, 1: 3}
    assert Counter(data.y_test.tolist()) == {0: 2, 1: 2}


def test_a_valid_folder_is_the_val_split(tmp_path: Path) -> None:
    """Kaggle's and Roboflow's exports name it valid/: it was ignored, and val_fraction of
    train/ held out instead."""
    for split, n in (("train", 6), ("valid", 3)):
        write_folder(tmp_path / split, per_class=n, classes=2, seed=len(split))
    data = load(_data(tmp_path, val_fraction=0.5))
    assert Counter(data.y_train.tolist()) == {0: 6, 1: 6}
    assert Counter(data.y_val.tolist()) == {0: 3, 1: 3}
    write_folder(tmp_path / "val", per_class=3, classes=2)
    with pytest.raises(ConfigError, match=r"has both val/ and valid/ for the val split"):
        imagefolder.scan(tmp_path)


@pytest.mark.parametrize("splits", [("val", "test"), ("val",), ("test",)])
def test_split_folders_without_train_are_refused(tmp_path: Path, splits) -> None:
    """They became classes named 'test' and 'val', and the sweep trained on that."""
    for split in splits:
        write_folder(tmp_path / split, per_class=2, classes=2)
    with pytest.raises(ConfigError, match=rf"{splits[0]}/ with class folders but no train/"):
        imagefolder.scan(tmp_path)


def test_a_test_folder_without_class_folders_says_so(tmp_path: Path) -> None:
    """Its images loose (or none) was told as `no images left for the test split ... change
    the fractions`, which a test/ folder overrides."""
    write_folder(tmp_path / "train", per_class=4, classes=2)
    _png(tmp_path / "test" / "0000.png")
    with pytest.raises(ConfigError, match=r"test has no class folders; put its images in "):
        imagefolder.scan(tmp_path)


def test_images_beside_the_class_folders_are_ignored_and_counted(tmp_path: Path) -> None:
    """ImageFolder ignores them; the Data line said nothing of them (0 skipped)."""
    write_folder(tmp_path, per_class=4, classes=2)
    _png(tmp_path / "stray.png")
    _png(tmp_path / "other.JPG")
    assert imagefolder.scan(tmp_path).loose == 2
    data = load(_data(tmp_path))
    assert ", 2 image(s) outside class folders ignored;" in data.source
    assert sum(len(x) for x in (data.x_train, data.x_val, data.x_test) if x is not None) == 8


def test_one_class_name_written_two_ways_is_refused(tmp_path: Path) -> None:
    """macOS writes names decomposed: `café` twice, and one folder's images were dropped."""
    import unicodedata

    for name in (unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café"),
                 "other"):
        _png(tmp_path / name / "a.png")
    with pytest.raises(ConfigError, match="are one class name written two ways"):
        imagefolder.scan(tmp_path)


def test_images_are_resized_and_centre_cropped(tmp_path: Path) -> None:
    from PIL import Image

    for name, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        (tmp_path / name).mkdir()
        image = Image.new("RGB", (60, 20), (0, 0, 0))
        image.paste(colour, (20, 0, 40, 20))  # only the centre third is coloured
        image.save(tmp_path / name / "wide.png")
        Image.new("L", (30, 30), 128).save(tmp_path / name / "grey.png")
    data = load(_data(tmp_path, val_fraction=0.5))
    images = torch.cat([data.x_train, data.x_val])
    labels = torch.cat([data.y_train, data.y_val])
    wide = images[images[:, 0].float().std((1, 2)) == 0]  # the centre crop is all colour
    assert len(wide) >= 1
    red = images[(labels == 0)]
    assert {tuple(x[:, 8, 8].tolist()) for x in red} == {(255, 0, 0), (128, 128, 128)}


def test_streamed_path_trains_exactly_as_the_cached_one(folder: Path) -> None:
    exp = Experiment.model_validate({
        "name": "s", "data": {"dataset": "imagefolder", "root": str(folder), "image_size": 16,
                              "batch_size": 8, "augment": ["flip", "crop"]},
        # dropout: drawn from torch's global generator, which a DataLoader drew its workers'
        # seed from (so the streamed path trained with other dropout masks)
        "model": {"arch": "cnn", "channels": 4, "hidden": 8, "dropout": 0.3},
        "train": {"epochs": 2}})
    cached = load(exp.data)
    streamed = load(exp.data.model_copy(update={"cache": "stream", "workers": 2}))
    assert isinstance(streamed.x_train, imagefolder.LazyImages)
    assert "streamed from disk by 2 DataLoader worker(s)" in streamed.source
    assert torch.equal(streamed.x_val[:], cached.x_val)
    a = [e.metrics["val_loss"] for e in fit(exp, cached)]
    b = [e.metrics["val_loss"] for e in fit(exp, streamed)]
    assert a == pytest.approx(b, rel=1e-6)


def test_auto_streams_what_does_not_fit_the_budget(folder: Path) -> None:
    assert not load(_data(folder)).streamed
    small = load(_data(folder, memory_budget_mb=0.01))
    assert small.streamed
    assert "over memory_budget_mb 0.01" in small.source


def _write(path: Path, content: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


@pytest.mark.parametrize("cache", ["memory", "stream"])
def test_an_unreadable_image_is_refused_by_name(folder: Path, tmp_path: Path,
                                                cache: str) -> None:
    root = write_folder(tmp_path / "broken", per_class=3, classes=2)
    _write(root / "circle" / "broken.jpg", b"this is not a jpeg")
    with pytest.raises(ConfigError, match=r"data.root: .*broken.jpg is not a readable image"):
        load(_data(root, cache=cache))


def test_bad_folders_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.root: .*nowhere is not a folder"):
        load(_data(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="data.root: imagefolder needs a folder"):
        load(Data(dataset="imagefolder"))
    _write(tmp_path / "flat" / "a.png")
    with pytest.raises(ConfigError, match="data.root: no class folders under"):
        load(_data(tmp_path / "flat"))
    write_folder(tmp_path / "one", per_class=2, classes=1)
    with pytest.raises(ConfigError, match="only one class folder"):
        load(_data(tmp_path / "one"))
    root = write_folder(tmp_path / "empty", per_class=2, classes=2)
    _write(root / "dog" / "readme.txt", b"no pictures yet")
    with pytest.raises(ConfigError, match=r"data.root: class 'dog' .* has no images"):
        load(_data(root))


def test_too_few_images_for_a_split_is_refused(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "two", per_class=2, classes=2)
    with pytest.raises(ConfigError, match="data.root: no images left for the val split"):
        load(_data(root, val_fraction=0.3, test_fraction=0.3))


def test_a_val_folder_with_a_class_train_lacks_is_refused(tmp_path: Path) -> None:
    write_folder(tmp_path / "train", per_class=2, classes=2)
    write_folder(tmp_path / "val", per_class=2, classes=3)
    with pytest.raises(ConfigError, match=r"class folder\(s\) \['triangle'\]"):
        load(_data(tmp_path))


def _png(path: Path, colour: tuple[int, int, int] = (200, 30, 30)) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 12), colour).save(path)
    return path


def test_macos_junk_and_hidden_files_are_skipped_and_counted(tmp_path: Path) -> None:
    """`._photo.jpg` (AppleDouble) has an image extension but is not an image: it was refused
    as a damaged image, failing a folder copied from a Mac."""
    for name in ("cat", "dog"):
        _png(tmp_path / name / "photo.jpg")
        _write(tmp_path / name / "._photo.jpg", b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
        _write(tmp_path / name / ".DS_Store", b"\0\0\0\1Bud1")
        _png(tmp_path / name / ".thumbnails" / "photo.png")   # a hidden folder's images
        _png(tmp_path / name / "__MACOSX" / "photo.png")
    _png(tmp_path / "__MACOSX" / "cat" / "._photo.png")        # not a class
    _png(tmp_path / ".hidden_class" / "x.png")
    layout = imagefolder.scan(tmp_path)
    assert layout.classes == ["cat", "dog"] and layout.skipped == {"hidden": 8}
    assert [p.name for p in layout.splits["train"].paths] == ["photo.jpg", "photo.jpg"]


def test_netpbm_and_other_jpeg_extensions_are_images(tmp_path: Path) -> None:
    """.pgm (in torchvision ImageFolder's list), .jfif and .jpe (JPEG), .pbm and .pnm were
    skipped as non-images: a folder of them was a class without images."""
    from PIL import Image

    for name, mode in (("a.pgm", "L"), ("b.PBM", "1"), ("c.pnm", "RGB"), ("d.jfif", "RGB"),
                       ("e.JPE", "RGB"), ("f.ppm", "RGB")):
        for cls, colour in (("cat", (250, 250, 250)), ("dog", (0, 0, 0))):
            (tmp_path / cls).mkdir(exist_ok=True)
            Image.new("RGB", (12, 12), colour).convert(mode).save(tmp_path / cls / name)
    layout = imagefolder.scan(tmp_path)
    assert len(layout.splits["train"].paths) == 12 and not layout.skipped
    data = load(_data(tmp_path, val_fraction=0.5))
    x = torch.cat([data.x_train, data.x_val])
    y = torch.cat([data.y_train, data.y_val])
    assert bool((x[y == 0] > 240).all()) and bool((x[y == 1] < 10).all())  # decoded as drawn


def test_the_data_line_names_what_was_skipped_by_extension(tmp_path: Path) -> None:
    """It said only '12 non-image file(s) skipped': a user could not see that half their
    photos (here .heic) were left out."""
    write_folder(tmp_path, per_class=4, classes=2, odd_files=False)
    for cls in ("circle", "square"):
        for i in range(5):
            _write(tmp_path / cls / f"IMG_{i}.HEIC", b"heic")
        _write(tmp_path / cls / "README", b"notes")
        _write(tmp_path / cls / ".DS_Store", b"\0\0\0\1Bud1")
    assert imagefolder.scan(tmp_path).skipped == {".heic": 10, "hidden": 2, "no extension": 2}
    data = load(_data(tmp_path))
    assert ("14 non-image file(s) skipped (.heic x10, hidden x2, no extension x2);"
            in data.source)
    many = Counter({f".x{i}": 1 for i in range(7)})
    assert imagefolder.skipped_summary(many, kinds=5) == (
        "7 non-image file(s) skipped (.x0 x1, .x1 x1, .x2 x1, .x3 x1, .x4 x1, 2 more kind(s))")
    assert imagefolder.skipped_summary(Counter()) == "0 non-image file(s) skipped"


def test_any_case_of_extension_and_nested_folders_are_images(tmp_path: Path) -> None:
    for i, name in enumerate(("a.JPG", "b.PNG", "c.JpEg", "2019/summer/d.png", "e.Tiff")):
        _png(tmp_path / "cat" / name)
        _png(tmp_path / "dog" / f"{i}.png")
    layout = imagefolder.scan(tmp_path)
    cats = [p.relative_to(tmp_path / "cat").as_posix() for p, label
            in zip(layout.splits["train"].paths, layout.splits["train"].labels) if label == 0]
    assert cats == ["2019/summer/d.png", "a.JPG", "b.PNG", "c.JpEg", "e.Tiff"]


def test_class_names_with_spaces_and_other_scripts(tmp_path: Path) -> None:
    """macOS writes names decomposed (NFD), Linux as typed (NFC): a val/ folder made on one
    and a train/ folder on the other name the same class."""
    import unicodedata

    nfd = unicodedata.normalize("NFD", "café")
    for split, names in (("train", ["red fox", nfd, "猫"]), ("val", ["red fox", "café", "猫"])):
        for name in names:
            for i in range(2):
                _png(tmp_path / split / name / f"{i}.png")
    data = load(_data(tmp_path))
    layout = imagefolder.scan(tmp_path)
    assert layout.classes == ["café", "red fox", "猫"] and data.num_classes == 3
    assert sorted(set(data.y_val.tolist())) == [0, 1, 2]


def test_linked_class_folders_files_and_sub_folders_are_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    root = tmp_path / "root"
    for i in range(2):
        _png(elsewhere / "cats" / f"{i}.png")
        _png(elsewhere / "more dogs" / f"{i}.png")
    _png(elsewhere / "lone.png")
    _png(root / "dog" / "own.png")
    (root / "cat").symlink_to(elsewhere / "cats", target_is_directory=True)
    (root / "dog" / "more").symlink_to(elsewhere / "more dogs", target_is_directory=True)
    (root / "dog" / "linked.png").symlink_to(elsewhere / "lone.png")
    (root / "dog" / "loop").symlink_to(root / "dog", target_is_directory=True)
    layout = imagefolder.scan(root)
    assert layout.classes == ["cat", "dog"]
    dogs = [p.relative_to(root / "dog").as_posix() for p, label
            in zip(layout.splits["train"].paths, layout.splits["train"].labels) if label == 1]
    assert dogs == ["linked.png", "more/0.png", "more/1.png", "own.png"]
    assert load(_data(root, val_fraction=0.3)).num_classes == 2
    (root / "dog" / "gone.png").symlink_to(elsewhere / "deleted.png")
    with pytest.raises(ConfigError, match=r"^data.root: .*gone.png is not a readable image"):
        load(_data(root, val_fraction=0.3))
