"""Timestamps (issue 19 part 1): every decoder's per-token frames from the CTC alignment of the path it
chose, their times in ms (characters, English words, converted numbers), and their offsets in long audio."""
from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile

from helpers import run_cli
from test_decoder import EN_VOCAB, ZH_VOCAB, frames_from, peaked_batch
from ppasr.decode.beam_search import BeamSearchDecoder
from ppasr.decode.greedy import IncrementalGreedyDecoder, greedy_decode
from ppasr.decode.hypothesis import Hypothesis, Timestamp, numerals_with_times, timestamps
from ppasr.decode.lm_builder import build_lm


def test_greedy_frames_are_the_runs_of_the_best_path():
    vocab = ["<blank>", "a", "b"]
    spec = [{"a": 0.9}, {"a": 0.8}, {"<blank>": 0.9}, {"a": 0.7}, {"b": 0.6}, {"b": 0.9}, {"<blank>": 0.9},
            {"a": 0.95}]  # the last frame is padding
    hypothesis = greedy_decode(frames_from(spec, vocab)[None], np.array([7]), vocab)[0]
    assert hypothesis.text == "aab" and hypothesis.tokens == (1, 1, 2)
    assert hypothesis.frames == ((0, 2), (3, 4), (4, 6))


@pytest.mark.parametrize("beam_size", [1, 10])
def test_beam_search_without_lm_times_equal_greedy_on_a_peaked_model(beam_size):
    rng = np.random.default_rng(7)
    vocab = ["<blank>"] + list("abcdefghij")
    probs = peaked_batch(rng, 40, 30, len(vocab), top=0.9)
    lengths = rng.integers(0, 31, size=40)
    greedy = greedy_decode(probs, lengths, vocab)
    beam = BeamSearchDecoder(vocab, beam_size=beam_size, num_processes=1).decode(probs, lengths)
    assert [(h.tokens, h.frames) for h in beam] == [(h.tokens, h.frames) for h in greedy]
    assert sum(len(h.tokens) for h in greedy) > 100


def test_beam_search_with_lm_times_are_monotonic_and_within_the_audio(tmp_path):
    corpus = tmp_path / "zh.txt"
    corpus.write_text("天气很好\n天气很好很好\n机器很好\n", encoding="utf-8")
    build_lm([str(corpus)], str(tmp_path / "zh.arpa"), order=3, token="char")
    rng = np.random.default_rng(8)
    decoder = BeamSearchDecoder(ZH_VOCAB, beam_size=8, num_processes=1, lang_model_path=str(tmp_path / "zh.arpa"))
    probs = rng.dirichlet(np.full(len(ZH_VOCAB), 0.3), size=(12, 40)).astype(np.float32)
    lengths = rng.integers(1, 41, size=12)
    for hypothesis, length in zip(decoder.decode(probs, lengths), lengths):
        assert len(hypothesis.frames) == len(hypothesis.tokens) == len(hypothesis.text)
        starts = [start for start, _ in hypothesis.frames]
        assert starts == sorted(starts) and len(set(starts)) == len(starts)  # one token per frame at most
        assert all(0 <= start < end <= length for start, end in hypothesis.frames)
        ends = [end for _, end in hypothesis.frames]
        assert all(end <= next_start for end, next_start in zip(ends, starts[1:]))
        assert hypothesis.lm_score is not None


def test_incremental_greedy_frames_equal_greedy_for_any_chunking():
    rng = np.random.default_rng(0)
    vocabulary = ["<blank>"] + list("abcde")
    probs = rng.dirichlet(np.full(6, 0.3), size=200).astype(np.float32)
    probs[50:53] = probs[49]  # a token's run across a chunk boundary is one token
    expected = greedy_decode(probs[None], np.array([200]), vocabulary)[0]
    for cuts in ([], [50], [1, 2, 3, 51, 52, 120]):
        decoder = IncrementalGreedyDecoder(vocabulary)
        for start, end in zip([0] + cuts, cuts + [200]):
            hypothesis = decoder.extend(probs[start:end])
        assert (hypothesis.text, hypothesis.frames) == (expected.text, expected.frames)
        assert hypothesis.score == pytest.approx(expected.score)


def test_times_of_characters_words_and_offsets():
    zh = Hypothesis("天气", 0.0, tokens=(1, 2), frames=((2, 3), (5, 7)))
    assert timestamps(zh, ZH_VOCAB, 40.0, offset_ms=1000.0) == [Timestamp("天", 1080, 1120),
                                                                  Timestamp("气", 1200, 1280)]
    tokens = tuple(EN_VOCAB.index(c) for c in "the cat")
    en = Hypothesis("the cat", 0.0, tokens=tokens, frames=tuple((2 * i, 2 * i + 1) for i in range(len(tokens))))
    assert timestamps(en, EN_VOCAB, 40.0) == [Timestamp("the", 0, 200), Timestamp("cat", 320, 520)]


def test_to_an_keeps_times_a_number_spans_its_characters():
    units = [Timestamp(ch, 100 * i, 100 * i + 60) for i, ch in enumerate("今天是二零二一年三月十五号一样")]
    converted = numerals_with_times(units)
    assert "".join(u.text for u in converted) == "今天是2021年3月15号一样"
    assert Timestamp("2021", 300, 660) in converted and Timestamp("15", 1000, 1160) in converted
    assert converted[-2:] == units[-2:]  # 一样 is a word, not a number


def parse_timestamp_lines(stdout: str) -> list[tuple[float, float, str]]:
    found = re.findall(r"^(\d+\.\d\d)s - (\d+\.\d\d)s (\S+)$", stdout, flags=re.MULTILINE)
    return [(float(start), float(end), text) for start, end, text in found]


def test_infer_path_prints_timestamps_within_the_audio_and_long_audio_offsets(exported_corpus, tmp_path):
    from ppasr.decode.options import DecodeOptions
    from ppasr.decode.text_decoder import build_decoder
    from ppasr.serve.infer import Predictor, transcribe_segments
    from test_server import clips

    clip = clips(exported_corpus, 1)[0]
    samples, sample_rate = soundfile.read(clip, dtype="float32")
    long_wav = tmp_path / "long.wav"
    soundfile.write(long_wav, np.concatenate([samples, np.zeros(2 * sample_rate, np.float32), samples]), sample_rate)
    duration = 2 * len(samples) / sample_rate + 2

    plain = run_cli("infer_path.py", f"--wav_path={clip}", "--use_gpu=False", cwd=exported_corpus)
    assert not parse_timestamp_lines(plain.stdout)  # PPASR's lines only, unless asked
    proc = run_cli("infer_path.py", f"--wav_path={long_wav}", "--is_long_audio=True", "--use_gpu=False",
                   "--print_timestamps=True", cwd=exported_corpus)
    times = parse_timestamp_lines(proc.stdout)
    final = re.search(r"最终结果，.*识别结果: (.*)$", proc.stdout, flags=re.MULTILINE).group(1)
    assert times and "".join(text for _, _, text in times) == final.replace("，", "")
    assert all(0 <= start <= end <= duration for start, end, _ in times)
    assert [start for start, _, _ in times] == sorted(start for start, _, _ in times)
    assert times[-1][0] > duration / 2  # the second copy's words are placed in the second half

    # each segment's times are its own decoding's times shifted by where the segment starts
    predictor = Predictor(str(exported_corpus / "models/deepspeech2/infer"), use_gpu=False)
    decoder = build_decoder(DecodeOptions(), predictor.vocabulary)
    long_samples = np.concatenate([samples, np.zeros(2 * sample_rate, np.float32), samples])
    segments = transcribe_segments(predictor, long_samples, decoder, True, long_audio=True)
    assert len(segments) == 2 and segments[1].start_ms > 1000 * len(samples) / sample_rate
    for segment in segments:
        first, last = (round(segment.start_ms * sample_rate / 1000), round(segment.end_ms * sample_rate / 1000))
        alone = transcribe_segments(predictor, long_samples[first:last], decoder, True, long_audio=False)[0]
        assert segment.timestamps == tuple(Timestamp(t.text, t.start_ms + segment.start_ms, t.end_ms + segment.start_ms)
                                           for t in alone.timestamps)


@pytest.fixture(scope="module")
def server(exported_corpus):
    from test_server import LIMITS, running_server

    with running_server(*LIMITS, cwd=exported_corpus) as (url, _, _):
        yield url, exported_corpus


def check_times(answer: dict, duration_s: float) -> list[dict]:
    times = answer["timestamps"]
    assert "".join(t["text"] for t in times) == answer["result"].replace("，", "")
    assert all(0 <= t["start_ms"] <= t["end_ms"] <= 1000 * duration_s for t in times)
    assert [t["start_ms"] for t in times] == sorted(t["start_ms"] for t in times)
    return times


def test_server_answers_carry_timestamps_when_asked(server, tmp_path):
    import json
    import uuid
    import urllib.request

    from test_server import clips, post_audio

    url, root = server
    clip = clips(root, 1)[0]
    samples, sample_rate = soundfile.read(clip, dtype="int16")
    status, plain = post_audio(url + "/recognition", clip.read_bytes())
    assert status == 200 and "timestamps" not in plain  # PPASR's answer unless asked
    status, asked = post_audio(url + "/recognition?timestamps=true", clip.read_bytes())
    assert status == 200 and asked["result"] == plain["result"] and asked["result"]
    single = check_times(asked, len(samples) / sample_rate)

    # the form field, on long audio: the second copy's times are offset by where its segment starts
    long_wav = tmp_path / "long.wav"
    soundfile.write(long_wav, np.concatenate([samples, np.zeros(2 * sample_rate, np.int16), samples]), sample_rate)
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"timestamps\"\r\n\r\ntrue\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n\r\n").encode() \
        + long_wav.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url + "/recognition_long_audio", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        answer = json.loads(reply.read())
    times = check_times(answer, 2 * len(samples) / sample_rate + 2)
    second = [t for t in times if t["start_ms"] > 1000 * (len(samples) / sample_rate + 1)]
    assert second and abs(second[0]["start_ms"] - 1000 * (len(samples) / sample_rate + 2) - single[0]["start_ms"]) < 300


def test_websocket_start_message_asks_for_timestamps(server):
    import json

    from websockets.sync.client import connect

    from test_server import CHUNK_BYTES, pcm16, post_audio, clips, ws_url

    url, root = server
    clip = clips(root, 1)[0]
    pcm = pcm16(clip)
    _, expected = post_audio(url + "/recognition?timestamps=true", clip.read_bytes())
    with connect(ws_url(url), open_timeout=30) as ws:
        ws.send(json.dumps({"timestamps": True}))
        partials = []
        for start in range(0, len(pcm), CHUNK_BYTES):
            ws.send(pcm[start:start + CHUNK_BYTES])
            partials.append(json.loads(ws.recv(timeout=30)))
        ws.send(json.dumps({"end": True}))
        final = json.loads(ws.recv(timeout=60))
        assert final["is_end"] and final["timestamps"] == expected["timestamps"]
        assert all("timestamps" in p for p in partials) and any(p["timestamps"] for p in partials)
        check_times(partials[-1], len(pcm) / 32000)
        ws.send(json.dumps({"timestamps": False}))  # and off again, for the next utterance
        ws.send(pcm[:CHUNK_BYTES])
        assert "timestamps" not in json.loads(ws.recv(timeout=30))
        ws.send(json.dumps({"timestamps": "yes"}))
        answer = json.loads(ws.recv(timeout=30))
        assert answer["code"] == 4 and "timestamps" in answer["msg"]
