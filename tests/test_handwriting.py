"""Try your own handwriting: a picture made into an MNIST image, checked against MNIST itself and the final model."""

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import data, handwriting, plots
from helpers.designs import build
from tools.search import FINAL
from tools.project import ROOT


@pytest.fixture(scope="module")
def final_model():
    """The stored final model (models/13_final.pt), in ``designs.build``'s layers: the same tensors in the same order."""
    model = build(FINAL["arch"])
    stored = torch.load(ROOT / "models" / "13_final.pt", weights_only=True)
    model.load_state_dict(dict(zip(model.state_dict(), stored.values())))
    return model.eval()


SEVEN = [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]]
ONE = [[(0.5, 0.15), (0.5, 0.85)]]
FOUR = [[(0.6, 0.85), (0.6, 0.15), (0.25, 0.6), (0.8, 0.6)]]


@pytest.mark.parametrize("label, strokes", [(7, SEVEN), (1, ONE), (4, FOUR)])
def test_a_digit_drawn_on_a_white_page_is_read(final_model, label, strokes):
    page = handwriting.draw_digit(strokes)
    assert np.asarray(page)[0, 0] == 255, "black ink on a white page, as a photo of handwriting"
    _, probabilities = handwriting.read_digit(final_model, page)
    assert int(probabilities.argmax()) == label and probabilities.sum() == pytest.approx(1, abs=1e-5)


def test_mnist_put_back_through_the_preparation_keeps_the_finals_predictions(mnist_root, full_data, final_model):
    images, _ = data.load_mnist(train=False)
    images = images[:1000]
    with torch.no_grad():
        as_stored = final_model(data.normalize(images.float().unsqueeze(1) / 255)).argmax(1)
        prepared = final_model(torch.cat([handwriting.prepare_digit(image) for image in images])).argmax(1)
    assert (as_stored == prepared).float().mean() >= 0.99


def test_the_ink_fits_20_by_20_with_its_centre_of_mass_in_the_middle():
    page = handwriting.draw_digit(ONE, size=300)  # a tall, thin stroke: the height becomes 20, the width stays thin
    ink = handwriting.prepare_digit(page)[0, 0] * data.STD + data.MEAN
    rows, cols = torch.nonzero(ink > 0.05, as_tuple=True)
    assert rows.max() - rows.min() + 1 in (20, 21) and cols.max() - cols.min() + 1 < 8
    y, x = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    assert (y * ink).sum() / ink.sum() == pytest.approx(13.5, abs=0.6)
    assert (x * ink).sum() / ink.sum() == pytest.approx(13.5, abs=0.6)


def test_dark_on_light_and_light_on_dark_give_the_same_image():
    page = np.asarray(handwriting.draw_digit(SEVEN), dtype=np.float32)
    assert torch.allclose(handwriting.prepare_digit(page), handwriting.prepare_digit(255 - page), atol=1e-5)


def test_a_colour_photo_is_read_as_grayscale():
    page = np.asarray(handwriting.draw_digit(SEVEN))
    rgb = Image.fromarray(np.stack([page] * 3, axis=-1))
    assert torch.allclose(handwriting.prepare_digit(rgb), handwriting.prepare_digit(page), atol=1e-5)


def test_bad_pictures_get_a_message_that_names_the_problem(tmp_path):
    not_an_image = tmp_path / "digit.png"
    not_an_image.write_text("hello")
    with pytest.raises(ValueError, match="not an image PIL can read.*PNG or JPEG"):
        handwriting.prepare_digit(not_an_image)
    with pytest.raises(ValueError, match="all one colour: no ink"):
        handwriting.prepare_digit(np.full((50, 50), 255))
    with pytest.raises(ValueError, match="one picture.*shape \\(0, 0\\)"):
        handwriting.prepare_digit(np.zeros((0, 0)))


def test_the_reading_picture_shows_the_input_what_the_network_sees_and_the_ten_probabilities(final_model, tmp_path):
    page = handwriting.draw_digit(SEVEN)
    prepared, probabilities = handwriting.read_digit(final_model, page)
    fig = plots.digit_reading(page, prepared, probabilities)
    ax_in, ax_seen, ax_p = fig.axes
    assert ax_seen.get_images()[0].get_array().shape == (28, 28)
    assert ax_in.get_images()[0].get_array()[0, 0] == 1.0, "the white page drawn white"
    page.save(tmp_path / "seven.png")
    from_path = plots.digit_reading(str(tmp_path / "seven.png"), prepared, probabilities).axes[0]
    assert (from_path.get_images()[0].get_array() == ax_in.get_images()[0].get_array()).all(), "a path reads the same"
    heights = [bar.get_height() for bar in ax_p.patches]
    assert heights == pytest.approx(probabilities.tolist()) and ax_p.get_title().startswith("it reads 7")
    assert ax_p.patches[7].get_facecolor() != ax_p.patches[1].get_facecolor(), "the guess stands out"
