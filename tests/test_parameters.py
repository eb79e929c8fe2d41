"""Parameters of the notebooks and configurations: parsing and checks with messages that name the fix."""

import pytest

from camfaith.metrics import PERTURBATIONS
from camfaith.parameters import (
    check_choice,
    check_positive_integers,
    options_text,
    parse_list,
    parse_options,
    parse_removal,
)


def test_lists_and_mappings_pass_through_and_their_command_line_forms_give_the_same_values():
    """A configuration's YAML list or mapping and the text written on the command line mean the same."""
    assert parse_list([4, 8], int) == parse_list("4,8", int) == [4, 8]
    assert parse_list(("uniform", 0.0), str) == parse_list("uniform,0.0", str) == ["uniform", "0.0"]
    assert parse_list([], str, allow_empty=True) == []
    with pytest.raises(ValueError, match="expected a list of int"):
        parse_list([4, "eight"], int)
    options = {"variant": "colour", "n_train": 600}
    assert parse_options(options) == parse_options("variant=colour,n_train=600") == options
    assert parse_options(options) is not options  # a copy: the caller's mapping is never changed
    assert options_text(options) == "variant=colour,n_train=600"
    assert parse_options(options_text(options)) == options
    with pytest.raises(ValueError, match="mapping from names"):
        parse_options({1: "a"})


def test_list_and_option_parameters():
    assert parse_list("4, 8,14", int) == [4, 8, 14]
    assert parse_list(0.5) == [0.5]
    assert parse_list(" Normal , COVID", str) == ["Normal", "COVID"]
    assert parse_list("", str, allow_empty=True) == []
    with pytest.raises(ValueError, match="at least one value"):
        parse_list(" , ", str)
    with pytest.raises(ValueError, match="expected a list of int"):
        parse_list("4,eight", int)
    assert parse_options("n_train=600, variant=colour") == {"n_train": 600, "variant": "colour"}
    assert parse_options("") == {} and parse_options(None) == {}
    with pytest.raises(ValueError, match="name=value"):
        parse_options("n_train")


def test_checks_name_the_parameter_and_the_choices():
    check_choice("dataset", "synthetic", ("synthetic", "crc"))
    with pytest.raises(ValueError, match="dataset='mnist' is not known; choose one of: synthetic, crc"):
        check_choice("dataset", "mnist", ("synthetic", "crc"))
    check_positive_integers(n_images=3, chunk_size=1)
    for bad in (True, 0, -2, 2.0, "3"):
        with pytest.raises(ValueError, match="n_images must be a positive integer"):
            check_positive_integers(n_images=bad)


def test_a_removal_is_named_or_a_constant():
    assert [parse_removal(v, PERTURBATIONS) for v in ("road", " uniform", "0.0", 0.5)] == ["road", "uniform", 0.0, 0.5]
    with pytest.raises(ValueError, match="'smudge' is not known; choose one of: uniform, image_range, road, blur"):
        parse_removal("smudge", PERTURBATIONS)
