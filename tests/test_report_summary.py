"""What a researcher sees at the end of `dynmem reproduce`: the verdict table on the terminal, quick sizes said to
be no evidence (in the report and on the terminal), undetermined numbers in words, no per-epoch noise by default."""

import pytest

from dynmem.cli import main
from dynmem.experiments.report import in_words, quick_note, summary_lines


def _row(**kw):
    row = {"stem": "fig2-paper", "experiment": "fig2", "protocol": "paper", "size": "quick",
           "verdict": "not reproduced", "why": "no shrinking boundary; slope nan", "quick": "quick: reduced sizes; not evidence"}
    row.update(kw)
    return row


def test_summary_lines_one_row_per_result_with_the_quick_note():
    lines = summary_lines([_row(), _row(stem="fig1-dynmem", size="full", verdict="reproduced", why="ok", quick="")])
    assert lines[0].split()[:4] == ["experiment", "protocol", "size", "verdict"]
    body = "\n".join(lines)
    assert "not reproduced" in body and "reproduced" in body and "no shrinking boundary" in body
    assert "quick: reduced sizes" not in body  # said once below the table by the caller
    epochs = summary_lines([_row(quick="quick: 12 epochs of the protocol's up to 1,000; not evidence")])
    assert len(epochs) == 4 and "12 epochs of the protocol's up to 1,000" in epochs[3]
    long = summary_lines([_row(why="word " * 100)], width=100)
    assert len(long) == 3 and long[2].endswith("...") and len(long[2]) <= 150  # why on one line, cut at a word


def test_summary_lines_make_control_characters_visible():
    body = "\n".join(summary_lines([_row(stem="evil\x1b[2Jname", why="a\rb")]))
    assert "\x1b" not in body and "\r" not in body and "\\x1b" in body


def test_in_words_says_nan_and_zero_holding_intervals_in_words():
    text = in_words("pol slope nan, CI [-3.45, 2.78], NTK slope -0.445 CI [-0.579, -0.408], nanosecond")
    assert "nan," not in text and "undetermined (too few points)" in text
    assert "CI [-3.45, 2.78] (holds 0: sign undetermined)" in text
    assert "CI [-0.579, -0.408] (" not in text and "nanosecond" in text


def test_quick_note_states_epochs_against_the_protocol_budget():
    r = {"budget": {"epochs": {"pol": {"4": [12, 12]}}, "full_budget_epochs": 12}}
    assert quick_note(r, "fig2", "paper", "quick") == "quick: 12 epochs of the protocol's up to 1,000; not evidence"
    assert quick_note({}, "fig1", "dynmem", "quick") == "quick: reduced sizes; not evidence"
    assert quick_note(r, "fig2", "paper", "full") == ""




def test_reproduce_terminal_and_report(tmp_path, capsys):
    assert main(["reproduce", "fig2", "--out", str(tmp_path)]) == 0
    cap = capsys.readouterr()
    assert "epoch 1 " not in cap.err and "epoch 10 " not in cap.err  # per-epoch lines only with --verbose
    assert "[1/1] fig2-paper: running (quick size, not evidence" in cap.err
    models = [line for line in cap.err.splitlines() if line.startswith("[dynmem.experiments] fig2/paper")]
    assert len(models) == 8  # one line per trained model: 2 targets x 2 widths x 2 seeds
    out = cap.out.splitlines()
    head = next(i for i, line in enumerate(out) if line.startswith("experiment"))
    assert out[head + 2].startswith("fig2-paper") and "quick: 12 epochs of the protocol's up to 1,000; not evidence" in out[head + 3]
    assert len(cap.out.splitlines()) <= 10
    report = (tmp_path / "REPORT.md").read_text()
    assert "## At a glance" in report and "not evidence" in report
    assert "12-12" not in report and "epochs per model" in report
    assert " nan" not in report.replace("(too few points)", "")


def test_reproduce_verbose_keeps_the_epoch_lines(tmp_path, capsys):
    assert main(["reproduce", "fig2", "--out", str(tmp_path), "--verbose"]) == 0
    err = capsys.readouterr().err
    assert "epoch 1 " in err




def test_model_lines_redraw_in_place_on_a_terminal(monkeypatch):
    import io

    from dynmem.experiments import VERBOSE_ENV, model_line, progress_line

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    tty, log = Tty(), io.StringIO()
    model_line("model a", tty)
    model_line("model b", tty)
    progress_line("[2/9] next: running", tty)
    assert tty.getvalue().count("\n") == 1 and "\rmodel b\x1b[K" in tty.getvalue()
    assert tty.getvalue().endswith("\r\x1b[K[2/9] next: running\n")
    model_line("model a", log)
    progress_line("done", log)
    assert log.getvalue() == "model a\ndone\n"
    monkeypatch.setenv(VERBOSE_ENV, "1")
    verbose_tty = Tty()
    model_line("model a", verbose_tty)
    assert verbose_tty.getvalue() == "model a\n"
