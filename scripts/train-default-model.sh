#!/usr/bin/env bash
# Reproduces models/default: a small MiniMax-01 architecture model (7 lightning : 1 softmax layers, MoE) with its own
# byte-level BPE tokenizer, trained on the King James Bible from Debian's bible-kjv-text package.
# Usage: scripts/train-default-model.sh [STEPS]   (run from the repository root; needs apt-get, i.e. root, on Debian)
set -euo pipefail
STEPS="${1:-400}"
THREADS="${THREADS:-2}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${WORK:-$ROOT/artifacts/default-model}"
OUT="${OUT:-$ROOT/models/default}"
mkdir -p "$WORK"

# 1. The text: Debian's bible-kjv-text holds the KJV in the `bible` program's compressed format; `bible` prints it.
if ! command -v bible >/dev/null; then apt-get install -y bible-kjv-text; fi
bible "Gen1:1-Rev22:21" > "$WORK/kjv-raw.txt"
# One chapter per paragraph (blank line between chapters), one verse per line, without headings and verse numbers.
awk '
  /^$/ { blank = 1; next }
  blank && /^[0-9A-Z][A-Za-z0-9 ]* [0-9]+$/ { if (verse != "") print verse; verse = ""; if (started) print ""; started = 1; blank = 0; next }
  /^ +[0-9]+ / { if (verse != "") print verse; sub(/^ +[0-9]+ /, ""); verse = $0; blank = 0; next }
  { verse = verse " " $0; blank = 0 }
  END { if (verse != "") print verse }
' "$WORK/kjv-raw.txt" > "$WORK/kjv.txt"

BIN="${MINIMAX_BIN:-$ROOT/artifacts/minimax-train-bin}"
MINIMAX=(dotnet "$BIN/minimax.dll")
if [ ! -f "$BIN/minimax.dll" ]; then
  dotnet publish "$ROOT/src/MiniMaxSharp.Cli" -c Release -o "$BIN" >/dev/null
fi

# 2. The tokenizer: byte-level BPE, 4096 tokens, the three specials first (ids 0, 1, 2).
"${MINIMAX[@]}" tokenizer train --input "$WORK/kjv.txt" --vocab-size 4096 --output "$WORK/tokenizer" \
  --special-tokens "<|endoftext|>" "<|im_start|>" "<|im_end|>"

# 3. The model: chapters are documents (every 20th held out), packed into rows of 256 tokens.
cp "$ROOT/scripts/default-model-config.json" "$WORK/config.json"
"${MINIMAX[@]}" train --config "$WORK/config.json" --data "$WORK/kjv.txt" --paragraphs --tokenizer "$WORK/tokenizer/tokenizer.json" \
  --out "$WORK/run" --steps "$STEPS" --seq-len 256 --batch-rows 4 --lr 3e-3 --min-lr 3e-4 --warmup 50 --weight-decay 0.1 --clip 1.0 \
  --seed 1 --hold-out-every 20 --eval-every 100 --eval-rows 16 --save-every 100 --threads "$THREADS" --save-bf16 ${RESUME:+--resume}

# 4. The held-out perplexity over every held-out chapter, and the model folder.
mkdir -p "$OUT"
cp "$WORK/run/config.json" "$WORK/run/model.safetensors" "$WORK/run/tokenizer.json" "$WORK/run/loss_curve.png" "$OUT/"
cp "$ROOT/scripts/default-model-tokenizer_config.json" "$OUT/tokenizer_config.json"
awk 'BEGIN { RS = ""; ORS = "\n\n" } NR % 20 == 0' "$WORK/kjv.txt" > "$WORK/held-out.txt"
"${MINIMAX[@]}" perplexity --model "$OUT" --text-file "$WORK/held-out.txt" --paragraphs --window 256 --threads "$THREADS" | tee "$WORK/perplexity.txt"
