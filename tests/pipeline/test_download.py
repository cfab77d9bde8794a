"""``meit-corpus download`` against a loopback HTTP server serving the real PTB-XL sample.

The server (http.server on 127.0.0.1, with byte ranges added: the standard library's handler has
none) serves a copy of the sample under PhysioNet's ``<slug>/<version>/`` shape with a
``SHA256SUMS.txt`` written here; the sample's record files are byte-identical to PhysioNet's, so
these digests are the official ones. It logs every request (method, path, Range header, body bytes
sent) and can drop the connection in the middle of a file once.
"""

from __future__ import annotations

import functools
import hashlib
import re
import shutil
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.checksums import SUMS_FILE
from pipeline.cli import main
from pipeline.download import download, part_path, plan_download, read_listing
from pipeline.shards import human_bytes

ROOT = "ptb-xl/1.0.3"
DAT = "records500/06000/06001_hr.dat"
CHUNK = 16 << 10  # small ranged reads, so that one 120 kB record file takes several requests
DROP_AT = 3 * CHUNK


@dataclass
class ServerLog:
    """What the server saw and what it should break."""

    requests: list[tuple[str, str, str | None, int]] = field(default_factory=list)
    drop: dict[str, int] = field(default_factory=dict)  # path -> drop the first GET past this byte

    def gets(self, path: str) -> list[tuple[str | None, int]]:
        """(Range header, body bytes sent) of every GET of ``path`` (relative to the root)."""
        want = f"/{ROOT}/{path}"
        return [(rng, n) for m, p, rng, n in self.requests if m == "GET" and p == want]

    def data_gets(self) -> list[str]:
        return [p for m, p, _, _ in self.requests if m == "GET" and not p.endswith(SUMS_FILE)]


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=a-b`` / ``bytes=a-`` (206) and a scripted drop."""

    log: ServerLog

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _file(self) -> Path | None:
        path = Path(self.translate_path(self.path))
        if path.is_file():
            return path
        self.send_error(404)
        self.log.requests.append((self.command, self.path, None, 0))
        return None

    def do_HEAD(self) -> None:
        if path := self._file():
            self.send_response(200)
            self.send_header("Content-Length", str(path.stat().st_size))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self.log.requests.append(("HEAD", self.path, None, 0))

    def do_GET(self) -> None:
        if not (path := self._file()):
            return
        data = path.read_bytes()
        rng = self.headers.get("Range")
        start, end = 0, len(data) - 1
        if rng:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
            start, end = int(m[1]), min(int(m[2] or len(data) - 1), len(data) - 1)
        body = data[start : end + 1]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        rel = self.path.removeprefix(f"/{ROOT}/")
        if rel in self.log.drop and end >= self.log.drop[rel]:
            del self.log.drop[rel]  # once: half the block, then the connection goes
            body = body[: len(body) // 2]
            self.close_connection = True
            self.log.requests.append(("DROP", self.path, rng, len(body)))
        else:
            self.log.requests.append(("GET", self.path, rng, len(body)))
        self.wfile.write(body)


def write_sums(root: Path) -> dict[str, str]:
    """``SHA256SUMS.txt`` of every file under ``root`` (sha256sum's format); path -> digest."""
    sums = {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
    (root / SUMS_FILE).write_text("".join(f"{h}  {p}\n" for p, h in sums.items()))
    return sums


@pytest.fixture(scope="module")
def site(ptbxl_sample: Path, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """(the dataset root as served, its listing): a copy of the real sample."""
    www = tmp_path_factory.mktemp("www")
    root = www / ROOT
    shutil.copytree(ptbxl_sample, root)
    for p in [root, *root.rglob("*")]:  # shared/ may be read-only; this copy is the test's
        p.chmod(p.stat().st_mode | 0o200)
    return www, write_sums(root)


@pytest.fixture
def server(site) -> tuple[str, ServerLog]:
    """(the dataset's URL, the server's log), a fresh server per test."""
    www, _ = site
    log = ServerLog()
    handler = type("Handler", (RangeHandler,), {"log": log})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(www)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{ROOT}/", log
    httpd.shutdown()
    httpd.server_close()


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def fetch(url: str, dest: Path, **kwargs):
    """Plan and run a download of ``url`` into ``dest`` (the library path, not the CLI)."""
    raw, listing = read_listing(url)
    plan = plan_download(url, dest, listing, workers=4)
    return plan, download(plan, workers=4, chunk=CHUNK, backoff_s=0, **kwargs)


def test_a_download_equals_the_source_byte_for_byte_and_a_rerun_fetches_nothing(
    site, server, tmp_path, capsys
):
    www, sums = site
    url, log = server
    dest = tmp_path / "ptbxl"
    assert main(["download", "ptbxl", "--to", str(dest), "--from", url, "--workers", "3"]) == 0
    assert tree(dest) == tree(www / ROOT)
    out = capsys.readouterr().out
    assert f"✓ {len(sums)} fetched" in out and "0 failed" in out
    log.requests.clear()
    assert main(["download", "ptbxl", "--to", str(dest), "--from", url]) == 0
    assert log.data_gets() == []  # every file hashed locally, none asked for
    assert f"0 fetched (0 B), {len(sums)} already present" in capsys.readouterr().out


def test_a_folder_mirror_is_a_source_too(site, tmp_path):
    www, _ = site
    assert main(["download", "ptbxl", "--to", str(tmp_path / "d"), "--from", str(www / ROOT)]) == 0
    assert tree(tmp_path / "d") == tree(www / ROOT)


@pytest.mark.parametrize("retries", [0, 1], ids=["next-run", "same-run"])
def test_an_interrupted_file_resumes_with_a_range_request(site, server, tmp_path, retries):
    www, _ = site
    url, log = server
    dest, size = tmp_path / "ptbxl", (www / ROOT / DAT).stat().st_size
    log.drop[DAT] = DROP_AT
    plan, outcomes = fetch(url, dest, retries=retries)
    if retries == 0:  # the run ends with the file half done; the next run resumes it
        failed = [o for o in outcomes if not o.ok]
        assert [o.path for o in failed] == [DAT] and f"{DROP_AT} bytes kept" in failed[0].problem
        assert part_path(dest / DAT).stat().st_size == DROP_AT and not (dest / DAT).exists()
        first = sum(n for _, n in log.gets(DAT))
        log.requests.clear()
        plan, outcomes = fetch(url, dest)
        assert [(t.path, t.reason, t.have) for t in plan.tasks] == [(DAT, "partial", DROP_AT)]
        assert first < size  # the broken run did not get the whole file either
    gets = log.gets(DAT)  # the successful GETs (of the resuming run, or of the whole run)
    resumed = [rng for rng, _ in gets if rng.startswith(f"bytes={DROP_AT}-")]
    assert resumed, gets  # asked from the byte the .part ended at
    served = sum(n for _, n in gets)
    assert served == (size - DROP_AT if retries == 0 else size)  # no byte fetched twice
    assert all(o.ok for o in outcomes)
    if retries == 0:
        assert [(o.path, o.resumed_from) for o in outcomes] == [(DAT, DROP_AT)]
    assert (dest / DAT).read_bytes() == (www / ROOT / DAT).read_bytes()
    assert not part_path(dest / DAT).exists()


def test_a_corrupted_file_is_fetched_again_and_unlisted_files_are_left_alone(
    site, server, tmp_path
):
    www, _ = site
    url, log = server
    dest = tmp_path / "ptbxl"
    fetch(url, dest)
    data = bytearray((dest / DAT).read_bytes())
    data[1000] ^= 0xFF
    (dest / DAT).write_bytes(bytes(data))
    (dest / "notes.txt").write_text("mine")
    log.requests.clear()
    plan, outcomes = fetch(url, dest)
    assert [(t.path, t.reason) for t in plan.tasks] == [(DAT, "mismatch")]
    assert [o.ok for o in outcomes] == [True]
    assert log.data_gets() == [f"/{ROOT}/{DAT}"] * len(log.gets(DAT))
    assert (dest / DAT).read_bytes() == (www / ROOT / DAT).read_bytes()
    assert (dest / "notes.txt").read_text() == "mine"


def test_a_bad_part_restarts_from_zero_once_then_a_wrong_file_is_reported(
    site, server, tmp_path, capsys
):
    www, sums = site
    url, log = server
    dest, size = tmp_path / "ptbxl", (www / ROOT / DAT).stat().st_size
    part = part_path(dest / DAT)
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 50_000)  # not a prefix of the file: the resumed bytes do not verify
    plan, outcomes = fetch(url, dest)
    assert (
        all(o.ok for o in outcomes) and (dest / DAT).read_bytes() == (www / ROOT / DAT).read_bytes()
    )
    assert not any(o.resumed_from for o in outcomes)  # the 50,000 bytes saved nothing
    gets = log.gets(DAT)
    assert gets[0][0].startswith("bytes=50000-")  # resumed first, then once more from zero
    again = [i for i, (rng, _) in enumerate(gets) if rng.startswith("bytes=0-")]
    assert again and sum(n for _, n in gets[again[0] :]) == size
    # the source itself differs from its listing: fetched twice, then reported; nothing left
    listing = (www / ROOT / SUMS_FILE).read_text()
    wrong = "0" * 64
    (www / ROOT / SUMS_FILE).write_text(listing.replace(sums[DAT], wrong))
    try:
        log.requests.clear()
        assert main(["download", "ptbxl", "--to", str(tmp_path / "d2"), "--from", url]) == 1
    finally:
        (www / ROOT / SUMS_FILE).write_text(listing)
    assert sum(n for _, n in log.gets(DAT)) == 2 * size
    out = capsys.readouterr().out
    assert f"✗ {DAT}: sha256 {sums[DAT]}, {SUMS_FILE} lists {wrong}" in out
    assert not (tmp_path / "d2" / DAT).exists() and not part_path(tmp_path / "d2" / DAT).exists()


def test_a_missing_source_is_one_line_exit_2_and_a_missing_file_exit_1(
    site, server, tmp_path, capsys
):
    www, _ = site
    url, log = server
    dest = tmp_path / "d"
    assert main(["download", "ptbxl", "--to", str(dest), "--from", url + "nope/"]) == 2
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "nope/SHA256SUMS.txt: not found" in out
    port = url.split(":")[2].split("/")[0]
    closed = url.replace(port, "9")  # nothing listens on the discard port
    assert main(["download", "ptbxl", "--to", str(dest), "--from", closed]) == 2
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "cannot be read" in out
    assert not dest.exists()
    gone = www / ROOT / "records500/06000/06002_hr.hea"
    saved = gone.read_bytes()
    gone.unlink()
    try:
        assert main(["download", "ptbxl", "--to", str(dest), "--from", url]) == 1
    finally:
        gone.write_bytes(saved)
    out = capsys.readouterr().out
    assert "✗ records500/06000/06002_hr.hea: not found at the source" in out


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:  # a client that stops reading early
        pass


def test_a_mirror_without_byte_ranges_is_streamed_from_zero(site, tmp_path):
    """``python -m http.server`` answers every GET with the whole file (200): fsspec's ranged read
    past the first block fails, and the file is streamed whole instead."""
    www, _ = site
    handler = type("Plain", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    httpd = QuietServer(("127.0.0.1", 0), functools.partial(handler, directory=str(www)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        plan, outcomes = fetch(f"http://127.0.0.1:{httpd.server_address[1]}/{ROOT}/", tmp_path)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert all(o.ok for o in outcomes), [o for o in outcomes if not o.ok]
    served = tree(www / ROOT)
    del served[SUMS_FILE]  # the library call fetches the listed files; the CLI adds the listing
    assert tree(tmp_path) == served


def test_dry_run_lists_files_and_sizes_and_writes_nothing(site, server, tmp_path, capsys):
    www, sums = site
    url, log = server
    dest = tmp_path / "d"
    assert main(["download", "ptbxl", "--to", str(dest), "--from", url, "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {line.split()[-1]: line for line in lines[:-1]}
    assert set(listed) == set(sums) - {SUMS_FILE}
    assert "117.2 KiB  missing" in listed[DAT]  # 120,000 bytes: HEAD's Content-Length
    total = sum((www / ROOT / p).stat().st_size for p in listed)
    assert f"would fetch {len(listed)} of {len(listed)} listed files" in lines[-1]
    assert f"files, {human_bytes(total)}, from {url}" in lines[-1]
    assert not dest.exists() and log.data_gets() == []
