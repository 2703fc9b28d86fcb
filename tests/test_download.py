"""download_data/: miniature archives in the real corpus layouts, served by a real HTTP server on 127.0.0.1."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import soundfile

from helpers import REPO, TINY_MODEL, run_cli

AISHELL = {  # utterance id -> (split, speaker, transcript as AISHELL writes it: words separated by spaces)
    "BAC009S0002W0122": ("train", "S0002", "而 对 楼市 成交 抑制 作用 最 大 的 限 购"),
    "BAC009S0002W0123": ("train", "S0002", "也 成为 地方 政府 的 眼中 钉"),
    "BAC009S0002W0124": ("train", "S0002", "自 六月 底 呼和浩特 市 率先 宣布 取消 限 购 后"),
    "BAC009S0002W0125": ("train", "S0002", "各地 政府 便 纷纷 跟进"),
    "BAC009S0724W0121": ("dev", "S0724", "但 因为 聚焦 于 西安 的 楼市"),
    "BAC009S0724W0122": ("dev", "S0724", "市场 对 楼市 的 预期"),
    "BAC009S0764W0121": ("test", "S0764", "甚至 出现 交易 几乎 停滞 的 情况"),
    "BAC009S0764W0122": ("test", "S0764", "一 二 线 城市 虽然 也 处于 调整 中"),
}
UNTRANSCRIBED = {"BAC009S0002W0999": ("train", "S0002", None)}  # the real AISHELL has a few such files
THCHS = {  # name -> (split, first line of the .trn: words separated by spaces)
    "A11_0": ("train", "绿 是 阳春 烟 景 大块 文章 的 底色"),
    "A11_1": ("train", "他 仅 凭 腰部 的 力量 在 泳道 上下 翻腾"),
    "A2_0": ("dev", "近 几年 不但 我 用 书 给 女儿 压岁"),
    "D4_750": ("test", "东北 军 的 一些 爱国 将士 马 占 山"),
}
ST_CMDS = {"20170001P00001A0001": "我们都今天", "20170001P00001A0002": "你好吗", "20170001P00002I0003": "明天见"}
NOISES = ["noise-free-sound-0001.wav", "noise-free-sound-0002.wav"]


def _wav_bytes(reference_audio, index: int, seconds: float = 1.2) -> bytes:
    samples, sr = reference_audio
    start = (index * 4000) % (len(samples) - int(seconds * sr))
    buffer = io.BytesIO()
    soundfile.write(buffer, samples[start:start + int(seconds * sr)], sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _add_symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    tar.addfile(info)


def _targz(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            _add_bytes(tar, name, data)
        for name, target in (links or {}).items():
            _add_symlink(tar, name, target)
    return path


def build_archives(folder: Path, reference_audio) -> dict[str, Path]:
    """data_aishell.tgz, data_thchs30.tgz, ST-CMDS-20170001_1-OS.tar.gz and rirs_noises.zip in miniature."""
    folder.mkdir(parents=True, exist_ok=True)
    n = iter(range(1000))
    speakers: dict[str, dict[str, bytes]] = {}
    for utt, (split, spk, _) in {**AISHELL, **UNTRANSCRIBED}.items():
        speakers.setdefault(spk, {})[f"{split}/{spk}/{utt}.wav"] = _wav_bytes(reference_audio, next(n))
    with tarfile.open(folder / "data_aishell.tgz", "w:gz") as tar:
        for spk, members in speakers.items():  # the real layout: wav/<speaker>.tar.gz holding <split>/<speaker>/*.wav
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w:gz") as speaker_tar:
                for name, data in members.items():
                    _add_bytes(speaker_tar, name, data)
            _add_bytes(tar, f"data_aishell/wav/{spk}.tar.gz", inner.getvalue())
        transcript = "".join(f"{utt} {text}\n" for utt, (_, _, text) in AISHELL.items())
        _add_bytes(tar, "data_aishell/transcript/aishell_transcript_v0.8.txt", transcript.encode())

    members, links = {}, {}
    for name, (split, text) in THCHS.items():
        members[f"data_thchs30/data/{name}.wav"] = _wav_bytes(reference_audio, next(n))
        members[f"data_thchs30/data/{name}.wav.trn"] = f"{text}\nlv4 shi4 yang2\nl v4 sh ix4\n".encode()
        links[f"data_thchs30/{split}/{name}.wav"] = f"../data/{name}.wav"
        links[f"data_thchs30/{split}/{name}.wav.trn"] = f"../data/{name}.wav.trn"
    members["data_thchs30/data/C8_999.wav"] = _wav_bytes(reference_audio, next(n))  # no .trn
    _targz(folder / "data_thchs30.tgz", members, links)

    members = {}
    for name, text in ST_CMDS.items():
        members[f"ST-CMDS-20170001_1-OS/{name}.wav"] = _wav_bytes(reference_audio, next(n))
        members[f"ST-CMDS-20170001_1-OS/{name}.txt"] = text.encode()
        members[f"ST-CMDS-20170001_1-OS/{name}.metadata"] = b"SES\t0001\n"
    _targz(folder / "ST-CMDS-20170001_1-OS.tar.gz", members)

    with zipfile.ZipFile(folder / "rirs_noises.zip", "w") as zf:
        for name in NOISES:
            zf.writestr(f"RIRS_NOISES/pointsource_noises/{name}", _wav_bytes(reference_audio, next(n), 3.0))
        zf.writestr("RIRS_NOISES/pointsource_noises/noise_list", "noise-free-sound-0001 ...\n")
        zf.writestr("RIRS_NOISES/simulated_rirs/smallroom/Room001/Room001-00001.wav", _wav_bytes(reference_audio, 1))
        zf.writestr("RIRS_NOISES/real_rirs_isotropic_noises/RVB2014_type1_noise_largeroom1_1.wav",
                    _wav_bytes(reference_audio, 2))
    return {p.name: p for p in folder.iterdir()}


class ArchiveServer:
    """Serves a folder with HTTP Range support; logs every request; can drop a connection midway once."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.requests: list[dict] = []
        self.drop_after: dict[str, int] = {}  # file name -> bytes to send before closing (once)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                path = server.folder / name
                entry = {"name": name, "range": self.headers.get("Range"), "sent": 0}
                server.requests.append(entry)
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = int(entry["range"][6:-1]) if entry["range"] else 0
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                cut = server.drop_after.pop(name, None)
                if cut is not None:
                    body = body[:cut]
                self.wfile.write(body)
                entry["sent"] = len(body)
                if cut is not None:
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/resources"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def for_file(self, name: str) -> list[dict]:
        return [r for r in self.requests if r["name"] == name]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def archives(tmp_path_factory, reference_audio) -> dict[str, Path]:
    return build_archives(tmp_path_factory.mktemp("archives"), reference_audio)


@pytest.fixture
def server(archives):
    served = ArchiveServer(next(iter(archives.values())).parent)
    yield served
    served.close()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def make_clone(root: Path) -> Path:
    """A fresh clone's layout: download_data/ next to ppasr/ (a link to ours) and create_data.py."""
    (root / "download_data").mkdir(parents=True)
    for script in (REPO / "download_data").glob("*.py"):
        shutil.copy(script, root / "download_data" / script.name)
    (root / "ppasr").symlink_to(REPO / "ppasr")
    return root


def download(clone: Path, script: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``cd download_data && python <script> ...`` with nothing on PYTHONPATH (the script finds ppasr)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, script, *args], cwd=clone / "download_data", capture_output=True,
                          text=True, timeout=300, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def corpus_args(server: ArchiveServer, archives: dict[str, Path], name: str) -> list[str]:
    return [f"--url={server.url}/{name}", f"--md5={md5(archives[name])}"]


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_four_scripts_then_create_data_and_one_epoch(tmp_path, server, archives):
    clone = make_clone(tmp_path / "clone")
    proc = download(clone, "aishell.py", *corpus_args(server, archives, "data_aishell.tgz"))
    assert "skipped 1 without a transcript" in proc.stdout
    download(clone, "thchs_30.py", *corpus_args(server, archives, "data_thchs30.tgz"))
    download(clone, "free_st_chinese_mandarin_corpus.py", *corpus_args(server, archives, "ST-CMDS-20170001_1-OS.tar.gz"))
    download(clone, "noise.py", *corpus_args(server, archives, "rirs_noises.zip"))

    annotation = clone / "dataset" / "annotation"
    expected_train = {f"dataset/audio/data_aishell/wav/{split}/{spk}/{utt}.wav\t{''.join(text.split())}"
                      for utt, (split, spk, text) in AISHELL.items() if split != "test"}
    assert set(lines(annotation / "aishell.txt")) == expected_train
    assert "dataset/audio/data_aishell/wav/train/S0002/BAC009S0002W0122.wav\t而对楼市成交抑制作用最大的限购" in expected_train
    assert set(lines(annotation / "thchs_30.txt")) == {
        f"dataset/audio/data_thchs30/data/{name}.wav\t{''.join(text.split())}"
        for name, (split, text) in THCHS.items() if split != "test"}
    assert set(lines(annotation / "free_st_chinese_mandarin_corpus.txt")) == {
        f"dataset/audio/ST-CMDS-20170001_1-OS/{name}.wav\t{text}" for name, text in ST_CMDS.items()}
    assert set(lines(annotation / "test.txt")) == {
        "dataset/audio/data_aishell/wav/test/S0764/BAC009S0764W0121.wav\t甚至出现交易几乎停滞的情况",
        "dataset/audio/data_aishell/wav/test/S0764/BAC009S0764W0122.wav\t一二线城市虽然也处于调整中",
        "dataset/audio/data_thchs30/data/D4_750.wav\t东北军的一些爱国将士马占山"}
    audio = clone / "dataset" / "audio"
    assert not list(audio.glob("*.tgz")) and not list(audio.glob("*.tar.gz")) and not list(audio.glob("*.zip")), \
        "archives the scripts downloaded are removed once unpacked"
    assert not list((audio / "data_aishell" / "wav").glob("*.tar.gz")), "speaker archives are unpacked and removed"
    noise_files = sorted(p.name for p in (audio / "noise").rglob("*") if p.is_file())
    assert noise_files == NOISES, "only the point-source noises are unpacked"

    proc = run_cli("create_data.py", "--num_workers=1", "--count_threshold=1", "--feature_method=fbank", cwd=clone)
    test_manifest = [json.loads(x) for x in lines(clone / "dataset" / "manifest.test")]
    assert sorted(x["text"] for x in test_manifest) == sorted(["甚至出现交易几乎停滞的情况", "一二线城市虽然也处于调整中",
                                                             "东北军的一些爱国将士马占山"])
    assert len(lines(clone / "dataset" / "manifest.train")) == 6 + 3 + 3
    assert len(lines(clone / "dataset" / "manifest.noise")) == 2
    shutil.copytree(REPO / "conf", clone / "conf")
    proc = run_cli("train.py", *TINY_MODEL, "--batch_size=4", "--num_workers=0", "--num_epoch=1",
                   "--augment_conf_path=conf/augmentation.json", cwd=clone)
    assert "Test epoch: 1" in proc.stdout
    assert (clone / "models" / "deepspeech2" / "epoch_1" / "model.pdparams").exists()

    # A rerun downloads nothing and only rewrites the annotation; THCHS-30's test lines stay.
    requests_before = len(server.requests)
    (annotation / "aishell.txt").unlink()
    proc = download(clone, "aishell.py", *corpus_args(server, archives, "data_aishell.tgz"))
    assert len(server.requests) == requests_before
    assert "already unpacked" in proc.stdout
    assert set(lines(annotation / "aishell.txt")) == expected_train
    assert len(lines(annotation / "test.txt")) == 3


def test_dropped_connection_resumes_with_range(tmp_path, server, archives):
    clone = make_clone(tmp_path / "clone")
    name = "ST-CMDS-20170001_1-OS.tar.gz"
    size = archives[name].stat().st_size
    server.drop_after[name] = size // 3
    proc = download(clone, "free_st_chinese_mandarin_corpus.py", *corpus_args(server, archives, name))
    requests = server.for_file(name)
    assert [r["range"] for r in requests] == [None, f"bytes={size // 3}-"], proc.stdout
    assert sum(r["sent"] for r in requests) == size, "only the rest is fetched again"
    assert "download interrupted" in proc.stdout
    assert len(lines(clone / "dataset" / "annotation" / "free_st_chinese_mandarin_corpus.txt")) == len(ST_CMDS)


def test_next_run_resumes_a_partial_file(tmp_path, server, archives):
    clone = make_clone(tmp_path / "clone")
    name = "data_thchs30.tgz"
    data = archives[name].read_bytes()
    audio = clone / "dataset" / "audio"
    audio.mkdir(parents=True)
    (audio / f"{name}.part").write_bytes(data[:len(data) // 2])  # left by an interrupted run
    download(clone, "thchs_30.py", *corpus_args(server, archives, name))
    assert [(r["range"], r["sent"]) for r in server.for_file(name)] == [(f"bytes={len(data) // 2}-",
                                                                          len(data) - len(data) // 2)]
    assert (clone / "dataset" / "annotation" / "thchs_30.txt").exists()


def test_md5_mismatch_keeps_file_aside_and_unpacks_nothing(tmp_path, server, archives):
    clone = make_clone(tmp_path / "clone")
    name = "data_thchs30.tgz"
    proc = download(clone, "thchs_30.py", f"--url={server.url}/{name}", "--md5=0123456789abcdef0123456789abcdef",
                    check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("error: md5 of ") and "data_thchs30.tgz.md5-mismatch" in error
    audio = clone / "dataset" / "audio"
    assert md5(audio / f"{name}.md5-mismatch") == md5(archives[name])
    assert not (audio / "data_thchs30").exists() and not (audio / name).exists()
    assert not (clone / "dataset" / "annotation").exists()


def test_missing_url_is_one_error_line(tmp_path, server):
    clone = make_clone(tmp_path / "clone")
    proc = download(clone, "aishell.py", f"--url={server.url}/no_such.tgz", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "HTTP 404" in proc.stderr and "--url" in proc.stderr
    assert len(server.requests) == 1, "a 404 is not retried"


def test_archive_flag_reads_a_local_archive_and_never_touches_it(tmp_path, server, archives):
    clone = make_clone(tmp_path / "clone")
    mine = tmp_path / "my downloads" / "data_aishell.tgz"
    mine.parent.mkdir()
    shutil.copy(archives["data_aishell.tgz"], mine)
    stat_before, md5_before = mine.stat(), md5(mine)
    annotation = clone / "dataset" / "annotation"
    annotation.mkdir(parents=True)
    (annotation / "test.txt").write_text("dataset/audio/mine/1.wav\t我自己的测试句\n", encoding="utf-8")
    for _ in range(2):
        download(clone, "aishell.py", f"--archive={mine}", f"--url={server.url}/data_aishell.tgz",
                 f"--md5={md5_before}")
    assert server.requests == []
    assert mine.exists() and md5(mine) == md5_before and mine.stat().st_mtime_ns == stat_before.st_mtime_ns
    assert len(lines(annotation / "aishell.txt")) == 6
    test_lines = lines(annotation / "test.txt")
    assert test_lines[0] == "dataset/audio/mine/1.wav\t我自己的测试句", "the user's own test lines are kept"
    assert len(test_lines) == 3, "a rerun replaces this corpus's test lines, it does not add them again"

    wrong = download(clone, "thchs_30.py", f"--archive={mine}", check=False)  # default md5 is THCHS-30's
    assert wrong.returncode == 1 and "error: md5 of" in wrong.stderr and md5(mine) == md5_before


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink_out", "zip_dotdot"])
def test_unsafe_member_is_refused(tmp_path, server, kind):
    clone = make_clone(tmp_path / "clone")
    name = "data_thchs30.zip" if kind == "zip_dotdot" else "data_thchs30.tgz"
    evil = server.folder.parent / f"evil_{kind}" / name
    evil.parent.mkdir()
    good = {"data_thchs30/data/A11_0.wav.trn": "你好\n".encode()}
    if kind == "dotdot":
        _targz(evil, {**good, "data_thchs30/../../../escaped.txt": b"x"})
    elif kind == "absolute":
        _targz(evil, {**good, str(tmp_path / "escaped.txt"): b"x"})
    elif kind == "symlink_out":
        _targz(evil, good, {"data_thchs30/data/link": "../../../../escaped.txt"})
    else:
        with zipfile.ZipFile(evil, "w") as zf:
            zf.writestr("data_thchs30/data/A11_0.wav.trn", "你好\n")
            zf.writestr("../../escaped.txt", "x")
    old_folder, server.folder = server.folder, evil.parent
    try:
        proc = download(clone, "thchs_30.py", f"--url={server.url}/{name}", f"--md5={md5(evil)}", check=False)
    finally:
        server.folder = old_folder
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: unsafe archive "), proc.stderr
    assert not list(tmp_path.rglob("escaped.txt")) and not (clone / "escaped.txt").exists()
    assert not (clone / "dataset" / "annotation").exists()


def _add_hardlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.LNKTYPE, target
    tar.addfile(info)


def _speaker_targz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            _add_bytes(tar, name, data)
        for name, target in (links or {}).items():
            _add_symlink(tar, name, target)
    return buffer.getvalue()


TRANSCRIPT = {"data_aishell/transcript/aishell_transcript_v0.8.txt": "BAC009S0002W0122 你好\n".encode()}


def _hostile_aishell(path: Path, kind: str, outside: Path) -> None:
    """An AISHELL-shaped archive that tries to reach ``outside`` (the folder holding the target)."""
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, data in TRANSCRIPT.items():
            _add_bytes(tar, name, data)
        if kind == "link_chain":  # issue 16: each link looks harmless while the next does not exist yet
            _add_symlink(tar, "data_aishell/wav", "l2/../..")
            _add_symlink(tar, "data_aishell/l2", ".")
        elif kind == "absolute_symlink":
            _add_symlink(tar, "data_aishell/wav", str(outside))
        elif kind == "hardlink_out":  # a chain first, then a hard link through it to a file outside
            _add_symlink(tar, "data_aishell/up", "l2/../..")
            _add_symlink(tar, "data_aishell/l2", ".")
            _add_hardlink(tar, "data_aishell/wav/S0002.wav", "data_aishell/up/sentinel.txt")
        elif kind == "inner_through_link":  # a speaker "archive" that is a link (via a chain) to one outside
            _add_symlink(tar, "data_aishell/wav/S0002.tar.gz", "../l2/l2/../../victim.tar.gz")
            _add_symlink(tar, "data_aishell/l2", ".")
        elif kind == "inner_link_chain":  # the outer archive is clean; a speaker archive carries the chain
            _add_bytes(tar, "data_aishell/wav/S0002.tar.gz", _speaker_targz(
                {"train/S0002/BAC009S0002W0122.wav": b"RIFF"}, {"a": "l2/l2/l2/../../..", "l2": "."}))
        elif kind == "long_name":
            _add_bytes(tar, "data_aishell/wav/" + "长" * 100 + ".wav", b"RIFF")
        elif kind == "nul_in_pax":
            info = tarfile.TarInfo("data_aishell/wav/a.wav")
            info.pax_headers, info.size = {"path": "data_aishell/wav/a\x00/../../../../sentinel.txt"}, 1
            tar.addfile(info, io.BytesIO(b"x"))
        else:
            raise ValueError(kind)


@pytest.mark.parametrize("kind", ["link_chain", "absolute_symlink", "hardlink_out", "inner_through_link",
                                  "inner_link_chain", "long_name", "nul_in_pax", "truncated"])
def test_hostile_archive_touches_nothing_outside(tmp_path, kind):
    """``aishell.py --archive=evil.tgz --md5=None``: one error line; the files beside the target stay as they were."""
    clone = make_clone(tmp_path / "clone")
    dataset = clone / "dataset"  # the target is dataset/audio: plant what the attack aims at beside it
    dataset.mkdir()
    (dataset / "sentinel.txt").write_text("mine\n")
    (dataset / "victim.tar.gz").write_bytes(_speaker_targz({"sentinel.txt": b"overwritten\n"}))
    before = {p.name: p.read_bytes() for p in dataset.iterdir()}
    evil = tmp_path / "evil.tgz"
    if kind == "truncated":
        _hostile_aishell(evil, "long_name", dataset)
        good = io.BytesIO()
        with tarfile.open(fileobj=good, mode="w:gz") as tar:
            for i in range(20):
                _add_bytes(tar, f"data_aishell/wav/{i}.wav", os.urandom(20000))
        evil.write_bytes(good.getvalue()[:len(good.getvalue()) // 2])
    else:
        _hostile_aishell(evil, kind, dataset)
    proc = download(clone, "aishell.py", f"--archive={evil}", "--md5=None", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    named = "data_aishell/wav/S0002.tar.gz" if kind == "inner_link_chain" else str(evil)
    assert error.startswith("error: ") and named in error, proc.stderr
    assert {p.name: p.read_bytes() for p in dataset.iterdir() if p.name != "audio"} == before
    assert not (dataset / "annotation").exists()
    if not kind.startswith("inner"):  # the outer archive is refused before anything is written
        assert not (dataset / "audio" / "data_aishell").exists()
    assert not (clone / "sentinel.txt").exists() and not (tmp_path / "sentinel.txt").exists()
