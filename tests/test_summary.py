import pytest
from torch import nn

from helpers.summary import count_parameters, receptive_field_table, show_summary


def small_net():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),   # 26
        nn.Conv2d(8, 16, 3), nn.ReLU(),                     # 24
        nn.MaxPool2d(2),                                    # 12
        nn.Conv2d(16, 8, 1), nn.ReLU(),                     # 12
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),          # 12
        nn.Conv2d(16, 10, 3, stride=2),                     # 5
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),              # 1
    )


def test_count_parameters_by_hand():
    # conv: in*out*k*k + out; BatchNorm: 2 per channel (running stats are not parameters)
    expected = (1*8*9 + 8) + 16 + (8*16*9 + 16) + (16*8 + 8) + (8*16*9 + 16) + (16*10*9 + 10)
    assert count_parameters(small_net()) == expected == 4_018


def test_receptive_field_by_hand():
    rows = receptive_field_table(small_net())
    # (type, output size, jump, receptive field), worked out with rf += (k-1)*jump; jump *= stride
    assert [(r["type"], r["output"], r["jump"], r["receptive_field"]) for r in rows] == [
        ("Conv2d", 26, 1, 3),
        ("Conv2d", 24, 1, 5),
        ("MaxPool2d", 12, 2, 6),
        ("Conv2d", 12, 2, 6),     # a 1x1 sees no more
        ("Conv2d", 12, 2, 10),
        ("Conv2d", 5, 4, 14),
        ("AdaptiveAvgPool2d", 1, 4, 30),  # GAP over 5x5: +(5-1)*4
    ]
    assert rows[0]["layer"] == "0" and rows[-1]["layer"] == "11"
    # where the first output pixel's view is centred, in input pixels: +((k-1)/2 - padding) * jump in
    assert [r["start"] for r in rows] == [1, 2, 2.5, 2.5, 2.5, 4.5, 12.5]


def test_multiply_adds_by_hand():
    rows = receptive_field_table(small_net())
    # a convolution: output height x width x out channels x (in channels x k x k); pooling: none
    assert [r["multiply_adds"] for r in rows] == [
        26 * 26 * 8 * (1 * 9), 24 * 24 * 16 * (8 * 9), 0, 12 * 12 * 8 * 16, 12 * 12 * 16 * (8 * 9),
        5 * 5 * 10 * (16 * 9), 0]
    depthwise = receptive_field_table(nn.Sequential(nn.Conv2d(4, 4, 3, groups=4)), input_size=(4, 28, 28))
    assert depthwise[0]["multiply_adds"] == 26 * 26 * 4 * 9  # each output sees one input channel


def test_dilation_counts():
    rows = receptive_field_table(nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2), nn.Conv2d(2, 2, 3)))
    assert [r["receptive_field"] for r in rows] == [5, 7]


def test_rectangular_kernels_are_refused():
    with pytest.raises(ValueError, match="square"):
        receptive_field_table(nn.Sequential(nn.Conv2d(1, 2, (3, 1))))


def test_show_summary_prints_tables_and_count(capsys):
    model = small_net()
    model.train()
    assert show_summary(model) == 4_018
    out = capsys.readouterr().out
    assert "Total params: 4,018" in out and "Parameters: 4,018" in out and "RF" in out
    assert model.training, "the summary must not leave the model in eval mode"


def test_layer_column_fits_the_longest_name():
    from helpers.summary import format_receptive_field_table

    model = nn.Sequential()
    model.add_module("a_rather_long_block_name", nn.Conv2d(1, 2, 3))
    model.add_module("gap", nn.AdaptiveAvgPool2d(1))
    lines = format_receptive_field_table(receptive_field_table(model)).splitlines()
    name_width = len("a_rather_long_block_name")
    assert lines[2].startswith("a_rather_long_block_name ")
    assert lines[0].index("type") == lines[2].index("Conv2d") > name_width
