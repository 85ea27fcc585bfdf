"""`python -m geovr.data.synthetic` with impossible values or an --out it cannot write: a usage
error before any rendering (one line naming the option, exit 2, no traceback)."""
import pytest

from geovr.data.synthetic.__main__ import main


@pytest.mark.parametrize("args,message", [
    (["--seconds", "0"], "argument --seconds: must be > 0, got 0"),
    (["--scenes", "0"], "argument --scenes: must be >= 1, got 0"),
])
def test_impossible_values(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(tmp_path / "w"), "--quiet", *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_an_out_that_cannot_be_written(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(tmp_path / "f"), "--quiet"])
    assert exit_.value.code == 2 and "is a file, not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # a folder under a file cannot be created (even by root)
        main(["--out", str(tmp_path / "f" / "world"), "--quiet"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "the folder cannot be created" in err and "Traceback" not in err
