"""The public corpora of PPASR's download_data/ scripts: where they live, their layouts, annotations.

Each corpus is fetched once (see ``ppasr.data.download``), unpacked under ``--target_dir`` and turned into
PPASR annotation lines ``audio_path<TAB>text`` (spaces removed). Training and dev utterances go to
``annotation/<corpus>.txt``; an official test split goes to ``annotation/test.txt``, which
create_data.py takes as the whole test set. Several corpora share test.txt: each rewrites only the
lines under its own audio folder, so other corpora's lines and the user's own lines are kept.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterator

from tqdm import tqdm

from ppasr.data.download import Stages, download, is_inside, unpack, verify_md5
from ppasr.data.prepare import TEST_ANNOTATION, merge_test_lines, write_lines
from ppasr.errors import UserError
from ppasr.logger import logger

OPENSLR = "https://www.openslr.org/resources"
MIRRORS = ("https://us.openslr.org/resources", "https://openslr.elda.org/resources",
           "https://openslr.magicdatatech.com/resources")

# (audio file, transcript or None when it has none, True for the official test split)
CorpusEntry = tuple[str, str | None, bool]


@dataclass(frozen=True)
class Corpus:
    name: str              # script and annotation file name
    title: str
    url: str
    md5: str
    folder: str            # top folder of the unpacked archive
    utterances: Callable[[str], Iterator[CorpusEntry]] | None = None
    after_unpack: Callable[[str], None] | None = None
    members: Callable[[str], bool] | None = None  # which archive members to unpack (None: all)

    @property
    def archive_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def _first_line(path: str) -> str:
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        return "".join(f.readline().lstrip("\ufeff").split())


def _wav_files(folder: str) -> Iterator[str]:
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            if name.lower().endswith(".wav"):
                yield os.path.join(root, name)


def _unpack_speaker_archives(data_dir: str) -> None:
    """AISHELL's wav/ holds one <speaker>.tar.gz per speaker (members <split>/<speaker>/*.wav).

    Only regular files inside ``data_dir`` are unpacked and deleted: the walk follows no link, so a
    link in the corpus archive cannot make us unpack over, or delete, anything outside it.
    """
    root = os.path.realpath(data_dir)
    wav_dir = os.path.join(data_dir, "wav")
    if os.path.islink(wav_dir) or not os.path.isdir(wav_dir):
        raise UserError(f"{wav_dir} is not a folder: is the archive the AISHELL-1 archive? Delete {data_dir} "
                        f"and rerun")
    logger.info(f"unpacking the speaker archives in {wav_dir}")
    archives = sorted(os.path.join(top, name) for top, _, names in os.walk(wav_dir, followlinks=False)
                      for name in names if name.endswith(".tar.gz"))
    for archive in tqdm(archives, desc="speaker archives", unit="archive", mininterval=1.0):
        if os.path.islink(archive) or not os.path.isfile(archive) or not is_inside(root, archive):
            raise UserError(f"{archive} is a link or not a file: refused to unpack or delete it. Delete "
                            f"{data_dir} and rerun with the official AISHELL-1 archive")
        unpack(archive, os.path.dirname(archive), progress=False)
        os.remove(archive)  # unpacked from the corpus archive by us: done with it


def _aishell_utterances(data_dir: str) -> Iterator[CorpusEntry]:
    transcripts = {}
    with open(os.path.join(data_dir, "transcript", "aishell_transcript_v0.8.txt"), encoding="utf-8") as f:
        for line in f:
            parts = line.split(maxsplit=1)
            if len(parts) == 2:
                transcripts[parts[0]] = "".join(parts[1].split())
    wav_dir = os.path.join(data_dir, "wav")
    for split in ("train", "dev", "test"):
        for path in _wav_files(os.path.join(wav_dir, split)):
            yield path, transcripts.get(os.path.splitext(os.path.basename(path))[0]), split == "test"


def _thchs30_utterances(data_dir: str) -> Iterator[CorpusEntry]:
    """Audio and transcripts are in data/; test/ names the official test split (links into data/)."""
    test_dir = os.path.join(data_dir, "test")
    test_names = set(os.listdir(test_dir)) if os.path.isdir(test_dir) else set()
    for path in _wav_files(os.path.join(data_dir, "data")):
        trn = path + ".trn"
        text = _first_line(trn) if os.path.exists(trn) else None
        yield path, text, os.path.basename(path) in test_names


def _st_cmds_utterances(data_dir: str) -> Iterator[CorpusEntry]:
    for path in _wav_files(data_dir):
        txt = os.path.splitext(path)[0] + ".txt"
        yield path, (_first_line(txt) if os.path.exists(txt) else None), False


def _is_point_source_noise(name: str) -> bool:
    return name.startswith("RIRS_NOISES/pointsource_noises/") and name.lower().endswith(".wav")


CORPORA = {corpus.name: corpus for corpus in (
    Corpus("aishell", "AISHELL-1", f"{OPENSLR}/33/data_aishell.tgz", "2f494334227864a8a8fec932999db9d8",
           "data_aishell", _aishell_utterances, _unpack_speaker_archives),
    Corpus("thchs_30", "THCHS-30", f"{OPENSLR}/18/data_thchs30.tgz", "2d2252bde5c8429929e1841d4cb95e90",
           "data_thchs30", _thchs30_utterances),
    Corpus("free_st_chinese_mandarin_corpus", "Free ST Chinese Mandarin Corpus",
           f"{OPENSLR}/38/ST-CMDS-20170001_1-OS.tar.gz", "c28ddfc8e4ebe48949bc79a0c23c5545",
           "ST-CMDS-20170001_1-OS", _st_cmds_utterances),
    Corpus("noise", "RIRS_NOISES point-source noises", f"{OPENSLR}/28/rirs_noises.zip",
           "e6f48e257286e05de56413b4779d8ffb", "RIRS_NOISES", members=_is_point_source_noise),
)}


def annotation_path(audio: str, root: str) -> str:
    """How an annotation names ``audio``: relative to ``root`` (where create_data.py runs) when the
    audio is inside it, else absolute; always with forward slashes."""
    audio = os.path.abspath(audio)
    try:
        relative = os.path.relpath(audio, root)
    except ValueError:  # another drive (Windows)
        relative = os.pardir
    chosen = audio if relative.startswith(os.pardir) else relative
    return chosen.replace(os.sep, "/")


def fetch_and_unpack(corpus: Corpus, target_dir: str, unpack_dir: str, url: str, md5: str | None,
                     archive: str | None) -> str:
    """Make sure ``corpus`` is unpacked in ``unpack_dir``; return its data folder.

    Progress is recorded in ``<target_dir>/.ppasr_<name>.json``: a rerun after a finished unpack
    downloads and unpacks nothing. An archive given with --archive is only read; one this script
    downloaded is deleted once unpacked (as PPASR did).
    """
    data_dir = os.path.join(unpack_dir, corpus.folder)
    stages = Stages(os.path.join(target_dir, f".ppasr_{corpus.name}.json"))
    if stages.done("unpacked") and os.path.isdir(data_dir):
        logger.info(f"{corpus.title} is already unpacked in {data_dir} (recorded in {stages.path}): "
                    f"skipping download and unpack")
        return data_dir
    if stages.done("archive unpacked") and not os.path.isdir(data_dir):
        stages.reset()  # the unpacked folder was removed since: start over
    if not stages.done("archive unpacked"):
        if archive is not None:
            if not os.path.isfile(archive):
                raise UserError(f"--archive {archive} not found")
            verify_md5(archive, md5, keep_aside=False)
            source = archive
        else:
            source = os.path.abspath(os.path.join(target_dir, corpus.archive_name))
            if os.path.exists(source):
                ours = stages.record.get("downloaded_archive") == source
                logger.info(f"found {source}; using it" + ("" if ours else " (yours: it will be kept)"))
                verify_md5(source, md5, keep_aside=ours)
            else:
                download(url, source, md5)
                stages.mark("downloaded", downloaded_archive=source)
        logger.info(f"unpacking {source} -> {unpack_dir}")
        unpack(source, unpack_dir, corpus.members)
        if os.path.islink(data_dir) or not os.path.isdir(data_dir):
            raise UserError(f"{source} has no {corpus.folder}/ folder: is it the {corpus.title} archive?")
        stages.mark("archive unpacked")
    if corpus.after_unpack is not None:
        corpus.after_unpack(data_dir)
    stages.mark("unpacked")
    ours = stages.record.get("downloaded_archive")
    if ours and os.path.exists(ours):
        os.remove(ours)
        logger.info(f"removed the downloaded archive {ours} (everything is unpacked)")
    return data_dir


def write_annotations(corpus: Corpus, data_dir: str, annotation_dir: str, root: str) -> dict[str, int]:
    """Write ``<name>.txt`` (train + dev) and this corpus's share of ``test.txt``; return counts."""
    train, test, missing = [], [], 0
    for audio, text, is_test in corpus.utterances(data_dir):
        if not text:
            missing += 1
            continue
        (test if is_test else train).append(f"{annotation_path(audio, root)}\t{text}")
    if not train and not test:
        raise UserError(f"no utterances with transcripts in {data_dir} ({missing} without): is the archive "
                        f"complete? Delete {data_dir} and rerun to unpack it again")
    os.makedirs(annotation_dir, exist_ok=True)
    write_lines(os.path.join(annotation_dir, f"{corpus.name}.txt"), train)
    if test:
        merge_test_lines(os.path.join(annotation_dir, TEST_ANNOTATION),
                         annotation_path(data_dir, root) + "/", test)
    return {"train": len(train), "test": len(test), "no transcript": missing}


def prepare_corpus(name: str, target_dir: str, annotation_dir: str, url: str, md5: str | None,
                   archive: str | None, root: str) -> None:
    """The whole job of download_data/<name>.py for a speech corpus."""
    corpus = CORPORA[name]
    target_dir = os.path.expanduser(target_dir)
    data_dir = fetch_and_unpack(corpus, target_dir, target_dir, url, md5, archive)
    counts = write_annotations(corpus, data_dir, os.path.expanduser(annotation_dir), root)
    where = os.path.join(annotation_dir, f"{name}.txt")
    test_note = f", test {counts['test']} -> {os.path.join(annotation_dir, TEST_ANNOTATION)}" if counts["test"] else ""
    logger.info(f"{corpus.title}: train+dev {counts['train']} -> {where}{test_note}; "
                f"skipped {counts['no transcript']} without a transcript")


def prepare_noise(target_dir: str, noise_path: str, url: str, md5: str | None, archive: str | None) -> None:
    """The whole job of download_data/noise.py: point-source noises under ``noise_path``."""
    corpus = CORPORA["noise"]
    noise_path = os.path.expanduser(noise_path)
    data_dir = fetch_and_unpack(corpus, os.path.expanduser(target_dir), noise_path, url, md5, archive)
    count = sum(1 for _ in _wav_files(data_dir))
    logger.info(f"{count} noise clips in {data_dir}; create_data.py lists them in manifest.noise")

