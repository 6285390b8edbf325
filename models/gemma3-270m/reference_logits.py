"""Writes reference logits of Gemma 3 270M for agiNet's own decoder to be checked against.

transformers loads the same GGUF (it dequantizes every tensor to float32) into its Gemma 3
implementation, an independent one; for a few fixed prompts this script keeps, at every
position, the logits of a fixed set of token ids (the prompt's own tokens, the reference's top
ten, and ids spread over the vocabulary), which is small enough to commit and enough to catch a
wrong layer. Run in a venv with torch, transformers and gguf, e.g. the one
scripts/peft_check/run.sh builds:

    scripts/peft_check/.venv/bin/python models/gemma3-270m/reference_logits.py \
        models/gemma3-270m/gemma-3-270m-q4_k_m.gguf tests/data/gemma3_logits.json
"""

import json
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "The capital of France is",
    "<start_of_turn>user\nReverse the word: garden<end_of_turn>\n<start_of_turn>model\n",
    "def add(a, b):\n    return",
]
SPREAD = list(range(0, 262144, 4099))


def main() -> None:
    gguf, out = Path(sys.argv[1]), Path(sys.argv[2])
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, torch_dtype=torch.float32
    )
    model.eval()
    cases = []
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = tok.encode(prompt)  # with BOS
            logits = model(torch.tensor([ids])).logits[0]
            top = torch.topk(logits[-1], 10).indices.tolist()
            keep = sorted(set(ids) | set(top) | set(SPREAD))
            cases.append({
                "prompt": prompt,
                "tokens": ids,
                "ids": keep,
                "logits": [[round(float(v), 5) for v in row[keep]] for row in logits],
                "top10_last": top,
            })
    out.write_text(json.dumps({
        "reference": f"transformers {__import__('transformers').__version__} "
                     f"torch {torch.__version__}, {gguf.name} dequantized to float32",
        "cases": cases,
    }) + "\n")


if __name__ == "__main__":
    main()
