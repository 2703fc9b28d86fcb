"""Edit distance and CER against cases worked out by hand."""
from __future__ import annotations

import pytest

from ppasr.train.metrics import char_errors, corpus_cer, edit_distance


@pytest.mark.parametrize("ref, hyp, distance", [
    ("", "", 0),
    ("abc", "", 3),
    ("", "abc", 3),
    ("abc", "abc", 0),
    ("kitten", "sitting", 3),  # 2 substitutions + 1 insertion
    ("intention", "execution", 5),
    ("flaw", "lawn", 2),
    ("abc", "acb", 2),  # a swap is two edits
    ("今天天气很好", "今天天气很好", 0),
    ("今天天气很好", "今天气很好", 1),  # one deletion
    ("打开客厅的灯", "打开卧室的灯", 2),  # two substitutions
    ("关灯", "请把灯关掉", 4),
])
def test_edit_distance_known_cases(ref, hyp, distance):
    assert edit_distance(ref, hyp) == distance
    assert edit_distance(hyp, ref) == distance


def test_char_errors_ignore_spaces_and_count_reference_characters():
    assert char_errors("打开 客厅 的灯", "打开客厅的灯") == (0, 6)
    assert char_errors("turn on", "turnoff") == (2, 6)
    assert char_errors("今天", "") == (2, 2)


def test_corpus_cer_is_total_edits_over_total_characters():
    # a short utterance all wrong and a long one all right: PPASR's mean of per-utterance CERs
    # would say 0.5; the corpus CER is 2 errors in 12 characters
    pairs = [("关灯", "开门"), ("明天早上七点叫我起床", "明天早上七点叫我起床")]
    assert corpus_cer(pairs) == pytest.approx(2 / 12)
    assert corpus_cer([("a", "abc")]) == pytest.approx(2.0)  # insertions can push CER above 1
    assert corpus_cer([]) == 0.0
