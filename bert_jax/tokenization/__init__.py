"""BERT WordPiece tokenizers with the Hugging Face API.

`BertTokenizerFast` runs on the Rust `tokenizers` backend; `BertTokenizer` is
the same algorithm in pure Python. Both give the ids of the corresponding
Hugging Face tokenizer. Importing this package never imports JAX (only
`return_tensors="jax"` does, lazily).
"""

from bert_jax.tokenization.base import BertTokenizerBase, clean_up_tokenization
from bert_jax.tokenization.encoding import BatchEncoding
from bert_jax.tokenization.fast import BertTokenizerFast
from bert_jax.tokenization.slow import BertTokenizer
from bert_jax.tokenization.vocab_file import load_vocab

__all__ = [
    "BatchEncoding",
    "BertTokenizer",
    "BertTokenizerBase",
    "BertTokenizerFast",
    "clean_up_tokenization",
    "load_vocab",
]
