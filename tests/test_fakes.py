"""The fake models behind the model protocols: deterministic, distinct per input, installable."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import write_natural_photo
from photosearch.errors import UsageError
from photosearch.models.fakes import FakeClip, FakeFaces, install_fake_clip


def test_fake_clip_is_deterministic_and_tells_inputs_apart(tmp_path):
    a = Image.open(write_natural_photo(tmp_path / "a.jpg", seed=1))
    b = Image.open(write_natural_photo(tmp_path / "b.jpg", seed=2))
    one, two = FakeClip(seed=3), FakeClip(seed=3)
    va, vb = one.encode_images([a, b])
    assert np.allclose(va, two.encode_images([a])[0], atol=1e-6)  # same weights, same input: same vector
    assert va.shape == (32,) and np.isclose(np.linalg.norm(va), 1.0)
    assert float(va @ vb) < 0.99
    assert float(va @ one.encode_images([a.resize((160, 120))])[0]) > 0.99  # a smaller copy: nearly the same
    t = one.encode_text(["a red car", "car red a", "a blue boat", ""])
    assert np.allclose(t[0], t[1]) and float(t[0] @ t[2]) < 0.99 and np.isclose(np.linalg.norm(t[3]), 1.0)
    assert not np.allclose(FakeClip(seed=4).encode_text(["a red car"])[0], t[0])


def test_fake_faces_find_the_same_face_in_a_copy(tmp_path):
    img = Image.open(write_natural_photo(tmp_path / "p.jpg", seed=5, size=(400, 300)))
    faces = FakeFaces()
    (f1,) = faces.analyze(img)
    (f2,) = faces.analyze(img.copy())
    assert all(0 <= v <= 1 for v in f1.box) and f1.vector.shape == (faces.dim,)
    assert np.array_equal(f1.vector, f2.vector)
    assert faces.analyze(img.resize((10, 10))) == []


def test_an_installed_fake_loads_through_the_model_store_and_is_not_exported(library, tmp_path):
    install_fake_clip(library.models.root, "other", dim=16, image_size=24, seed=9)
    model = library.models.load()
    assert isinstance(model, FakeClip) and model.name == "other" and model.embed_dim == 16
    assert {m.name for m in library.list_models()} == {"fakeclip", "other"}
    with pytest.raises(UsageError, match="test stand-in"):
        library.export_model("other", tmp_path / "out")
