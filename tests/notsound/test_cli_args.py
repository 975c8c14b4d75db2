"""``notsound`` takes a subcommand's options before, between and after its positionals."""

from __future__ import annotations

from pathlib import Path

import pytest

from notsound import __version__
from notsound.cli import build_parser, main


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("argv", [
    ["ask", "s1", "--out", "lib", "What is a gradient?"],
    ["ask", "s1", "What is a gradient?", "--out", "lib"],
    ["ask", "--out", "lib", "s1", "What is a gradient?"],
    ["ask", "s1", "--no-stream", "What is a gradient?", "--out", "lib"],
])
def test_ask_takes_its_options_anywhere(argv):
    args = parse(*argv)
    assert (args.session, args.question, args.out) == ("s1", "What is a gradient?", Path("lib"))


@pytest.mark.parametrize("argv", [
    ["ask", "s1", "--new"],
    ["ask", "--new", "s1"],
])
def test_ask_without_a_question_is_the_conversation(argv):
    args = parse(*argv)
    assert (args.session, args.question, args.new) == ("s1", None, True)


@pytest.mark.parametrize("argv", [
    ["ask", "--all", "--out", "lib", "Where was backprop?"],
    ["ask", "--all", "Where was backprop?", "--out", "lib"],
    ["ask", "Where was backprop?", "--all", "--out", "lib"],
])
def test_ask_all_takes_the_question_anywhere(argv):
    args = parse(*argv)
    assert (args.everywhere, args.session, args.question, args.out) == (True, "Where was backprop?", None,
                                                                        Path("lib"))


@pytest.mark.parametrize("argv", [
    ["export", "s1", "--format", "srt", "-o", "a.srt", "--out", "lib"],
    ["export", "--format", "srt", "s1", "-o", "a.srt", "--out", "lib"],
    ["export", "-f", "srt", "--out", "lib", "-o", "a.srt", "s1"],
])
def test_export_takes_its_options_anywhere(argv):
    args = parse(*argv)
    assert (args.session, args.fmt, args.output, args.out) == ("s1", "srt", Path("a.srt"), Path("lib"))


@pytest.mark.parametrize("command", ["notes", "summary"])
@pytest.mark.parametrize("order", [
    ["s1", "--out", "lib", "--lang", "en"],
    ["--out", "lib", "s1", "--lang", "en"],
    ["--lang", "en", "--out", "lib", "s1"],
])
def test_notes_and_summary_take_their_options_anywhere(command, order):
    args = parse(command, *order)
    assert (args.session, args.out, args.language) == ("s1", Path("lib"), "en")


@pytest.mark.parametrize("argv", [
    ["search", "梯度", "--since", "2026-11-01", "--out", "lib"],
    ["search", "--since", "2026-11-01", "梯度", "--out", "lib"],
    ["search", "--out", "lib", "--since", "2026-11-01", "梯度"],
])
def test_search_takes_its_options_anywhere(argv):
    args = parse(*argv)
    assert (args.query, args.since, args.out) == ("梯度", "2026-11-01", Path("lib"))


@pytest.mark.parametrize("argv", [
    ["keys", "revoke", "k1", "--state-dir", "st"],
    ["keys", "revoke", "--state-dir", "st", "k1"],
])
def test_keys_revoke_takes_its_options_anywhere(argv):
    args = parse(*argv)
    assert (args.keys_action, args.key_id, args.state_dir) == ("revoke", "k1", Path("st"))


def test_a_question_that_looks_like_an_option_goes_after_a_double_dash():
    args = parse("ask", "s1", "--out", "lib", "--", "--why?")
    assert (args.session, args.question, args.out) == ("s1", "--why?", Path("lib"))


def test_help_and_version_still_answer(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"notsound {__version__}"
    with pytest.raises(SystemExit) as exc:
        main(["ask", "s1", "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and out.startswith("usage: notsound ask") and "--all" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["export", "s1"], "the following arguments are required: --format/-f"),
    (["export", "--format", "srt"], "the following arguments are required: SESSION"),
    (["ask", "s1", "--bogus", "q"], "unrecognized arguments: --bogus"),
    (["ask", "s1", "q", "extra"], "unrecognized arguments: extra"),
    (["search"], "the following arguments are required: QUERY"),
    (["keys", "revoke"], "the following arguments are required: ID"),
    (["nope"], "invalid choice: 'nope'"),
])
def test_missing_and_unknown_arguments_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and err.startswith("usage: notsound")


def test_serve_engine_flags_reach_the_engine_options():
    from notsound.cli import _worker_settings

    args = parse("serve", "--engine", "whisper", "--beam-size", "3", "--partial-precision", "fp32")
    options = _worker_settings(args, {}).engine_options()
    assert (options.beam_size, options.partial_precision) == (3, "fp32")
    assert _worker_settings(parse("serve"), {}).engine_options().partial_precision == "auto"
