#!/usr/bin/env bash
# ppasr demo, end to end on CPU: install → synthesise a Mandarin corpus (eSpeak NG) → create_data.py
# → train.py → build an in-domain LM → eval.py (greedy, then LM beam search) on two test sets:
# in-distribution (training voices, new sentences) and unseen (held-out voices, sentence templates,
# rates and pitches). Works in demo_run/ (or $PPASR_DEMO_DIR) and never touches your own dataset/ or models/.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${PPASR_DEMO_DIR:-$REPO/demo_run}"
NUM_SAMPLES="${PPASR_DEMO_SAMPLES:-8000}"
EPOCHS="${PPASR_DEMO_EPOCHS:-4}"
SECONDS=0

python3 -m pip install --quiet --disable-pip-version-check -r "$REPO/requirements.txt"
if [ -e "$WORK" ] && [ ! -e "$WORK/.ppasr_demo" ]; then
  echo "error: $WORK exists and is not a demo workspace; set PPASR_DEMO_DIR to another folder" >&2
  exit 1
fi
rm -rf "$WORK" && mkdir -p "$WORK" && touch "$WORK/.ppasr_demo" && cd "$WORK"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

echo "== 1/5 合成语音数据 (synthesise $NUM_SAMPLES training utterances, 100 test, 200 unseen-voice test, 50 noise clips) =="
GENERATE=(python3 "$REPO/tools/generate_audio.py" --seed=0 --language=zh --grammar=demo --name=demo)
"${GENERATE[@]}" --num_samples="$NUM_SAMPLES" --split=train --noise_clips=50
"${GENERATE[@]}" --num_samples=100 --split=test
"${GENERATE[@]}" --num_samples=200 --split=unseen

echo "== 2/5 create_data.py =="
python3 "$REPO/create_data.py" --feature_method=fbank --num_workers=2 --num_samples=1000
python3 - <<'PY'
import json
train = {json.loads(l)["text"] for l in open("dataset/manifest.train", encoding="utf-8")}
tests = {"test": [], "unseen": []}
for line in open("dataset/manifest.test", encoding="utf-8"):
    tests["unseen" if "/demo_unseen/" in json.loads(line)["audio_filepath"] else "test"].append(line)
for name, lines in tests.items():
    with open(f"dataset/manifest.{name}", "w", encoding="utf-8") as out:
        out.writelines(lines)
    assert not train & {json.loads(l)["text"] for l in lines}, f"a {name} sentence occurs in training"
print(f"manifest.test: {len(tests['test'])} utterances (training voices), manifest.unseen: {len(tests['unseen'])} "
      f"(held-out voices and templates); none of their sentences occurs in the {len(train)} training sentences")
PY

echo "== 3/5 train.py =="
python3 "$REPO/train.py" --num_epoch="$EPOCHS" --batch_size=8 --learning_rate=2e-3 --lr_gamma=0.9 \
    --cnn_size=16 --num_rnn_layers=2 --rnn_size=256 --num_workers=1 --log_interval=50 \
    --augment_conf_path="$REPO/conf/augmentation_demo.json"

echo "== 4/5 tools/build_lm.py (character 4-gram from the training transcripts only) =="
python3 "$REPO/tools/build_lm.py" --manifest dataset/manifest.train --output lm/demo.arpa

echo "== 5/5 eval.py =="
MODEL=(--resume_model="models/deepspeech2/epoch_$EPOCHS/" --num_workers=1)  # sizes come from the checkpoint
LM=(--decoder=ctc_beam_search --lang_model_path=lm/demo.arpa --alpha=1.1513 --beta=1.5 --num_proc_bsearch=2)
for split in test unseen; do
  python3 "$REPO/eval.py" "${MODEL[@]}" --test_manifest="dataset/manifest.$split" --decoder=ctc_greedy \
      --result_path="eval_${split}_greedy.jsonl" | tee "eval_${split}_greedy.log"
  python3 "$REPO/eval.py" "${MODEL[@]}" --test_manifest="dataset/manifest.$split" "${LM[@]}" \
      --result_path="eval_${split}_lm.jsonl" | tee "eval_${split}_lm.log"
done

cer() { grep -o 'cer: [0-9.]*' "$1" | tail -1 | cut -d' ' -f2; }
echo "======================================================================"
echo "demo finished in $((SECONDS / 60)) min $((SECONDS % 60)) s (workspace: $WORK)"
echo "test CER, training voices, new sentences:             greedy $(cer eval_test_greedy.log), with in-domain LM $(cer eval_test_lm.log)"
echo "test CER, unseen voices and sentence templates:       greedy $(cer eval_unseen_greedy.log), with in-domain LM $(cer eval_unseen_lm.log)"
echo "======================================================================"
