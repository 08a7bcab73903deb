"""ImageCaptionFolder checks every row before any model loads: broken images and null captions stop the run with one message, or are skipped.
caption_problem and image_problem on single rows (cut, trailer-carrying, empty JPEGs; null-like captions) are checked in nbs/23_sdxl.ipynb."""
import json, time, warnings
import numpy as np
import pytest
import torch
from PIL import Image
from directcms.support.image_folder import ImageCaptionFolder

RNG = np.random.default_rng(0)

def _img(h=48, w=64): return Image.fromarray(RNG.integers(0, 255, (h, w, 3), dtype=np.uint8))

def _jsonl(root, rows): (root / "metadata.jsonl").write_text("".join(json.dumps(dict(file_name=f, text=t)) + "\n" for f, t in rows))

def _broken_folder(root):
    "Good rows, and one of each kind of broken row that img2dataset leaves behind."
    _img().save(root / "good.jpg"); _img().save(root / "good.png")
    _img().save(root / "cut.jpg", quality=95)
    (root / "cut.jpg").write_bytes((root / "cut.jpg").read_bytes()[:-700])           # cut inside the scan data: opens fine
    _img().save(root / "cut.png"); (root / "cut.png").write_bytes((root / "cut.png").read_bytes()[:4000])
    (root / "empty.jpg").write_bytes(b"")
    (root / "page.jpg").write_text("<html><body>403 Forbidden</body></html>")          # not an image
    _img().save(root / "cut.webp"); (root / "cut.webp").write_bytes((root / "cut.webp").read_bytes()[:-100])
    _img().save(root / "cut.gif"); (root / "cut.gif").write_bytes((root / "cut.gif").read_bytes()[:-1000])
    _jsonl(root, [("good.jpg", "a good picture"), ("cut.jpg", "a cut jpeg"), ("cut.png", "a cut png"),
                  ("empty.jpg", "an empty file"), ("page.jpg", "a web page"), ("good.png", None),
                  ("good.png", ""), ("good.png", "   "), ("missing.jpg", "gone"), ("cut.webp", "a cut webp"), ("cut.gif", "a cut gif"),
                  ("good.png", "another good one")])
    return root

BAD = {"cut.jpg": "truncated JPEG", "cut.png": "unreadable", "empty.jpg": "empty file", "page.jpg": "not an image",
       "missing.jpg": "missing file", "cut.webp": "unreadable", "cut.gif": "unreadable"}

def test_bad_rows_stop_with_one_message_naming_them(tmp_path):
    _broken_folder(tmp_path)
    with pytest.raises(ValueError) as e: ImageCaptionFolder(tmp_path, resolution=32, progress=False)
    msg = str(e.value)
    assert "10 of 12 rows" in msg
    for name, why in BAD.items(): assert f"{name}: {why}" in msg, (name, msg)
    assert msg.count("good.png: caption is") == 3 and "caption is null" in msg and "caption is empty" in msg
    assert "skip_bad_data=True" in msg

def test_skip_bad_counts_them_in_one_warning_and_loads_the_rest(tmp_path):
    _broken_folder(tmp_path)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ds = ImageCaptionFolder(tmp_path, resolution=32, skip_bad=True, progress=False)
    assert len(w) == 1 and "10 of 12 rows" in str(w[0].message) and "skipping" in str(w[0].message)
    assert len(ds) == 2 and [r["text"] for r in ds.rows] == ["a good picture", "another good one"]
    assert len(ds.skipped) == 10 and {n for n, _ in ds.skipped} >= set(BAD)
    for i in range(len(ds)): assert ds[i]["pixels"].shape == (3, 32, 32)

def test_all_bad_fails_even_when_skipping(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    _jsonl(tmp_path, [("empty.jpg", "x")])
    with pytest.raises(ValueError, match="1 of 1 rows"): ImageCaptionFolder(tmp_path, skip_bad=True, progress=False)

def test_csv_null_like_captions_and_long_lists(tmp_path):
    _img().save(tmp_path / "a.png")
    rows = ["a.png,fine"] + ["a.png,"] * 25 + ["a.png,NaN", "a.png,null", "a.png"]     # the last row lacks its text cell
    (tmp_path / "metadata.csv").write_text("file_name,text\n" + "\n".join(rows) + "\n")
    with pytest.raises(ValueError) as e: ImageCaptionFolder(tmp_path, progress=False)
    msg = str(e.value)
    assert "28 of 29 rows" in msg and "... and 8 more" in msg and msg.count("\n  a.png:") == 20

def test_bad_jsonl_line_named(tmp_path):
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png", "text": "x"}\n{"file_name": "b.png", \n')
    with pytest.raises(ValueError, match="line 2 is not JSON"): ImageCaptionFolder(tmp_path, progress=False)
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png", "text": "x"}\n["b.png", "y"]\n')
    with pytest.raises(ValueError, match="line 2 is not an object"): ImageCaptionFolder(tmp_path, progress=False)

def test_unusual_but_good_images_load(tmp_path):
    "Grayscale, RGBA, CMYK, palette (with transparency), 1-bit, 16-bit and extreme aspect ratios all train."
    base = np.asarray(_img(60, 90))
    imgs = {"l.png": Image.fromarray(base).convert("L"), "rgba.png": Image.fromarray(base).convert("RGBA"),
            "cmyk.jpg": Image.fromarray(base).convert("CMYK"), "p.png": Image.fromarray(base).convert("P"),
            "pt.png": Image.fromarray(base).convert("P"), "one.png": Image.fromarray(base).convert("1"),
            "i16.png": Image.fromarray((base[..., 0].astype(np.uint16) * 200)), "la.png": Image.fromarray(base).convert("LA"),
            "wide.jpg": _img(20, 1000), "tall.jpg": _img(1000, 20), "tiny.png": _img(1, 3), "webp.webp": _img()}
    for name, im in imgs.items(): im.save(tmp_path / name, **(dict(transparency=0) if name == "pt.png" else {}))
    _jsonl(tmp_path, [(n, f"picture {n}") for n in imgs])
    ds = ImageCaptionFolder(tmp_path, resolution=64, progress=False)
    assert len(ds) == len(imgs)
    for i, name in enumerate(imgs):
        it = ds[i]
        assert it["pixels"].shape == (3, 64, 64) and torch.isfinite(it["pixels"]).all(), name
        assert -1 <= it["pixels"].min() and it["pixels"].max() <= 1
    wide = ds[list(imgs).index("wide.jpg")]
    assert wide["original_size"] == (20, 1000) and wide["crop_top_left"] == (0, (3200 - 64) // 2)

def test_crop_box_resize_matches_resize_then_crop(tmp_path):
    im = _img(300, 500); im.save(tmp_path / "a.png"); _jsonl(tmp_path, [("a.png", "x")])
    x = ImageCaptionFolder(tmp_path, resolution=128, progress=False)[0]["pixels"]
    full = im.resize((213, 128), Image.BILINEAR).crop((42, 0, 170, 128))   # the official bilinear Resize, then crop
    ref = torch.from_numpy(np.asarray(full).copy()).permute(2, 0, 1).float() / 127.5 - 1
    assert (x - ref).abs().max() <= 2 / 127.5

def test_file_broken_after_the_check_is_named(tmp_path):
    _img().save(tmp_path / "a.jpg"); _jsonl(tmp_path, [("a.jpg", "x")])
    ds = ImageCaptionFolder(tmp_path, resolution=32, progress=False)
    (tmp_path / "a.jpg").write_bytes((tmp_path / "a.jpg").read_bytes()[:400])
    with pytest.raises(OSError, match="a.jpg"): ds[0]

def test_check_is_fast(tmp_path):
    "1,000 images are checked in well under the seconds a 10k folder may take."
    buf = tmp_path / "x.jpg"; _img(256, 384).save(buf, quality=90); data = buf.read_bytes()
    for i in range(1000): (tmp_path / f"{i}.jpg").write_bytes(data)
    _jsonl(tmp_path, [(f"{i}.jpg", f"caption {i}") for i in range(1000)])
    t0 = time.perf_counter(); ds = ImageCaptionFolder(tmp_path, progress=False); dt = time.perf_counter() - t0
    assert len(ds) == 1000 and dt < 5, dt
