"""The statistics report of a built directory (``bert-jax data inspect DIR``).

Counts, a length histogram, the NSP balance, masking rates (fraction of
ordinary tokens masked, the [MASK]/random/kept split, special tokens masked)
and a few decoded examples with their masks shown. Dynamic builds are shown
with the loader's epoch-0 masks (seed 0).
"""

from __future__ import annotations

import math

import numpy as np

from data_pipeline import masking, shards
from data_pipeline.loader import read_shard_vocab


def collect(directory: str, max_examples: int | None = None) -> tuple[dict, dict[str, np.ndarray], list[str]]:
    """Loads (up to ``max_examples``) examples of all shards, masked; returns (manifest, fields, vocab list)."""
    directory, manifest = shards.load_manifest(directory)
    tokens = list(read_shard_vocab(directory, manifest))
    parts: dict[str, list[np.ndarray]] = {}
    taken = 0
    for info in manifest["shards"]:
        if max_examples is not None and taken >= max_examples:
            break
        fields = shards.open_shard(directory, info)
        n = info["num_examples"] if max_examples is None else min(info["num_examples"], max_examples - taken)
        for name, arr in fields.items():
            parts.setdefault(name, []).append(np.asarray(arr[:n]))
        taken += n
    data = {k: np.concatenate(v) for k, v in parts.items()}
    if manifest["masking"] == "dynamic":
        vocab = masking.VocabInfo.from_vocab({t: i for i, t in enumerate(tokens)})
        cfg = masking.MaskingConfig(manifest["masked_lm_prob"], manifest["max_predictions_per_seq"], manifest["whole_word_masking"])
        data["original_ids"] = data["input_ids"]
        keys = masking.example_keys(masking.seed_key(0, 0, 3), np.arange(len(data["input_ids"])))
        data.update(masking.mask_batch(data["input_ids"], keys, vocab, cfg))
    else:
        # Recover the unmasked ids from the recorded targets.
        orig = data["input_ids"].copy()
        r, c = np.nonzero(data["masked_lm_weights"] > 0)
        orig[r, data["masked_lm_positions"][r, c]] = data["masked_lm_ids"][r, c]
        data["original_ids"] = orig
    return manifest, data, tokens


def masking_stats(data: dict[str, np.ndarray], tokens: list[str]) -> dict[str, float]:
    """Rates over all examples; ``ordinary`` = tokens that may be masked (not special, not [unused])."""
    vocab = masking.VocabInfo.from_vocab({t: i for i, t in enumerate(tokens)})
    w = data["masked_lm_weights"] > 0
    r, c = np.nonzero(w)
    pos = data["masked_lm_positions"][r, c]
    target = data["masked_lm_ids"][r, c]
    shown = data["input_ids"][r, pos]
    num_ordinary = int(vocab.ordinary[data["original_ids"]].sum())
    num_masked = int(w.sum())
    return {
        "num_ordinary_tokens": num_ordinary,
        "num_masked": num_masked,
        "masked_fraction": num_masked / max(num_ordinary, 1),
        "mask_token_fraction": float(np.mean(shown == vocab.mask_id)) if num_masked else 0.0,
        "random_token_fraction": float(np.mean((shown != vocab.mask_id) & (shown != target))) if num_masked else 0.0,
        "kept_fraction": float(np.mean(shown == target)) if num_masked else 0.0,
        "special_targets": int((~vocab.ordinary[target]).sum()),
        "special_replacements": int((~vocab.ordinary[shown] & (shown != vocab.mask_id)).sum()),
        "capped_examples": int((w.sum(1) == w.shape[1]).sum()),
    }


def decode(ids: np.ndarray, original: np.ndarray, tokens: list[str], pad_id: int, mask_id: int) -> str:
    """Tokens with masks shown: ``[MASK](orig)``, ``{random->orig}``, ``<kept>``; ``##`` pieces joined."""
    out = []
    for now, was in zip(ids.tolist(), original.tolist()):
        if now == pad_id and was == pad_id:
            break
        t = tokens[was]
        if now == mask_id and was != mask_id:
            t = f"[MASK]({t})"
        elif now != was:
            t = f"{{{tokens[now]}->{t}}}"
        out.append(t)
    return " ".join(out).replace(" ##", "")


def report(directory: str, num_decoded: int = 3, max_examples: int | None = None) -> str:
    manifest, data, tokens = collect(directory, max_examples)
    vocab = {t: i for i, t in enumerate(tokens)}
    n = len(data["input_ids"])
    lengths = data["attention_mask"].sum(1)
    nsp = data["next_sentence_label"].astype(np.int64)
    stats = masking_stats(data, tokens)
    lines = [
        f"directory        {directory}",
        f"examples         {n} (manifest: {manifest['num_examples']}) in {manifest['num_shards']} shard(s), "
        f"{manifest['num_documents']} documents",
        f"options          max_seq_length={manifest['max_seq_length']} max_predictions_per_seq="
        f"{manifest['max_predictions_per_seq']} masked_lm_prob={manifest['masked_lm_prob']} "
        f"masking={manifest['masking']} whole_word={manifest['whole_word_masking']} seed={manifest['seed']}",
        f"vocab            {manifest['vocab_size']} tokens, sha256 {manifest['vocab_hash'][:16]}...",
        "",
        f"NSP random-next  {nsp.mean():.4f} (sd of a fair coin: {0.5 / math.sqrt(max(n, 1)):.4f})",
        f"random B from another document: {int((data['b_document'] != data['source_document'])[nsp == 1].sum())}"
        f" of {int(nsp.sum())}",
        f"masked fraction  {stats['masked_fraction']:.4f} of {stats['num_ordinary_tokens']} ordinary tokens "
        f"({stats['capped_examples']} examples at the cap)",
        f"masked as        [MASK] {stats['mask_token_fraction']:.4f}  random {stats['random_token_fraction']:.4f}"
        f"  kept {stats['kept_fraction']:.4f}",
        f"special tokens   masked {stats['special_targets']}, inserted as random {stats['special_replacements']}",
        "",
        "length histogram (tokens incl. [CLS]/[SEP]):",
    ]
    edges = np.linspace(0, manifest["max_seq_length"], 9).astype(int)
    hist, _ = np.histogram(lengths, bins=edges)
    for lo, hi, count in zip(edges[:-1], edges[1:], hist):
        bar = "#" * int(round(40 * count / max(hist.max(), 1)))
        lines.append(f"  {lo:4d}-{hi:<4d} {count:8d} {bar}")
    lines.append("")
    for i in range(min(num_decoded, n)):
        lines.append(f"example {i} (next_sentence_label={int(nsp[i])}, document {int(data['source_document'][i])}):")
        lines.append("  " + decode(data["input_ids"][i], data["original_ids"][i], tokens, vocab["[PAD]"], vocab["[MASK]"]))
    return "\n".join(lines)
