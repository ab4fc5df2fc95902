"""segqc's path options written as two words or one (see segqc.invocation)."""

from segqc.invocation import joined_path_options, spaced_path_options


def test_two_word_path_options_are_joined_and_nothing_else_is():
    args = ["-k", "image", "--model", "/m", "-v", "--qc-target", "/gt", "--qc-source=/s",
            "--device", "cpu", "tests"]  # fmt: skip
    assert joined_path_options(args) == [
        "-k", "image", "--model=/m", "-v", "--qc-target=/gt", "--qc-source=/s",
        "--device", "cpu", "tests",
    ]  # fmt: skip
    assert spaced_path_options(args) == [("--model", "/m"), ("--qc-target", "/gt")]


def test_an_option_without_its_value_is_left_for_pytest_to_refuse():
    assert joined_path_options(["--model"]) == ["--model"]
    assert joined_path_options(["--model", "-v"]) == ["--model", "-v"]
    assert spaced_path_options(["--model", "-v"]) == []
