"""Loads a model folder written by `minimax train` with Hugging Face transformers and compares its logits
with `minimax forward` output (run on the GPU machine, where transformers is installed).

usage: python tools/check_transformers_load.py MODEL_DIR INPUT.json OURS.npy
"""
import json
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM

model_dir, input_path, ours_path = sys.argv[1:4]
ids = torch.tensor(json.load(open(input_path))["input_ids"])
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
model.eval()
with torch.no_grad():
    theirs = model(input_ids=ids).logits.float().numpy()
ours = np.load(ours_path)
err = np.linalg.norm(ours - theirs) / np.linalg.norm(theirs)
same_argmax = float((ours.argmax(-1) == theirs.argmax(-1)).mean())
print(f"transformers loaded {model_dir}: logits {theirs.shape}, relative error vs minimax forward {err:.3e}, argmax agreement {same_argmax:.4f}")
sys.exit(0 if err <= 1e-4 else 1)
