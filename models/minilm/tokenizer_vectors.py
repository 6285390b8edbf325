"""Writes all-MiniLM-L6-v2's tokenizer reference vectors for agiNet's own WordPiece tokenizer.

The reference is Hugging Face's `tokenizers` (the Rust library behind BertTokenizerFast, an
implementation independent of agiNet's) loading the model's own tokenizer.json, with its
truncation and padding (128 tokens) turned off. Ids exclude [CLS] and [SEP]. Run in the venv
scripts/peft_check/run.sh builds, after models/minilm/fetch.sh:

    scripts/peft_check/.venv/bin/python models/minilm/tokenizer_vectors.py \
        models/minilm/model/tokenizer.json tests/data/minilm_tokenizer.json
"""

import json
import sys
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer

TEXTS = [
    "",
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Remember that my sister's birthday is on March 3rd.",
    "unaffable tokenization embeddings",
    "HELLO World, THIS Is MiXeD CaSe!",
    "Wait... what?! (really) [yes] {no} <maybe> \"quoted\" 'single' `tick`",
    "a+b=c; x*y/z % 100 ^ 2 | ~w & @me #tag $5 \\path _under_",
    "3.14159 1,000,000 2024-01-15 10:30pm 42nd 0xDEADBEEF",
    "café naïve Ångström résumé façade Ünïcödé",
    "don't won't it's rock'n'roll state-of-the-art well—known – dash",
    "emoji 🙂👍🏽 and flags 🇫🇷 ❤️",
    "日本語のテキストと中文文本，还有标点。",
    "한국어 텍스트",
    "Привет, мир! Ёлка",
    "مرحبا بالعالم",
    "ΟΔΟΣ Σίσυφος",
    "İstanbul straße STRASSE ﬁne x² ①",
    "tabs\tand\nnewlines\r\nand\u000bvertical\u000cfeed\u0085next",
    "control\u0000chars\u0007here\u001b[0m and\ufffdreplacement\u200bzero\u00a0nbsp\u3000ideo",
    "repeated     spaces   between    words",
    "   leading and trailing spaces   ",
    "a" * 100,
    "a" * 101,
    "pneumonoultramicroscopicsilicovolcanoconiosis " + "x" * 120 + " end",
    "https://example.com/path/to/page?query=value&other=1#frag user@example.org",
    "[CLS] special [SEP] tokens [MASK] in [UNK] text [PAD] but [cls] lowercase is not",
    "combining e\u0301 and decomposed n\u0303, precomposed é ñ",
    "private use \ue000 unassigned \u0378 kept",
    "unknown ☃ symbols ♞ and ∑ math ≠",
]


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    tok = Tokenizer.from_file(str(src))
    tok.no_truncation()
    tok.no_padding()
    vectors = []
    for text in TEXTS:
        ids = tok.encode(text, add_special_tokens=False).ids
        vectors.append({"text": text, "ids": ids})
    out.write_text(json.dumps({
        "reference": f"tokenizers {tokenizers.__version__} from {src.parent.parent.name}/{src.parent.name}/{src.name}",
        "cls": tok.token_to_id("[CLS]"),
        "sep": tok.token_to_id("[SEP]"),
        "pad": tok.token_to_id("[PAD]"),
        "vectors": vectors,
    }, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
