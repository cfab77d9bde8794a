"""``meit-corpus``: build, validate and inspect a corpus. Handlers only parse and forward."""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import NoReturn

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from pipeline.build import CorpusInvalid, build_corpus
from pipeline.config import BuildConfig
from pipeline.config_file import config_error_line, load_config
from pipeline.errors import InputError
from pipeline.finalise import validate_corpus
from pipeline.shards import WriteFailed

DEMO_INPUTS = Path("demo-data")


DESCRIPTION = """\
Turn the PhysioNet ECG datasets PTB-XL and MIMIC-IV-ECG into the instruction-tuning corpus of
MEIT: 12-lead ECGs paired with their reports and varied instructions, split by patient, written
as Parquet shards that datasets.load_dataset(<folder>) reads."""

EPILOG = """\
examples:
  meit-corpus build                                the SYNTHETIC demo, into ./corpus
  meit-corpus download ptbxl --to data/ptb-xl      PTB-XL from PhysioNet, checked
  meit-corpus build --ptbxl data/ptb-xl --out corpus
  meit-corpus build --config build.yaml            settings from a YAML file
  meit-corpus validate corpus
  meit-corpus inspect corpus --id ptbxl/6001       one record on ECG paper
  meit-corpus report corpus                        statistics as HTML
  meit-corpus push corpus --repo NAME --dry-run    what would go to the Hub

'meit-corpus COMMAND --help' describes a command. A mistake in the command line, the config or
the inputs is one line and exit code 2, before any work."""


class _Parser(argparse.ArgumentParser):
    """argparse without abbreviated options (``--ptbx`` is not taken for ``--ptbxl``) that says a
    usage mistake in one line and exit code 2; its subcommand parsers are of this class too."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _folder(text: str) -> Path:
    """A positional folder argument that must exist."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{text}: {'not a folder' if path.exists() else 'no such folder'}"
        )
    return path


def _workers(text: str) -> int:
    """``--workers``: a whole number >= 0 (what 0 means, each option's help says)."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return n


def _version() -> str:
    """The installed package's version (``--version``)."""
    try:
        return version("meit-corpus")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="meit-corpus",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    b = sub.add_parser(
        "build",
        help="build or update a corpus (the synthetic demo when no input is given)",
        description="Build a corpus from PTB-XL and/or MIMIC-IV-ECG folders, or bring an "
        "existing one up to date: only shards whose records changed are rewritten, and a killed "
        "build resumes. With no input at all, writes a SYNTHETIC demo dataset to ./demo-data "
        "and builds that. Options given here override the config file's settings.",
    )
    b.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="YAML settings (see README); relative paths in it are relative to the file",
    )
    b.add_argument(
        "--ptbxl",
        metavar="FOLDER",
        help="PTB-XL 1.0.3 folder (the one holding ptbxl_database.csv), or an fsspec URL",
    )
    b.add_argument(
        "--mimic",
        metavar="FOLDER",
        help="MIMIC-IV-ECG 1.0 folder (the one holding record_list.csv), or an fsspec URL",
    )
    b.add_argument(
        "--out", type=Path, metavar="FOLDER", help="where the corpus goes (default: ./corpus)"
    )
    b.add_argument(
        "--workers", type=_workers, metavar="N", help="worker processes (default 0 = all cores)"
    )
    b.add_argument(
        "--replace",
        action="store_true",
        default=None,
        help="remove the shards of sources the corpus holds and this build has no input for "
        "(without it such a build is refused)",
    )
    v = sub.add_parser(
        "validate",
        help="check a corpus against its manifest; exit 1 on any mismatch",
        description="Recompute what a corpus's manifest.json claims (file checksums, schema, "
        "lead order, counts, splits, settings) and list every mismatch; exit 1 when there is one.",
    )
    v.add_argument("corpus", type=_folder, metavar="CORPUS", help="a folder written by build")
    i = sub.add_parser(
        "inspect",
        help="print stats; draw one row on ECG paper (PNG)",
        description="Print a corpus's statistics and draw one row as a 12-lead ECG on paper: "
        "3x4 leads and a lead II rhythm strip at 25 mm/s and 10 mm per unit, with a calibration "
        "pulse. --raw draws the WFDB record as read (mV) above the conditioned row.",
    )
    i.add_argument("corpus", type=Path, metavar="CORPUS", help="a folder written by build")
    i.add_argument("--id", help="row id, e.g. ptbxl/6001 (default: the first row)")
    i.add_argument(
        "--out", "--png", dest="out", type=Path, help="where to write the PNG (default ./<id>.png)"
    )
    i.add_argument(
        "--raw", action="store_true", help="also draw the record as stored in WFDB (mV), above"
    )
    r = sub.add_parser(
        "report",
        help="write a statistics report (HTML + PNGs) of a corpus",
        description="Write <corpus>/report/index.html (figures embedded) and one PNG per figure: "
        "rows per split, rejections by reason, report lengths, statements, templates and tasks, "
        "age and sex, lead amplitudes, translation coverage, refresh history.",
    )
    r.add_argument("corpus", type=Path, metavar="CORPUS", help="a folder written by build")
    r.add_argument("--out", type=Path, help="report folder (default <corpus>/report)")
    c = sub.add_parser(
        "verify-inputs",
        help="check a PhysioNet download against its SHA256SUMS.txt",
        description="Hash every file the dataset's SHA256SUMS.txt lists and report missing and "
        "mismatched files (exit 1); files it does not list are noted.",
    )
    c.add_argument("folder", type=_folder, metavar="FOLDER", help="the dataset folder")
    c.add_argument(
        "--workers", type=_workers, metavar="N", help="hashing processes (default 0 = all cores)"
    )
    _download_parser(sub)
    _push_parser(sub)
    return p


def _push_parser(sub) -> None:
    u = sub.add_parser(
        "push",
        help="publish a corpus as a Hugging Face dataset repository",
        description="Validate a corpus, then upload its data/, meta/, README.md (the card), "
        "manifest.json and report/ (never _build/) to a Hub dataset repository, created when "
        "missing; remote files under data/, meta/ and report/ that the corpus does not have are "
        "deleted. Log in first (hf auth login, or HF_TOKEN). Exit 2 for an invalid corpus or "
        "repository name, 1 when the Hub refuses.",
    )
    u.add_argument("corpus", type=_folder, metavar="CORPUS", help="a folder written by build")
    u.add_argument("--repo", required=True, metavar="NAME", help="<user or organisation>/<name>")
    u.add_argument("--private", action="store_true", help="create the repository as private")
    u.add_argument(
        "--dry-run", action="store_true", help="print the files and total size; send nothing"
    )


def _download_parser(sub) -> None:
    from pipeline.physionet import DATASETS

    d = sub.add_parser(
        "download",
        help="download PTB-XL or MIMIC-IV-ECG, verified against its SHA256SUMS.txt",
        description="Fetch a PhysioNet dataset ("
        + ", ".join(f"{d.name}: {d.url}" for d in DATASETS.values())
        + ") or a mirror of it: SHA256SUMS.txt first, then every listed file that is missing "
        "or has other bytes, in parallel; a broken transfer resumes (HTTP range requests) when "
        "run again. Exit 2 when the listing cannot be had, 1 when a listed file failed.",
    )
    d.add_argument("dataset", choices=sorted(DATASETS), help="which dataset")
    d.add_argument("--to", type=Path, required=True, metavar="FOLDER", help="where it goes")
    d.add_argument(
        "--from",
        dest="source",
        metavar="URL",
        help="a mirror holding the same tree: any fsspec URL (s3://, gs://, https://) or folder",
    )
    d.add_argument(
        "--workers", type=_workers, metavar="N", help="parallel transfers (default 0 = 8)"
    )
    d.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be fetched and its size; write nothing",
    )


def _build(args: argparse.Namespace, console: Console) -> int:
    from pipeline.console import build_progress, summary_table

    try:
        cfg: BuildConfig = load_config(
            args.config,
            ptbxl=args.ptbxl,
            mimic=args.mimic,
            out=args.out,
            workers=args.workers,
            replace=args.replace,
        )
    except (ValidationError, ValueError, OSError) as exc:
        console.print(
            f"[red]config error:[/red] {escape(config_error_line(exc))}",
            highlight=False,
            soft_wrap=True,
        )
        return 2
    if not cfg.inputs():
        from pipeline.demo import with_demo_inputs
        from pipeline.progress import check_out

        check_out(cfg.out, {}, ["ptbxl", "mimic"])  # before the demo is written: one line, exit 2
        console.print(
            f"No input given: building the SYNTHETIC demo (inputs in ./{DEMO_INPUTS}).",
            soft_wrap=True,
        )
        cfg = with_demo_inputs(cfg, DEMO_INPUTS)
    try:
        with build_progress(console) as (on_plan, on_done):
            manifest = build_corpus(cfg, on_done=on_done, on_plan=on_plan)
    except InputError as exc:
        console.print(
            f"[red]input error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        return 2
    except CorpusInvalid as exc:
        console.print(
            f"[red]corpus error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        return 1
    except WriteFailed as exc:  # a full disk, a folder gone read-only: the inputs are fine
        console.print(
            f"[red]write error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        return 1
    console.print(summary_table(manifest))
    console.print(f"corpus written to {cfg.out}", highlight=False, soft_wrap=True)
    return 0


def _validate(args: argparse.Namespace, console: Console) -> int:
    problems = validate_corpus(args.corpus)
    for p in problems:
        console.print(f"[red]✗[/red] {escape(p)}", highlight=False, soft_wrap=True)
    if not problems:
        console.print(
            f"[green]✓[/green] {escape(str(args.corpus))} is valid", highlight=False, soft_wrap=True
        )
    return 1 if problems else 0


def _inspect(args: argparse.Namespace, console: Console) -> int:
    from pipeline.inspect import InspectError, inspect_corpus

    try:
        found = inspect_corpus(args.corpus, args.id, args.out, args.raw)
    except InspectError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    console.print_json(json.dumps(found.stats))
    console.print(f"{found.row_id}: {found.png}", highlight=False, soft_wrap=True)
    return 0


def _report(args: argparse.Namespace, console: Console) -> int:
    from pipeline.report import ReportError, write_report

    try:
        index = write_report(args.corpus, args.out)
    except ReportError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    console.print(f"report written to {index}", highlight=False, soft_wrap=True)
    return 0


def _verify_inputs(args: argparse.Namespace, console: Console) -> int:
    from pipeline.checksums import verify_inputs

    try:
        found = verify_inputs(args.folder, args.workers or None)
    except InputError as exc:
        console.print(
            f"[red]input error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        return 2
    for rel in found.missing:
        console.print(f"[red]✗[/red] missing: {escape(rel)}", highlight=False, soft_wrap=True)
    for rel, want, got in found.mismatched:
        line = f"mismatch: {rel} sha256 {got}, SHA256SUMS.txt lists {want}"
        console.print(f"[red]✗[/red] {escape(line)}", highlight=False, soft_wrap=True)
    for rel in found.unlisted:
        console.print(f"note: not listed: {escape(rel)}", highlight=False, soft_wrap=True)
    bad = len(found.missing) + len(found.mismatched)
    verdict = "[green]✓[/green]" if found.ok else "[red]✗[/red]"
    console.print(
        f"{verdict} {found.checked} files checked, {bad} problem(s), {len(found.unlisted)} not listed",
        highlight=False,
        soft_wrap=True,
    )
    return 0 if found.ok else 1


def _download(args: argparse.Namespace, console: Console) -> int:
    from pipeline import download as dl
    from pipeline.console import check_progress, download_progress, print_lines

    workers = args.workers or dl.WORKERS
    source = dl.source_root(args.dataset, args.source)
    try:
        dl.check_dest(args.to)
        raw, listing = dl.read_listing(source)
    except (dl.SourceError, InputError) as exc:  # no listing, or --to is a file
        _say(console, "download error", str(exc))
        return 2
    with check_progress(console, listing.height) as on_checked:
        plan = dl.plan_download(source, args.to, listing, workers, args.dry_run, on_checked)
    if args.dry_run:
        print_lines(console, dl.plan_lines(plan))
        return 0
    dl.write_listing(args.to, raw)
    with download_progress(console, plan) as (on_bytes, on_size, on_file):
        outcomes = dl.download(plan, workers, on_bytes=on_bytes, on_size=on_size, on_file=on_file)
    lines, ok = dl.result_lines(plan, outcomes)
    print_lines(console, lines)
    return 0 if ok else 1


def _push(args: argparse.Namespace, console: Console) -> int:
    from pipeline import publish

    try:
        plan = publish.plan_push(args.corpus, args.repo, args.private)
    except publish.PushError as exc:
        _say(console, "push error", str(exc))
        return 2
    lines = publish.plan_lines(plan)
    if args.dry_run:
        for line in lines:
            console.print(escape(line), highlight=False, soft_wrap=True)
        return 0
    try:
        url = publish.push(plan)
    except (OSError, ValueError) as exc:  # the Hub's HTTP errors, offline mode, no token
        from pipeline.download import problem_line

        _say(console, "push error", problem_line(exc))
        return 1
    console.print(f"{lines[-1].split(';')[0]} pushed to {url}", highlight=False, soft_wrap=True)
    return 0


USER_OS_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)
"""OS errors a command line causes (a path that is not there, a file where a folder must go, not
readable): exit 2. Others (a full disk, an I/O error) are the machine's: exit 1."""


def _say(console: Console, label: str, message: str) -> None:
    """One error line, paths printed as they are (no console markup, no wrapping)."""
    console.print(f"[red]{label}:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def _run(handler, args: argparse.Namespace, console: Console) -> int:
    """A command's handler; an input, settings or file mistake that reaches here is one line and
    exit code 2 (never a traceback), another OS error one line and exit 1, Ctrl-C one line (130)."""
    try:
        return handler(args, console)
    except (InputError, ValidationError) as exc:
        _say(console, "input error", config_error_line(exc))
        return 2
    except OSError as exc:
        _say(console, "error", config_error_line(exc))
        return 2 if isinstance(exc, USER_OS_ERRORS) else 1
    except KeyboardInterrupt:
        _say(console, "interrupted", "run the same command again: it resumes where it stopped")
        return 130


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``meit-corpus`` command."""
    args = _parser().parse_args(argv)
    console = Console(stderr=False)
    handler = {
        "build": _build,
        "validate": _validate,
        "inspect": _inspect,
        "report": _report,
        "verify-inputs": _verify_inputs,
        "download": _download,
        "push": _push,
    }[args.command]
    return _run(handler, args, console)


if __name__ == "__main__":
    sys.exit(main())
