#!/usr/bin/env bash
# ppasr demo, end to end on CPU: install → synthesise a Mandarin corpus (eSpeak NG) → create_data.py
# → train.py → build an in-domain LM → eval.py (greedy, then LM beam search). Works in demo_run/
# (or $PPASR_DEMO_DIR) and never touches your own dataset/ or models/.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${PPASR_DEMO_DIR:-$REPO/demo_run}"
NUM_SAMPLES="${PPASR_DEMO_SAMPLES:-5000}"
EPOCHS="${PPASR_DEMO_EPOCHS:-4}"
SECONDS=0

python3 -m pip install --quiet --disable-pip-version-check -r "$REPO/requirements.txt"
if [ -e "$WORK" ] && [ ! -e "$WORK/.ppasr_demo" ]; then
  echo "error: $WORK exists and is not a demo workspace; set PPASR_DEMO_DIR to another folder" >&2
  exit 1
fi
rm -rf "$WORK" && mkdir -p "$WORK" && touch "$WORK/.ppasr_demo" && cd "$WORK"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

echo "== 1/5 合成语音数据 (synthesise $NUM_SAMPLES Mandarin utterances) =="
python3 "$REPO/tools/generate_audio.py" --num_samples="$NUM_SAMPLES" --seed=0 --language=zh --grammar=demo --name=demo

echo "== 2/5 create_data.py =="
python3 "$REPO/create_data.py" --feature_method=fbank --num_workers=2 --num_samples=1000
python3 - <<'PY'
import json
train = {json.loads(l)["text"] for l in open("dataset/manifest.train", encoding="utf-8")}
test = [json.loads(l)["text"] for l in open("dataset/manifest.test", encoding="utf-8")]
assert not train & set(test), "a test sentence occurs in training"
print(f"test: {len(test)} utterances, none of their sentences occurs in the {len(train)} training sentences")
PY

echo "== 3/5 train.py =="
python3 "$REPO/train.py" --num_epoch="$EPOCHS" --batch_size=8 --learning_rate=2e-3 --lr_gamma=0.9 \
    --cnn_size=16 --num_rnn_layers=2 --rnn_size=256 --num_workers=1 --augment_conf_path=None --log_interval=50

echo "== 4/5 tools/build_lm.py (character 4-gram from the training transcripts only) =="
python3 "$REPO/tools/build_lm.py" --manifest dataset/manifest.train --output lm/demo.arpa

echo "== 5/5 eval.py =="
MODEL=(--resume_model="models/deepspeech2/epoch_$EPOCHS/" --cnn_size=16 --num_rnn_layers=2 --rnn_size=256
       --num_workers=1 --result_path=eval_greedy.jsonl)
python3 "$REPO/eval.py" "${MODEL[@]}" --decoder=ctc_greedy | tee eval_greedy.log
python3 "$REPO/eval.py" "${MODEL[@]}" --decoder=ctc_beam_search --lang_model_path=lm/demo.arpa --alpha=1.1513 --beta=1.5 \
    --num_proc_bsearch=2 --result_path=eval_lm.jsonl | tee eval_lm.log

greedy=$(grep -o 'cer: [0-9.]*' eval_greedy.log | tail -1 | cut -d' ' -f2)
lm=$(grep -o 'cer: [0-9.]*' eval_lm.log | tail -1 | cut -d' ' -f2)
echo "======================================================================"
echo "demo finished in $((SECONDS / 60)) min $((SECONDS % 60)) s (workspace: $WORK)"
echo "final test CER (sentences never seen in training): greedy $greedy, with in-domain LM $lm"
echo "======================================================================"
