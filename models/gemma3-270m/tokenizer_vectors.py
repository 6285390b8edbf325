"""Writes the Gemma 3 tokenizer's reference vectors for agiNet's own SentencePiece tokenizer.

The reference is transformers' GemmaTokenizer built from the same GGUF's metadata (an
implementation independent of agiNet's). Run in a venv with transformers and gguf, e.g. the one
scripts/peft_check/run.sh builds:

    scripts/peft_check/.venv/bin/python models/gemma3-270m/tokenizer_vectors.py \
        models/gemma3-270m/gemma-3-270m-q4_k_m.gguf tests/data/gemma3_tokenizer.json
"""

import json
import sys
from pathlib import Path

from transformers import AutoTokenizer

TEXTS = [
    "Hello world",
    " leading space",
    "   three leading spaces and trailing  ",
    "naïve café, Ünïcödé façade",
    "日本語のテキストと中文文本",
    "emoji 🙂👍🏽 and flags 🇫🇷",
    "a\n\nb\tc\r\nd",
    "<start_of_turn>user\nReverse the word: cat<end_of_turn>\n<start_of_turn>model\ntac<end_of_turn>",
    "reverse: abc -> cba",
    "x = f(y) + 2 * z; // code? {\"json\": [1, 2.5e-3]}",
    "private use \ue000 and unassigned \u0378 fall back to bytes",
    "ÅÆØ åæø ß ẞ İı",
    "",
    "The quick brown fox jumps over the lazy dog. " * 3,
]


def main() -> None:
    gguf, out = Path(sys.argv[1]), Path(sys.argv[2])
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    vectors = []
    for text in TEXTS:
        ids = tok.encode(text, add_special_tokens=False)
        vectors.append({"text": text, "ids": ids})
    out.write_text(json.dumps({
        "reference": f"transformers {__import__('transformers').__version__} GemmaTokenizer from {gguf.name}",
        "add_bos": True,
        "bos": tok.bos_token_id,
        "vectors": vectors,
    }, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
