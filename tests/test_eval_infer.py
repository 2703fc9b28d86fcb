"""eval.py, export_model.py, infer_path.py and tools/tune.py on a tiny trained model."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

import paddle

from helpers import REPO, TEST_WAV, run_cli

MODEL = "--resume_model=models/deepspeech2/epoch_2"


@pytest.fixture
def trained(trained_corpus, tmp_path):
    target = tmp_path / "work"
    shutil.copytree(trained_corpus, target, symlinks=True)
    return target


def test_eval_prints_cer_and_writes_results(trained):
    proc = run_cli("eval.py", MODEL, "--result_path=results.jsonl", "--num_workers=0", cwd=trained)
    assert "-----------  Configuration Arguments -----------" in proc.stdout
    lines = proc.stdout.splitlines()
    assert re.fullmatch(r"评估消耗时间：\d+s，字错率：\d\.\d{6}", lines[-1]), lines[-3:]  # a3c1911's last line
    assert re.fullmatch(r"mean per-utterance cer: \d\.\d{5}", lines[-3]), lines[-3:]
    line = lines[-2]
    assert line.startswith("字错率 cer: ") and f"字错率：{float(line.split()[2]):.6f}" in lines[-1]
    rows = [json.loads(l) for l in (trained / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    test_items = (trained / "dataset/manifest.test").read_text(encoding="utf-8").splitlines()
    assert len(rows) == len(test_items) and {"reference", "hypothesis", "distance"} <= set(rows[0])
    errors = sum(r["distance"] for r in rows)
    chars = sum(len(r["reference"]) for r in rows)
    assert f"cer: {errors / chars:.5f}" in line


def test_batched_decoding_ignores_padded_frames(trained):
    """Each utterance decodes the same alone and inside a batch of very different lengths."""
    from ppasr.cli import eval_parser
    from ppasr.decode.text_decoder import GreedyDecoder
    from ppasr.jobs import load_for_eval
    from ppasr.scripts import eval_job
    from ppasr.train.evaluation import evaluate
    import os

    cwd = os.getcwd()
    os.chdir(trained)
    try:
        manifest = trained / "dataset/manifest.train"
        items = [json.loads(l) for l in manifest.read_text(encoding="utf-8").splitlines()]
        items.sort(key=lambda x: x["duration"])
        chosen = [items[0], items[len(items) // 2], items[-1]]
        assert chosen[-1]["duration"] > 1.5 * chosen[0]["duration"]
        (trained / "mixed.manifest").write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in chosen),
                                                encoding="utf-8")
        results = {}
        for batch_size in (1, 3):
            args = eval_parser().parse_args([MODEL, "--test_manifest=mixed.manifest",
                                                          f"--batch_size={batch_size}", "--num_workers=0"])
            vocabulary, dataset, loader, model = load_for_eval(eval_job(args))
            result = evaluate(model, loader, dataset, GreedyDecoder(vocabulary).decode, progress=False)
            results[batch_size] = sorted(result.pairs)
        assert results[1] == results[3]
    finally:
        os.chdir(cwd)


def test_beam_search_without_lm_falls_back_with_message(trained):
    proc = run_cli("eval.py", MODEL, "--decoder=ctc_beam_search", "--lang_model_path=lm/none.arpa",
                   "--num_proc_bsearch=1", "--num_workers=0", cwd=trained)
    assert "lm/none.arpa not found" in proc.stdout and "WITHOUT a language model" in proc.stdout
    assert "字错率 cer:" in proc.stdout


def test_lm_that_is_not_an_lm_is_a_clear_error(trained):
    (trained / "bad.arpa").write_text("this is not an arpa file\n")
    proc = run_cli("eval.py", MODEL, "--decoder=ctc_beam_search", "--lang_model_path=bad.arpa",
                   "--num_workers=0", cwd=trained, check=False)
    assert proc.returncode != 0 and "not a valid KenLM language model" in proc.stderr


def test_eval_with_built_lm_and_tune(trained):
    run_cli("tools/build_lm.py", "--manifest", "dataset/manifest.train", "--output", "lm/tiny.arpa", cwd=trained)
    for _ in range(3):  # the workers' shutdown used to print paddle's C++ traceback now and then
        proc = run_cli("eval.py", MODEL, "--decoder=ctc_beam_search", "--lang_model_path=lm/tiny.arpa",
                       "--num_proc_bsearch=2", "--batch_size=4", "--num_workers=0", cwd=trained)
        assert "字错率 cer:" in proc.stdout
        output = proc.stdout + proc.stderr
        assert "C++ Traceback" not in output and "FatalError" not in output and "Termination signal" not in output
        banners = sum(line.startswith("****") for line in output.splitlines())
        assert output.count("Reading ") <= 1 and banners <= 1, "the LM is loaded once"
    proc = run_cli("tools/tune.py", MODEL, "--lang_model_path=lm/tiny.arpa", "--num_alphas=2",
                   "--num_betas=2", "--num_proc_bsearch=2", "--num_workers=0", cwd=trained)
    assert proc.stdout.count("字错率为：") == 4 and "【最后结果】当alpha为：" in proc.stdout
    assert (proc.stdout + proc.stderr).count("Reading ") <= 1


def test_eval_bad_inputs(trained):
    proc = run_cli("eval.py", "--resume_model=models/nothing", cwd=trained, check=False)
    assert proc.returncode != 0 and "no model found at models/nothing" in proc.stderr
    proc = run_cli("eval.py", "--rnn_size=64", MODEL, cwd=trained, check=False)
    assert proc.returncode != 0 and proc.stderr.strip() == (
        "error: --rnn_size=64 contradicts models/deepspeech2/epoch_2, which was trained with rnn_size=32; "
        "leave the flag out (the size comes from the checkpoint)")
    proc = run_cli("eval.py", MODEL, "--feature_method=mfcc", cwd=trained, check=False)
    assert proc.returncode != 0 and "computed for 'fbank' features" in proc.stderr
    (trained / "empty.manifest").write_text("")
    proc = run_cli("eval.py", MODEL, "--test_manifest=empty.manifest", cwd=trained, check=False)
    assert proc.returncode != 0 and "has no utterances" in proc.stderr
    vocab = trained / "dataset/vocabulary.txt"
    vocab.write_text(vocab.read_text(encoding="utf-8") + "新\t1\n", encoding="utf-8")
    proc = run_cli("eval.py", MODEL, cwd=trained, check=False)
    assert proc.returncode != 0 and "different vocabulary" in proc.stderr


def test_unreadable_audio_in_eval_is_skipped_and_counted(trained):
    items = (trained / "dataset/manifest.train").read_text(encoding="utf-8").splitlines()[:4]
    broken = json.loads(items[0])["audio_filepath"]
    (trained / broken).write_bytes(b"garbage")
    (trained / "four.manifest").write_text("\n".join(items) + "\n", encoding="utf-8")
    proc = run_cli("eval.py", MODEL, "--test_manifest=four.manifest", "--num_workers=0", cwd=trained)
    assert "skipped 1 utterances whose audio could not be loaded" in proc.stdout
    assert f"skip: {broken}" in proc.stdout
    assert "3 utterances" in proc.stdout


def test_tune_skips_a_batch_whose_audio_all_failed(trained):
    """The shared evaluation loop skips placeholder batches; tune used to crash on them."""
    items = sorted((json.loads(l) for l in (trained / "dataset/manifest.train").read_text(encoding="utf-8")
                    .splitlines()), key=lambda item: item["duration"])[:4]
    for item in items[:2]:  # the two shortest: the whole first batch of 2
        (trained / item["audio_filepath"]).write_bytes(b"garbage")
    (trained / "four.manifest").write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items),
                                           encoding="utf-8")
    run_cli("tools/build_lm.py", "--manifest", "dataset/manifest.train", "--output", "lm/tiny.arpa", cwd=trained)
    proc = run_cli("tools/tune.py", MODEL, "--test_manifest=four.manifest", "--batch_size=2",
                   "--lang_model_path=lm/tiny.arpa", "--num_alphas=1", "--num_betas=1", "--num_proc_bsearch=1",
                   "--num_workers=0", cwd=trained)
    assert "skipped 2 utterances whose audio could not be loaded" in proc.stdout
    assert "【最后结果】当alpha为：" in proc.stdout


def test_export_then_infer_matches_eval_hypothesis(trained):
    run_cli("export_model.py", MODEL, cwd=trained)
    infer_dir = trained / "models/deepspeech2/infer"
    assert (infer_dir / "model_config.json").exists() and (infer_dir / "vocabulary.txt").exists()
    item = json.loads((trained / "dataset/manifest.test").read_text(encoding="utf-8").splitlines()[0])
    (trained / "one.manifest").write_text(json.dumps(item, ensure_ascii=False) + "\n", encoding="utf-8")
    run_cli("eval.py", MODEL, "--test_manifest=one.manifest", "--result_path=one.jsonl",
            "--num_workers=0", cwd=trained)
    expected = json.loads((trained / "one.jsonl").read_text(encoding="utf-8"))["hypothesis"]
    # a 44.1 kHz stereo FLAC copy of the clip: resampled on the fly
    import soundfile
    import soxr

    samples, sr = soundfile.read(trained / item["audio_filepath"], dtype="float32")
    soundfile.write(trained / "clip.flac", np.stack([soxr.resample(samples, sr, 44100)] * 2, 1), 44100)
    for path in (item["audio_filepath"], "clip.flac"):
        proc = run_cli("infer_path.py", f"--wav_path={path}", "--decoder=ctc_greedy", "--use_gpu=False", cwd=trained)
        line = next(l for l in proc.stdout.splitlines() if "识别结果" in l)
        text = line.split("识别结果: ")[1].split(", 得分")[0]
        if path == "clip.flac":
            assert len(text) >= len(expected) - 2  # resampling may move a frame boundary
        else:
            assert text == expected
    proc = run_cli("infer_path.py", f"--wav_path={item['audio_filepath']}", "--lang_model_path=None",
                   "--decoder=ctc_beam_search", "--beam_size=1", "--use_gpu=False", cwd=trained)
    assert f"识别结果: {expected}," in proc.stdout, "beam 1 without LM equals greedy"


def test_infer_bad_inputs(trained):
    proc = run_cli("infer_path.py", "--wav_path=x.wav", "--model_dir=models/missing/", cwd=trained, check=False)
    assert proc.returncode != 0 and "python3 export_model.py" in proc.stderr
    run_cli("export_model.py", MODEL, cwd=trained)
    proc = run_cli("infer_path.py", "--wav_path=missing.wav", cwd=trained, check=False)
    assert proc.returncode == 1 and proc.stderr.splitlines()[-1] == "error: missing.wav: audio file not found"
    (trained / "other_vocabulary.txt").write_text("<blank>\t-1\n好\t3\n", encoding="utf-8")
    proc = run_cli("infer_path.py", f"--wav_path={TEST_WAV}", "--vocab_path=other_vocabulary.txt", cwd=trained,
                   check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "--vocab_path=other_vocabulary.txt differs from the vocabulary" in proc.stderr


def test_infer_flags_are_ppasrs():
    from ppasr.cli import infer_parser

    args = vars(infer_parser().parse_args([]))
    added = {name: args.pop(name) for name in ("backend", "num_threads", "vad", "print_timestamps", "hotwords",
                                               "hotwords_file", "hotword_weight")}  # issues 13, 19
    assert added == {"backend": None, "num_threads": 0, "vad": "webrtc", "print_timestamps": False, "hotwords": None,
                     "hotwords_file": None, "hotword_weight": 4.0}
    assert args == {"wav_path": "./dataset/test.wav", "is_long_audio": False, "use_gpu": True, "to_an": True,
                    "beam_size": 10, "alpha": 1.2, "beta": 0.35, "cutoff_prob": 1.0, "cutoff_top_n": 40,
                    "vocab_path": "dataset/vocabulary.txt", "model_dir": "models/deepspeech2/infer/",
                    "lang_model_path": "lm/zh_giga.no_cna_cmn.prune01244.klm", "decoder": "ctc_greedy"}


def test_bare_infer_path_and_long_audio_print_ppasrs_lines(trained, exported_corpus):
    """`python infer_path.py` with no flags after the export: the shipped dataset/test.wav, PPASR's lines."""
    import re
    import soundfile

    run_cli("export_model.py", MODEL, cwd=trained)
    shutil.copyfile(REPO / "dataset" / "test.wav", trained / "dataset" / "test.wav")
    proc = run_cli("infer_path.py", cwd=trained)
    lines = [l for l in proc.stdout.splitlines() if "识别结果" in l]
    assert len(lines) == 1 and re.fullmatch(r"消耗时间：\d+ms, 识别结果: .*, 得分: \d+", lines[0]), lines
    if not paddle.is_compiled_with_cuda():
        assert "note: this paddle has no CUDA, running on the CPU" in proc.stdout
    samples, sr = soundfile.read(TEST_WAV, dtype="float32")
    gap = np.zeros(sr, dtype=np.float32)
    soundfile.write(trained / "long.wav", np.concatenate([samples, gap, samples]), sr)
    # the random-weight model: the 2-epoch one decodes to blanks, and empty parts are not printed (issue 19)
    proc = run_cli("infer_path.py", f"--wav_path={trained / 'long.wav'}", "--is_long_audio=True", "--use_gpu=False",
                   cwd=exported_corpus)
    lines = [l for l in proc.stdout.splitlines() if "识别结果" in l]
    segments = [l for l in lines[:-1] if re.fullmatch(r"第\d+个分割音频, 得分: \d+, 识别结果: .*", l)]
    assert len(segments) == len(lines) - 1 >= 2, lines
    final = re.fullmatch(r"最终结果，消耗时间：\d+, 得分: \d+, 识别结果: (.*)", lines[-1])
    texts = [l.split("识别结果: ")[1] for l in segments]
    assert final and final.group(1) == "，".join(texts)


def test_greedy_score_is_ppasrs():
    from ppasr.decode.greedy import greedy_score

    # best path: blank(0.6), 1(0.9), 1(0.7), blank(0.5), 2(0.8): mean of 0.9, 0.7, 0.8 x 100
    probs = np.array([[0.6, 0.3, 0.1], [0.05, 0.9, 0.05], [0.2, 0.7, 0.1], [0.5, 0.2, 0.3], [0.1, 0.1, 0.8]])
    assert greedy_score(probs) == pytest.approx(80.0)
    assert greedy_score(np.array([[0.9, 0.1]])) == 0.0


def test_to_an_turns_numbers_into_digits_and_leaves_words():
    from ppasr.data.text import to_arabic_numerals

    assert to_arabic_numerals("今天是二零二一年三月十五号") == "今天是2021年3月15号"
    assert to_arabic_numerals("我有三百五十块钱") == "我有350块钱"
    assert to_arabic_numerals("一样的东西统一起来") == "一样的东西统一起来"
    assert to_arabic_numerals("万一下雨我们一起走一百米") == "万一下雨我们一起走100米"


def test_long_audio_split_on_silence(reference_audio):
    from ppasr.serve.vad import split_on_silence

    samples, sr = reference_audio
    gap = np.zeros(sr, dtype=np.float32)
    long_audio = np.concatenate([samples, gap, samples, gap, samples])
    segments = split_on_silence(long_audio, sr)
    assert len(segments) >= 3
    starts = [s / sr for s, _ in segments]
    assert any(abs(s - (len(samples) + sr) / sr) < 1.0 for s in starts), starts
    for start, end in segments:
        assert end > start and end <= len(long_audio)


# a3c1911's argparse definitions (flag: default) of eval.py and tools/tune.py: old command lines must run
A3C1911_EVAL = {"batch_size": 32, "num_workers": 8, "alpha": 1.2, "beta": 0.35, "beam_size": 10,
                "num_proc_bsearch": 8, "cutoff_prob": 1.0, "cutoff_top_n": 40, "use_model": "deepspeech2",
                "test_manifest": "dataset/manifest.test", "dataset_vocab": "dataset/vocabulary.txt",
                "mean_std_path": "dataset/mean_std.npz", "resume_model": "models/deepspeech2/epoch_50/",
                "decoder": "ctc_greedy", "lang_model_path": "lm/zh_giga.no_cna_cmn.prune01244.klm"}
A3C1911_TUNE = {"num_data": -1, "batch_size": 16, "beam_size": 10, "num_proc_bsearch": 8, "num_alphas": 45,
                "num_betas": 8, "alpha_from": 1.0, "alpha_to": 3.2, "beta_from": 0.1, "beta_to": 0.45,
                "cutoff_prob": 1.0, "cutoff_top_n": 40, "use_model": "deepspeech2",
                "test_manifest": "dataset/manifest.test", "dataset_vocab": "dataset/vocabulary.txt",
                "mean_std_path": "dataset/mean_std.npz", "resume_model": "models/deepspeech2/epoch_50/",
                "decoder": "ctc_greedy", "lang_model_path": "lm/zh_giga.no_cna_cmn.prune01244.klm"}


@pytest.mark.parametrize("parser_name, flags", [("eval_parser", A3C1911_EVAL), ("tune_parser", A3C1911_TUNE)])
def test_a3c1911_flags_and_defaults(parser_name, flags):
    from ppasr import cli

    parser = getattr(cli, parser_name)()
    defaults = vars(parser.parse_args([]))
    assert {name: defaults.get(name, "missing") for name in flags} == flags
    old_command_line = [f"--{name}={value}" for name, value in flags.items()]
    assert vars(parser.parse_args(old_command_line)).items() >= flags.items()


def test_tune_with_a3c1911s_command_line_and_lines(trained):
    run_cli("tools/build_lm.py", "--manifest", "dataset/manifest.train", "--output", "lm/tiny.arpa", cwd=trained)
    proc = run_cli("tools/tune.py", "--num_data=5", "--batch_size=2", "--decoder=ctc_beam_search", "--num_alphas=2",
                   "--num_betas=2", "--alpha_from=1.0", "--alpha_to=2.0", "--beta_from=0.1", "--beta_to=0.45",
                   "--num_proc_bsearch=1", "--resume_model=models/deepspeech2/epoch_2/",
                   "--lang_model_path=lm/tiny.arpa", cwd=trained)
    lines = proc.stdout.splitlines()
    start = lines.index("开始识别数据...")
    assert lines[start + 1:start + 3] == ["开始使用识别结果解码...",
                                          "解码alpha和beta的排列：[(1.0, 0.1), (1.0, 0.45), (2.0, 0.1), (2.0, 0.45)]"]
    tried = [re.fullmatch(r"正在解码\[(\d)/4\]: \((\d\.\d\d), (\d\.\d\d)\)", l) for l in lines[start + 3::2]]
    assert [m.groups() for m in tried[:4]] == [("0", "1.00", "0.10"), ("1", "1.00", "0.45"), ("2", "2.00", "0.10"),
                                               ("3", "2.00", "0.45")], lines
    results = [re.fullmatch(r"当alpha为：(\d\.\d{6}), beta为：(\d\.\d{6})，字错率为：(\d\.\d{6})", l)
               for l in lines[start + 4::2][:4]]
    assert all(results), lines
    best = min(results, key=lambda m: float(m.group(3)))
    assert lines[-1] == f"【最后结果】当alpha为：{best.group(1)}, beta为：{best.group(2)}，字错率最低，为：{best.group(3)}"
