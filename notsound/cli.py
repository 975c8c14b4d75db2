"""The ``notsound`` command: one function per subcommand, each builds settings and runs one coroutine."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from common.errors import EXIT_ERROR, EXIT_USAGE, NotSoundError

from . import __version__
from .config import build_settings, load_toml

__all__ = ["main", "build_parser"]

log = logging.getLogger("notsound")

#: exit codes (besides EXIT_ERROR and EXIT_USAGE, which errors carry)
EXIT_OK = 0
EXIT_INTERRUPTED = 130

#: at the end of ``live``, how long the last notes update may take
NOTES_FLUSH_TIMEOUT_S = 90.0


class CommandError(NotSoundError):
    """A command's own check that failed (a flag that does not fit), reported like every other error."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR):
        super().__init__(message, exit_code=exit_code)


def _setup_logging(verbose: int, quiet: bool, default: int = logging.WARNING) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose > 1 else logging.INFO if verbose else default
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # Third-party chatter only when asked for.
    for noisy in ("websockets", "httpx", "openai", "modelscope", "funasr", "jieba", "faster_whisper"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose > 2 else logging.WARNING)


# -- serve -------------------------------------------------------------------


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the caption worker (WebSocket server)")
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8765; 0 picks a free one)")
    _add_engine_flags(p)
    g = p.add_argument_group("security")
    g.add_argument("--no-auth", dest="auth", action="store_false", default=None,
                   help="no API keys (refused unless --host is a loopback address)")
    g.add_argument("--state-dir", help="folder of keys.json (default $NOTSOUND_STATE_DIR or ~/.local/state/notsound)")
    g.add_argument("--tls-cert", help="PEM certificate chain: serve wss://")
    g.add_argument("--tls-key", help="PEM private key of --tls-cert")
    g = p.add_argument_group("limits (per stream unless noted)")
    g.add_argument("--max-utterance-s", type=float, help="longest utterance in seconds (default 30)")
    g.add_argument("--audio-rate", type=float, help="audio per second of wall time, x real time (default 2; 0 off)")
    g.add_argument("--audio-burst-s", type=float, help="seconds of audio accepted at once (default 60)")
    g.add_argument("--messages-per-s", type=float, help="frames per second (default 50; bursts of 4x)")
    g.add_argument("--idle-timeout-s", type=float, help="close after this long without a frame (default 300)")
    g.add_argument("--max-owed", type=int, help="finals owed before reading pauses (default 32)")
    g.add_argument("--max-streams-per-key", type=int, help="concurrent streams per key (default 8)")
    g = p.add_argument_group("scheduling")
    g.add_argument("--partial-every-s", type=float, help="seconds of new audio between partials (default 0.3)")
    g.add_argument("--batch-budget-s", type=float, help="most seconds of audio in one engine call (default 30)")
    g.add_argument("--max-batch", type=int, help="most clips in one engine call (default 16)")
    p.set_defaults(func=_cmd_serve)


def _add_engine_flags(p: argparse.ArgumentParser, device_flag: str = "--device") -> None:
    p.add_argument("--engine", help="ASR engine: sensevoice (default) or whisper; see `notsound models`")
    p.add_argument("--model", help="hub id, model name or local model directory")
    p.add_argument(device_flag, dest="engine_device", help="engine device: auto (default), cpu, cuda or cuda:N")
    p.add_argument("--precision", help="fp32 (default), fp16 (GPU) or int8 (CPU fast path)")
    p.add_argument("--threads", type=int, help="CPU threads for the engine")
    p.add_argument("--no-warmup", dest="warmup", action="store_false", default=None,
                   help="skip the warm-up clip at start")
    p.add_argument("--beam-size", type=int,
                   help="beam width of finals, decoded for accuracy (default 5; whisper only: "
                        "SenseVoice is CTC and decodes finals and partials alike)")
    p.add_argument("--partial-beam-size", type=int, help="beam width of partials (default 1, greedy; whisper)")
    p.add_argument("--partial-precision",
                   help="precision of partials: auto (default: int8 on CPU, else as --precision), fp32, fp16 "
                        "or int8 (whisper)")
    p.add_argument("--no-early-finals", dest="early_finals", action="store_false", default=None,
                   help="do not decode an utterance before its pause is confirmed")
    p.add_argument("--no-commit", dest="commit", action="store_false", default=None,
                   help="send a long utterance's text only when it ends, not its settled sentences before")
    p.add_argument("--no-calibrate", dest="calibrate", action="store_false", default=None,
                   help="batch without timing batched against single engine calls at start")


def _worker_settings(args: argparse.Namespace, toml: dict, **overrides):
    from live.server import WorkerSettings

    flags = {name: getattr(args, name, None) for name in (
        "host", "port", "engine", "model", "precision", "threads", "warmup", "auth", "state_dir",
        "tls_cert", "tls_key", "max_utterance_s", "audio_rate", "audio_burst_s", "messages_per_s",
        "idle_timeout_s", "max_owed", "max_streams_per_key", "partial_every_s", "batch_budget_s",
        "max_batch", "beam_size", "partial_beam_size", "partial_precision", "early_finals", "commit",
        "calibrate")}
    flags["device"] = getattr(args, "engine_device", None)
    flags.update(overrides)
    return build_settings(WorkerSettings, "worker", toml=toml, flags=flags)


def _cmd_serve(args: argparse.Namespace, toml: dict) -> int:
    from live.server import run_serve

    settings = _worker_settings(args, toml)
    asyncio.run(run_serve(settings))
    return EXIT_OK


# -- models ------------------------------------------------------------------


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list ASR engines and where each loads its model from")
    p.set_defaults(func=_cmd_models)


def _cmd_models(args: argparse.Namespace, toml: dict) -> int:
    from live.server import WorkerSettings
    from models import engine_class, engine_names

    settings = build_settings(WorkerSettings, "worker", toml=toml)
    for name in engine_names():
        model = settings.model if name == settings.engine else None
        try:
            where = engine_class(name).describe(model)
        except ImportError as exc:
            where = f"unavailable: {exc}"
        mark = "*" if name == settings.engine else " "
        print(f"{mark} {name:<11} {where}")
    print("\n* default engine; choose with --engine NAME and --model ID_OR_DIR")
    return EXIT_OK


# -- live --------------------------------------------------------------------


def _add_live(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("live", help="caption the microphone or a file live, journal it, keep notes")
    p.add_argument("--server", help="worker URL (ws:// or wss://); default: embedded worker")
    p.add_argument("--key-file", type=Path, help="file with the worker's API key (or set NOTSOUND_KEY)")
    p.add_argument("--ca", dest="ca_file", type=Path, help="CA bundle for a wss:// worker")
    p.add_argument("--input", type=Path, help="audio or video file instead of the microphone")
    p.add_argument("--fast", action="store_true", default=None,
                   help="with --input: as fast as the worker takes it, not real time")
    p.add_argument("--device", help="input device: name (substring) or index; see `notsound devices`")
    p.add_argument("--session", help="session name (default YYYY-MM-DD_HHMM); same name resumes")
    p.add_argument("--out", type=Path, help="folder of session folders (default ./lectures)")
    p.add_argument("--language", help="auto (default), en, zh, yue, ja, ko ...")
    p.add_argument("--events", type=Path, help="write every partial and final to FILE (JSON lines)")
    p.add_argument("--plain", action="store_true", default=None, help="print finals line by line")
    p.add_argument("--no-notes", dest="notes", action="store_false", default=None,
                   help="do not keep notes.md during the lecture")
    p.add_argument("--translate", metavar="LANG",
                   help="show each caption translated into LANG (zh, en ...) by the LLM; "
                        "kept in translations.jsonl")
    p.add_argument("--web", metavar="[HOST:]PORT",
                   help="serve a caption page, e.g. 8080 (loopback) or 0.0.0.0:8080 (the room, with a token)")
    p.add_argument("--web-token-file", type=Path, metavar="FILE",
                   help="viewer token of the caption page (default: a random one off loopback)")
    p.add_argument("--web-owner-token-file", type=Path, metavar="FILE",
                   help="your own token off loopback: ask and exports in the room (default: a random one)")
    p.add_argument("--slides", type=Path, metavar="FILE",
                   help="the lecture's deck (.pptx, .pdf, .md, .txt): terms as recognition hints, "
                        "finals corrected and tagged with their slide; stored in the session")
    p.add_argument("--no-record", dest="record", action="store_false", default=None,
                   help="do not keep the lecture's audio (recording/ in the session folder)")
    p.add_argument("--polish", action="store_true", default=None,
                   help="when the lecture ends, transcribe its recording again for accuracy (see polish)")
    p.add_argument("--speakers", choices=("on", "off"),
                   help="label captions lecturer / audience-N from voices, computed in memory and "
                        "never stored (default: on when the speaker model is installed)")
    _add_engine_flags(p, device_flag="--engine-device")
    p.set_defaults(func=_cmd_live)


def _cmd_live(args: argparse.Namespace, toml: dict) -> int:
    from .liverun import LiveSettings, run_live
    from .view import format_speed

    flags = {name: getattr(args, name, None) for name in (
        "server", "key_file", "ca_file", "input", "fast", "device", "session", "out",
        "language", "events", "plain", "notes", "translate", "slides", "record", "polish",
        "speakers")}
    flags.update(web=args.web, web_token_file=args.web_token_file,
                 web_owner_token_file=args.web_owner_token_file)
    settings = build_settings(LiveSettings, "live", toml=toml, flags=flags)
    _check_web(settings)
    encoder = _speaker_encoder(settings.speakers)  # a usage error for --speakers on without the model
    if settings.translate and not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?", settings.translate):
        raise CommandError(f"--translate needs a language code such as zh or en, not {settings.translate!r}",
                           EXIT_USAGE)
    if settings.fast and settings.input is None:
        raise CommandError("--fast needs --input FILE", EXIT_USAGE)
    if settings.input is not None and not settings.input.is_file():
        raise CommandError(f"input file {settings.input} not found", EXIT_USAGE)
    worker = _worker_settings(args, toml, host="127.0.0.1", port=0,
                              audio_rate=0.0 if settings.fast else None)
    notes = _notes_runner(settings, toml)
    translate = _translate_runner(settings, toml)
    ask = _room_ask(toml) if settings.web else None
    result = asyncio.run(run_live(settings, worker, notes=notes, translate=translate, ask=ask))
    if settings.fast:  # how fast it went; its latency would be time queued behind the worker
        latency = f", {format_speed(result.audio_s, result.wall_s)}" if result.finals else ""
    else:
        latency = f", caption latency p50 {statistics.median(result.latencies):.2f} s" if result.latencies else ""
    owed = f", {result.owed} still owed: run the same session again to send them" if result.owed else ""
    print(f"session folder: {result.session_dir}  ({result.finals} new captions{latency}{owed})",
          file=sys.stderr)
    if settings.polish and settings.record:
        server = (settings.server, settings.key_file, settings.ca_file) if settings.server else None
        _polish(result.session_dir, _worker_settings(args, toml), server=server,
                speakers=encoder)
    return EXIT_OK


# -- polish ------------------------------------------------------------------


def _add_polish(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("polish", help="transcribe a session's recording again after class, for accuracy")
    p.add_argument("session", metavar="SESSION", help="session folder, or the name of one under --out")
    p.add_argument("--out", type=Path, help="folder of session folders (default ./lectures)")
    p.add_argument("--window-s", type=float, default=28.0,
                   help="longest stretch of the recording decoded at once (default 28; at most 29.4 with --server)")
    p.add_argument("--server", help="worker URL (ws:// or wss://) that polishes, at its lowest priority "
                                    "(feature polish); default: an engine on this machine")
    p.add_argument("--key-file", type=Path, help="file with the worker's API key (or set NOTSOUND_KEY)")
    p.add_argument("--ca", dest="ca_file", type=Path, help="CA bundle for a wss:// worker")
    p.add_argument("--speakers", choices=("on", "off"),
                   help="label the polished captions lecturer / audience-N from their voices over the whole "
                        "lecture, in memory only (default: on when the speaker model is installed)")
    _add_engine_flags(p, device_flag="--engine-device")
    p.set_defaults(func=_cmd_polish)


def _cmd_polish(args: argparse.Namespace, toml: dict) -> int:
    from library.folder import read_meta, resolve_session
    from wire.protocol import MAX_POLISH_S

    from .polish import MARGIN_S

    folder = resolve_session(args.session, args.out)
    engine = args.engine or read_meta(folder).get("engine") or None
    longest = MAX_POLISH_S - 2 * MARGIN_S if args.server else 30.0  # a window and its margins fit the worker's
    if not 5.0 <= args.window_s <= longest:
        raise CommandError(f"--window-s must be between 5 and {longest:g} seconds", EXIT_USAGE)
    if args.server and (args.engine or args.model or args.engine_device):
        raise CommandError("--engine, --model and --engine-device choose an engine on this machine: "
                           "with --server the worker's engine polishes", EXIT_USAGE)
    server = (args.server, args.key_file, args.ca_file) if args.server else None
    speakers = {"on": True, "off": False}.get(args.speakers)
    _polish(folder, _worker_settings(args, toml, engine=engine), args.window_s, server=server,
            speakers=_speaker_encoder(speakers))
    return EXIT_OK


def _speaker_encoder(wanted: bool | None):
    """The voice encoder that labels speakers (``--speakers``; default: when installed), or None."""
    from capture.voices import ResemblyzerEncoder, encoder_installed

    if wanted and not encoder_installed():
        raise CommandError("--speakers on needs the speaker model: pip install 'notsound[speakers]' "
                           "(resemblyzer)", EXIT_USAGE)
    return ResemblyzerEncoder if wanted or (wanted is None and encoder_installed()) else None


def _polish(folder: Path, worker, window_s: float = 28.0,
            server: tuple[str, Path | None, Path | None] | None = None, speakers=None) -> None:
    """Polish ``folder`` with the engine of ``worker`` (settings), or on ``server`` (URL, key file,
    CA file) when given, speakers labelled with the encoder ``speakers`` builds; a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from models import create_engine

    from .deck import open_live_deck
    from .polish import polish_session

    def notify(text: str) -> None:
        print(f"notsound: {text}", file=sys.stderr)

    deck = asyncio.run(open_live_deck(folder, None, notify))
    if server is not None:
        from .liverun import read_key
        from .polish_remote import RemoteDecoder

        url, key_file, ca_file = server
        decoder = RemoteDecoder(url, key=read_key(key_file), ca_file=ca_file, session=folder.name)
    else:
        decoder = create_engine(worker.engine, worker.engine_options())
    columns = (TextColumn("polishing"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeRemainingColumn())
    try:
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("polish", total=None)
            result = polish_session(folder, decoder, deck=deck, window_s=window_s, notify=notify,
                                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                                    speakers=speakers)
    finally:
        decoder.close()
    if result.already:
        print(f"notsound: {folder} is polished already: {result.path}", file=sys.stderr)
        return
    carried = f", {result.carried} captions kept from the live layer" if result.carried else ""
    print(f"notsound: wrote {result.path} ({result.windows} windows, {result.audio_s:.0f} s of speech"
          f"{carried})", file=sys.stderr)


def _check_web(settings) -> None:
    """A bad ``--web`` address or token file is a usage error, before anything starts."""
    if not settings.web:
        return
    _check_address(settings.web, settings.web_token_file, settings.web_owner_token_file)
    if settings.web_max_viewers < 1:
        raise CommandError("[live] web_max_viewers must be at least 1", EXIT_USAGE)


def _check_address(spec: str, *token_files: Path | None) -> None:
    from .web import WebError, parse_web_address, read_token_file

    try:
        parse_web_address(spec)
        for path in token_files:
            if path is not None:
                read_token_file(path)
    except WebError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None


def _room_ask(toml: dict):
    """How the lecture room asks (the settings and key of ``notsound ask``); None without a key."""
    from summarizer import LLMSettings, resolve_api_key
    from summarizer.settings import AskSettings

    from .room import AskConfig

    llm = build_settings(LLMSettings, "llm", toml=toml)
    key = resolve_api_key(llm)
    return AskConfig(llm, build_settings(AskSettings, "ask", toml=toml), key) if key else None


def _notes_runner(settings, toml: dict):
    """The notes task for ``live`` (LLM notes with a key, an extractive outline without), or None."""
    if not settings.notes:
        return None
    from summarizer import LLMSettings, NotesSettings, NotesTask, resolve_api_key

    llm = build_settings(LLMSettings, "llm", toml=toml)
    notes = build_settings(NotesSettings, "notes", toml=toml)
    key = resolve_api_key(llm)

    async def keep_notes(session_dir: Path, stop: asyncio.Event, notify) -> None:
        task = NotesTask(session_dir, llm, notes, key, notify, layer="live")  # no polished layer yet
        try:
            await task.run(stop)
            await asyncio.wait_for(task.flush(), NOTES_FLUSH_TIMEOUT_S)
        except asyncio.TimeoutError:
            notify(f"notes.md is not complete yet: run `notsound notes {session_dir}` to finish it")

    return keep_notes


def _translate_runner(settings, toml: dict):
    """The translator of ``live --translate LANG`` (without a key: one notice, no requests), or None."""
    if not settings.translate:
        return None
    from summarizer import LLMSettings, resolve_api_key
    from summarizer.translate import TranslateSettings, Translator, session_glossary

    llm = build_settings(LLMSettings, "llm", toml=toml)
    options = build_settings(TranslateSettings, "translate", toml=toml)
    key = resolve_api_key(llm)

    def make(session_dir: Path, view, show) -> Translator:
        return Translator(
            session_dir, settings.translate, llm, options, key,
            glossary=session_glossary(session_dir) if key else (), notify=view.notice,
            on_translation=lambda t: show(t.utt, t.text),
            on_partial=view.on_translation_partial,
            on_lag=lambda lag: view.set_translation_lag(lag.captions, lag.seconds, off=lag.stopped))

    return make


# -- devices -----------------------------------------------------------------


def _add_devices(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="list audio input devices")
    p.set_defaults(func=_cmd_devices)


def _cmd_devices(args: argparse.Namespace, toml: dict) -> int:
    from capture.sources import list_input_devices

    devices = list_input_devices()
    if not devices:
        print("no input devices found")
        return EXIT_ERROR
    for d in devices:
        mark = "*" if d.is_default else " "
        print(f"{mark} {d.index:>3}  {d.name}  ({d.channels} ch, {d.default_samplerate:g} Hz)")
    print("\n* default; choose with notsound live --device NAME_OR_INDEX")
    return EXIT_OK


# -- keys --------------------------------------------------------------------


def _add_keys(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="create, list and revoke API keys of a shared worker")
    actions = p.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="make a key and print it (once: it is stored only hashed)")
    create.add_argument("--admin", action="store_true", help="the key may manage keys over /admin/keys")
    create.add_argument("--name", default="", help="who or what the key is for")
    create.add_argument("--max-streams", type=int, default=0,
                        help="most streams at once with this key (0: the worker's default)")
    listing = actions.add_parser("list", help="list keys and their usage (never the keys themselves)")
    revoke = actions.add_parser("revoke", help="revoke a key; workers refuse it from the next request")
    revoke.add_argument("key_id", metavar="ID", help="the key's id, as `notsound keys list` shows it")
    for action in (create, listing, revoke):
        action.add_argument("--state-dir", type=Path,
                            help="key folder (default $NOTSOUND_STATE_DIR or ~/.local/state/notsound)")
    p.set_defaults(func=_cmd_keys)


def _cmd_keys(args: argparse.Namespace, toml: dict) -> int:
    from live.keys import KeyStore, format_key_table

    store = KeyStore(args.state_dir)
    try:
        if args.keys_action == "create":
            record, token = store.create(name=args.name, admin=args.admin, max_streams=args.max_streams)
            print(token, flush=True)
            print(f"created {'admin ' if record.admin else ''}key {record.id}: store it now, "
                  "it will not be shown again", file=sys.stderr)
        elif args.keys_action == "list":
            records = store.list()
            print(format_key_table(records) if records else
                  f"no keys in {store.state_dir} yet: `notsound keys create --admin` makes one")
        elif not store.revoke(args.key_id):
            raise CommandError(f"no key with id {args.key_id!r} in {store.state_dir}; "
                               "see `notsound keys list`")
        else:
            print(f"revoked key {args.key_id}")
    except ValueError as exc:  # a name or --max-streams the store refuses
        raise CommandError(str(exc), EXIT_USAGE) from None
    return EXIT_OK


# -- notes, summary (summarizer/) -------------------------------------------


def _add_notes(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("notes", help="bring notes.md of a session up to date (LLM, or an outline without a key)",
                       epilog=NOTES_KEY_HELP)
    p.add_argument("session", metavar="SESSION", help="session folder, or the name of one under --out")
    p.add_argument("--out", type=Path, help="folder of session folders (default ./lectures)")
    p.add_argument("--follow", action="store_true", help="keep updating until the lecture ends (or Ctrl-C)")
    p.add_argument("--lang", dest="language", help="notes language: auto (follow the lecture), zh, en ...")
    p.add_argument("--every", dest="every_s", type=float, help="seconds of new speech per update (default 120)")
    p.add_argument("--slides", type=Path, metavar="FILE",
                   help="the lecture's slides (.pptx, .pdf, .md, .txt) as a glossary; stored in the session")
    _add_layer_flag(p, default="best")
    p.set_defaults(func=_cmd_notes)


#: how ``notsound notes --help`` says to turn LLM notes on (the outline's notes.md points here)
NOTES_KEY_HELP = (
    "LLM notes need an API key: set DEEPSEEK_API_KEY (DeepSeek, the default) or NOTSOUND_LLM_API_KEY "
    "(any OpenAI-compatible API, with NOTSOUND_LLM_BASE_URL and NOTSOUND_LLM_MODEL; a local Ollama "
    "takes any non-empty key), or name a file holding the key with NOTSOUND_LLM_KEY_FILE or "
    "key_file in the [llm] section of notsound.toml. Without a key, notes.md is an outline: the "
    "key sentences of every few minutes under their keywords."
)


def _cmd_notes(args: argparse.Namespace, toml: dict) -> int:
    import summarizer as sm
    from library.folder import require_finals

    llm = build_settings(sm.LLMSettings, "llm", toml=toml)
    notes = build_settings(sm.NotesSettings, "notes", toml=toml,
                           flags={"language": args.language, "every_s": args.every_s})
    folder = sm.resolve_session(args.session, args.out)
    if not args.follow:  # a lecture still running may not have said anything yet
        require_finals(folder, "take notes from", args.layer)
    task = asyncio.run(sm.run_notes(folder, llm, notes, sm.resolve_api_key(llm), follow=args.follow,
                                    notify=lambda text: print(f"notsound: {text}", file=sys.stderr),
                                    slides=args.slides, layer=args.layer))
    print(task.notes_path)
    return EXIT_OK


def _add_summary(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="write summary.md of a session with the LLM")
    p.add_argument("session", metavar="SESSION", help="session folder, or the name of one under --out")
    p.add_argument("--out", type=Path, help="folder of session folders (default ./lectures)")
    p.add_argument("--style", choices=("detailed", "concise", "study", "action-items"),
                   help="detailed (default), concise, study (adds review questions), action-items")
    p.add_argument("--lang", dest="language", help="summary language: auto (follow the lecture), zh, en ...")
    p.add_argument("--slides", type=Path, metavar="FILE",
                   help="the lecture's slides (.pptx, .pdf, .md, .txt); stored in the session, "
                        "so later commands use them without the flag")
    p.add_argument("--no-stream", dest="stream", action="store_false", default=None,
                   help="do not stream the summary to the terminal while it is written")
    _add_layer_flag(p)
    p.set_defaults(func=_cmd_summary)


def _cmd_summary(args: argparse.Namespace, toml: dict) -> int:
    import summarizer as sm

    llm = build_settings(sm.LLMSettings, "llm", toml=toml)
    flags = {"style": args.style, "language": args.language, "stream": args.stream, "layer": args.layer}
    settings = build_settings(sm.SummarySettings, "summary", toml=toml, flags=flags)
    folder = sm.resolve_session(args.session, args.out)
    path = asyncio.run(sm.run_summary(folder, llm, settings, sm.resolve_api_key(llm), slides=args.slides))
    print(f"\nnotsound: wrote {path}", file=sys.stderr)
    return EXIT_OK



def _add_layer_flag(p: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--live``: read the live journal even where ``notsound polish`` wrote a better layer."""
    p.add_argument("--live", dest="layer", action="store_const", const="live", default=default,
                   help="use the live captions even where a polished transcript exists (notsound polish)")

def _add_ask(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ask", help="ask questions about a lecture (or, with --all, about every lecture)")
    p.add_argument("session", metavar="SESSION", nargs="?",
                   help="session folder, or the name of one under --out (not with --all)")
    p.add_argument("question", metavar="QUESTION", nargs="?",
                   help="answer this one question and exit; without it: an interactive prompt")
    p.add_argument("--all", dest="everywhere", action="store_true",
                   help="answer QUESTION from every lecture under --out (search hits), citing session and time")
    p.add_argument("--new", action="store_true",
                   help="start a new conversation (the old one is kept as ask.YYYYmmdd-HHMMSS.jsonl)")
    p.add_argument("--out", type=Path, help="folder of session folders (default ./lectures)")
    p.add_argument("--no-stream", dest="stream", action="store_false", default=None,
                   help="do not stream answers to the terminal")
    p.add_argument("--slides", type=Path, metavar="FILE",
                   help="the lecture's deck (.pptx, .pdf, .md, .txt), stored in the session for later questions")
    _add_layer_flag(p)
    p.set_defaults(func=_cmd_ask)


def _cmd_ask(args: argparse.Namespace, toml: dict) -> int:
    import summarizer as sm
    from library.folder import resolve_session
    from summarizer.ask import require_key
    from summarizer.ask_view import run_ask, run_ask_all
    from summarizer.settings import AskSettings

    llm = build_settings(sm.LLMSettings, "llm", toml=toml)
    settings = build_settings(AskSettings, "ask", toml=toml, flags={"stream": args.stream, "layer": args.layer})
    if args.everywhere and (args.question is not None or args.session is None or args.new or args.slides):
        raise CommandError("use: notsound ask --all QUESTION [--out DIR]", EXIT_USAGE)
    if args.session is None:
        raise CommandError("use: notsound ask SESSION [QUESTION] (or --all QUESTION)", EXIT_USAGE)
    if args.everywhere:
        run_ask_all(args.out, args.session, llm, settings, sm.resolve_api_key(llm))
        return EXIT_OK
    key = require_key(sm.resolve_api_key(llm))
    folder = resolve_session(args.session, args.out)
    if args.slides is not None:
        from slides.store import attach_deck

        attach_deck(folder, args.slides)
    run_ask(folder, llm, settings, key, args.question, new=args.new)
    return EXIT_OK


# -- history, export (library/) ----------------------------------------------


def _add_history(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("history", help="list past lectures, newest first")
    p.add_argument("--out", type=Path, help="folder of session folders (default ./lectures)")
    p.add_argument("--json", action="store_true", help="print JSON (a list of sessions)")
    p.set_defaults(func=_cmd_history)


def _cmd_history(args: argparse.Namespace, toml: dict) -> int:
    from library.folder import DEFAULT_OUT
    from library.history import format_json, format_tsv, history, render_table

    rows = history(args.out)
    if args.json:
        sys.stdout.write(format_json(rows))
    elif not rows:
        print(f"no sessions in {args.out or DEFAULT_OUT} yet: `notsound live` records one", file=sys.stderr)
    elif sys.stdout.isatty():
        from rich.console import Console

        render_table(rows, Console())
    else:
        sys.stdout.write(format_tsv(rows))
    return EXIT_OK


# -- search, index (library/) ------------------------------------------------


def _add_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="find where something was said in past lectures (captions, notes, summaries)")
    p.add_argument("query", metavar="QUERY", help="words to find, English or Chinese (plain text, no operators)")
    p.add_argument("--out", type=Path, help="folder of session folders (default ./lectures)")
    p.add_argument("--session", help="only this session (name or folder)")
    p.add_argument("--since", metavar="YYYY-MM-DD", help="only sessions on or after this date")
    p.add_argument("--limit", type=int, default=20, help="most hits shown (default 20)")
    p.add_argument("--json", action="store_true", help="print JSON (a list of hits)")
    p.set_defaults(func=_cmd_search)


def _cmd_search(args: argparse.Namespace, toml: dict) -> int:
    from library.search_view import search_command

    return search_command(args.query, out=args.out, session=args.session, since=args.since,
                          as_json=args.json, limit=args.limit)


def _add_index(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="bring the search index of the lectures folder up to date")
    p.add_argument("--out", type=Path, help="folder of session folders (default ./lectures)")
    p.add_argument("--rebuild", action="store_true", help="forget the index and read every session again")
    p.set_defaults(func=_cmd_index)


def _cmd_index(args: argparse.Namespace, toml: dict) -> int:
    from library.search_view import index_command

    return index_command(out=args.out, rebuild=args.rebuild)


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a session's subtitles (srt, vtt) or transcript (txt, md)")
    p.add_argument("session", metavar="SESSION", help="session folder, or the name of one under --out")
    p.add_argument("--format", "-f", dest="fmt", required=True, choices=("srt", "vtt", "txt", "md"),
                   help="srt or vtt subtitles, txt or md transcript with [mm:ss] times")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to FILE (default: standard output)")
    p.add_argument("--out", type=Path, help="folder of session folders (default ./lectures)")
    p.add_argument("--bilingual", action="store_true",
                   help="srt/vtt: each caption with its translation under it (see live --translate)")
    p.add_argument("--translated", action="store_true", help="the translation instead of the captions")
    p.add_argument("--lang", help="which translation (default: the latest made)")
    _add_layer_flag(p)
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace, toml: dict) -> int:
    from library.export import export_session
    from library.folder import resolve_session, write_atomic
    from slides.store import slide_labels

    if args.bilingual and (args.translated or args.fmt not in ("srt", "vtt")):
        raise CommandError("--bilingual is for --format srt or vtt (a translated transcript: --translated)",
                           EXIT_USAGE)
    folder = resolve_session(args.session, args.out)
    translations = _export_translations(folder, args) if args.bilingual or args.translated else None
    text = export_session(folder, args.fmt, translations=translations, bilingual=args.bilingual,
                          slide_labels=slide_labels(folder) if args.fmt == "md" else None,
                          layer=args.layer or "best")
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        write_atomic(args.output, text)
    except OSError as exc:
        raise CommandError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(f"notsound: wrote {args.output}", file=sys.stderr)
    return EXIT_OK


# -- open (the lecture room) ----------------------------------------------------


def _add_open(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("open", help="every lecture in the browser: replay, slides, notes, search, ask")
    p.add_argument("--out", type=Path, help="folder of session folders (default ./lectures)")
    p.add_argument("--web", metavar="[HOST:]PORT", default="8080",
                   help="address to serve on (default 8080 on loopback; 0.0.0.0:8080 for the room, with tokens)")
    p.add_argument("--web-token-file", type=Path, metavar="FILE",
                   help="viewer token (read-only) off loopback (default: a random one)")
    p.add_argument("--web-owner-token-file", type=Path, metavar="FILE",
                   help="your own token off loopback: ask and exports (default: a random one)")
    p.add_argument("--no-browser", dest="browser", action="store_false",
                   help="do not open a browser (on loopback one is opened by default)")
    p.set_defaults(func=_cmd_open)


def _cmd_open(args: argparse.Namespace, toml: dict) -> int:
    from library.folder import DEFAULT_OUT

    from .room import open_library

    _check_address(args.web, args.web_token_file, args.web_owner_token_file)
    out = Path(args.out).expanduser() if args.out else DEFAULT_OUT
    room = open_library(args.web, out, token_file=args.web_token_file,
                        owner_token_file=args.web_owner_token_file, ask=_room_ask(toml))
    asyncio.run(_serve_room(room, args.browser))
    return EXIT_OK


async def _serve_room(room, browser: bool) -> None:
    """Serve until Ctrl-C (or SIGTERM); on loopback open the browser at the library."""
    import signal
    import webbrowser

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with room:
        print(room.describe(), file=sys.stderr, flush=True)
        if browser and not room.settings.token:
            await asyncio.to_thread(webbrowser.open, room.url("/library"))
        print("serving until Ctrl-C", file=sys.stderr, flush=True)
        await stop.wait()


def _export_translations(folder: Path, args: argparse.Namespace) -> dict[int, str]:
    from library.folder import TRANSLATIONS, translation_texts

    texts = translation_texts(folder, args.lang)
    if not texts:
        which = f" into {args.lang}" if args.lang else ""
        raise CommandError(f"no translations{which} in {folder / TRANSLATIONS}: caption the session with "
                           "`notsound live --translate LANG` first", EXIT_USAGE)
    return texts


# -- wiring ------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Takes a subcommand's options before, between and after its positionals
    (``ask SESSION --out DIR "question"``), as people type them.

    A parser of subcommands (``notsound``, ``notsound keys``) parses as usual;
    the subcommand it picks parses intermixed (all options first, then the
    positionals), which argparse supports only for parsers without subcommands.
    """

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._intermixing or any(action.nargs in (argparse.PARSER, argparse.REMAINDER)
                                    for action in self._actions if not action.option_strings):
            return super().parse_known_args(args, namespace)
        self._intermixing = True  # parse_known_intermixed_args calls back here twice
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


#: subcommand builders in the order ``notsound --help`` lists them
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_live, _add_polish, _add_serve, _add_devices, _add_models, _add_keys,
    _add_notes, _add_summary, _add_ask, _add_history, _add_export, _add_search, _add_index, _add_open,
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="notsound", description="Live lecture captions, notes and summaries."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    _setup_logging(args.verbose, args.quiet, logging.INFO if args.command == "serve" else logging.WARNING)
    try:
        return args.func(args, load_toml())
    except NotSoundError as exc:  # failures a user can act on: one line, no traceback
        print(f"notsound: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"notsound: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("notsound: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
