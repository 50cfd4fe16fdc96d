"""The shard builder: partition documents to shards, then build shards in parallel, resumably.

1. *Partition*: stream every document once; a hash of ``(seed, document
   index)`` picks its shard; documents of the shards still to build are
   appended to per-shard bucket files (JSON lines) under ``DIR/.partial``.
   Memory is constant in the corpus size.
2. *Build*: each shard is independent: read its bucket, tokenize, make NSP
   pairs (``instances``), assemble fixed-shape rows, mask them (static mode),
   write the shard atomically (``shards``). Shards run in worker processes;
   every random choice comes from generators keyed by ``(seed, shard)``, so
   the bytes do not depend on the worker count or on which machine built them.
3. *Manifest*: once every shard exists, ``manifest.json`` lists them all.

Re-running the same command builds only missing shards, after checking the
ones already there against their sha256 (a damaged shard is rebuilt, and the
log says so). A directory built with other options, or from inputs that have
changed since (``build_options.json`` records each input's path, size, mtime
and sha256), is refused naming what differs; ``--overwrite`` deletes only the
files the previous build wrote (its shards, sidecars, manifest, build state).
"""

from __future__ import annotations

import dataclasses
import errno
import glob
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time

import numpy as np

from bert_jax.console import progress_bar
from bert_jax.text_files import read_text_lines
from data_pipeline import instances, masking, shards, sources, tokens
from data_pipeline.tokens import load_tokenizer, vocab_tokens

logger = logging.getLogger(__name__)
PARTIAL = ".partial"
_WARN_LIMIT = 5  # locations shown in a warning
_LOCATION_LIMIT = 1000  # locations kept per shard in the sidecar and manifest


class BuildError(ValueError):
    """A build that cannot start or continue: the message says what to do."""


class OutputError(BuildError):
    """``--output`` cannot be used as the output directory (a file, not writable)."""


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """Everything that determines the built bytes (worker count and shard range do not)."""

    inputs: tuple[str, ...]
    vocab_file: str
    input_format: str = "bert"
    do_lower_case: bool = True
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    dupe_factor: int = 5
    short_seq_prob: float = 0.1
    num_shards: int = 1
    seed: int = 12345
    whole_word_masking: bool = False
    dynamic_masking: bool = False
    on_invalid_utf8: str = "skip"
    text_column: str = "text"
    dataset_split: str = "train"

    def validate(self) -> None:
        problems = []
        if self.max_seq_length < 8:
            problems.append(f"--max-seq-length must be >= 8, got {self.max_seq_length}")
        if not 0 < self.masked_lm_prob < 1:
            problems.append(f"--masked-lm-prob must be in (0, 1), got {self.masked_lm_prob}")
        if self.max_predictions_per_seq < 1:
            problems.append(f"--max-predictions-per-seq must be >= 1, got {self.max_predictions_per_seq}")
        if self.dupe_factor < 1:
            problems.append(f"--dupe-factor must be >= 1, got {self.dupe_factor}")
        if not 0 <= self.short_seq_prob <= 1:
            problems.append(f"--short-seq-prob must be in [0, 1], got {self.short_seq_prob}")
        if self.num_shards < 1:
            problems.append(f"--num-shards must be >= 1, got {self.num_shards}")
        if problems:
            raise BuildError("; ".join(problems))

    def effective(self) -> "BuildOptions":
        """The options with ``max_predictions_per_seq`` capped at ``max_seq_length - 3``.

        A row ``[CLS] A [SEP] B [SEP]`` holds at most ``max_seq_length - 3``
        maskable tokens, so a larger cap only widens the mask arrays with
        padding. Warns once when it caps.
        """
        most = self.max_seq_length - 3
        if self.max_predictions_per_seq <= most:
            return self
        logger.warning(
            "--max-predictions-per-seq %d exceeds the %d maskable tokens of a %d-token row "
            "(max_seq_length - 3); using %d (recorded in the manifest: set the pretraining config's "
            "data.max_predictions_per_seq to %d)",
            self.max_predictions_per_seq, most, self.max_seq_length, most, most,
        )
        return dataclasses.replace(self, max_predictions_per_seq=most)

    def recorded(self) -> dict:
        """The options as stored in ``build_options.json`` (the vocab by content, not path)."""
        out = dataclasses.asdict(self)
        out["inputs"] = list(self.inputs)
        out.pop("vocab_file")
        return out


def shard_of(seed: int, document_index: int, num_shards: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{document_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % num_shards


def _bucket_path(output: str, index: int) -> str:
    return os.path.join(output, PARTIAL, f"bucket-{index:05d}.jsonl")


def _remove_buckets(output: str, todo: list[int]) -> None:
    """Remove this build's bucket files (a built shard removed its own; these are the rest, of a
    build that stopped) and ``.partial`` once empty. Only this build's: machines building other
    shard ranges into the same folder may still be writing theirs. A rerun partitions again."""
    for i in todo:
        for path in (_bucket_path(output, i), _bucket_path(output, i) + ".tmp"):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
    try:
        os.rmdir(os.path.join(output, PARTIAL))
    except OSError:  # absent, or another machine's buckets are still there
        pass


def partition(opts: BuildOptions, output: str, todo: list[int], buffer_bytes: int = 16 << 20) -> dict[int, int]:
    """Streams all documents into bucket files for the shards in ``todo``; returns docs per shard.

    Lines are buffered per shard and appended when the buffers reach
    ``buffer_bytes``: memory stays bounded and only one file is open at a
    time, however many shards there are.
    """
    wanted = set(todo)
    for i in todo:
        # (again for each: a machine building other shards into this folder removes .partial once
        # it is empty, which it is until this machine's first bucket exists)
        os.makedirs(os.path.join(output, PARTIAL), exist_ok=True)
        open(_bucket_path(output, i) + ".tmp", "w").close()
    buffers: dict[int, list[str]] = {i: [] for i in todo}
    counts = {i: 0 for i in todo}
    total = buffered = 0

    def flush() -> None:
        for i, lines in buffers.items():
            if lines:
                with open(_bucket_path(output, i) + ".tmp", "a", encoding="utf-8") as f:
                    f.writelines(lines)
                lines.clear()

    docs = sources.iter_documents(
        opts.inputs,
        opts.input_format,
        on_invalid_utf8=opts.on_invalid_utf8,
        text_column=opts.text_column,
        dataset_split=opts.dataset_split,
    )
    for doc in progress_bar(docs, desc="partition", unit="doc", mininterval=2.0):
        total += 1
        s = shard_of(opts.seed, doc.index, opts.num_shards)
        if s in wanted:
            line = json.dumps([doc.index, doc.source, doc.sentences, doc.lines], ensure_ascii=False) + "\n"
            buffers[s].append(line)
            buffered += len(line)
            counts[s] += 1
            if buffered >= buffer_bytes:
                flush()
                buffered = 0
    flush()
    if total == 0:
        raise BuildError(f"no documents found in {list(opts.inputs)} (all files empty or unreadable)")
    for i in todo:
        os.replace(_bucket_path(output, i) + ".tmp", _bucket_path(output, i))
    logger.info("partitioned %d documents; %d go to the %d shard(s) being built", total, sum(counts.values()), len(todo))
    return counts


def _sentence_location(source: str, index: int, lines: list[int] | None) -> str:
    """``file:line`` of sentence ``index`` of the document at ``source``: its own line when the
    document has ``lines`` (``Document.lines``), else the document's ``source``."""
    if lines:
        return f"{source.rpartition(':')[0]}:{lines[index]}"
    return source


def tokenize_bucket(path: str, backend, max_tokens: int,
                    info: masking.VocabInfo) -> tuple[instances.TokenizedDocuments, dict]:
    """Reads a bucket and tokenizes it into flat arrays; returns the arrays and warning counts."""
    doc_index, doc_source, doc_lines, sentences, per_doc = [], [], [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            idx, source, sents, lines = json.loads(line)
            doc_index.append(idx)
            doc_source.append(source)
            doc_lines.append(lines)
            sentences.extend(sents)
            per_doc.append(len(sents))
    ids, lengths = tokens.tokenize_sentences(backend, sentences)
    # A literal "[SEP]" (etc.) in the text must not become a structural token.
    structural = np.isin(ids, [info.cls_id, info.sep_id, info.pad_id, info.mask_id])
    ids[structural] = info.unk_id
    # Drop sentences that tokenize to nothing, and documents left empty.
    sent_doc = np.repeat(np.arange(len(per_doc)), per_doc)
    keep = lengths > 0
    lengths, sent_doc = lengths[keep], sent_doc[keep]
    doc_sents = np.bincount(sent_doc, minlength=len(per_doc))
    stats = {
        "single_sentence_documents": int((doc_sents == 1).sum()),
        "long_sentences": int((lengths > max_tokens).sum()),
        "special_tokens_in_text": int(structural.sum()),
    }
    # Locations go to the sidecar (and the manifest); the build warns once per kind at the end.
    stats["single_sentence_document_locations"] = [doc_source[d] for d in
                                                    np.flatnonzero(doc_sents == 1)[:_LOCATION_LIMIT]]
    position = np.concatenate([np.arange(n) for n in per_doc] or [np.zeros(0, np.int64)])[keep]
    long = lengths > max_tokens
    stats["long_sentence_locations"] = list(dict.fromkeys(  # once each (a document's, in other formats)
        _sentence_location(doc_source[d], int(i), doc_lines[d]) for d, i in zip(sent_doc[long], position[long])
    ))[:_LOCATION_LIMIT]
    present = doc_sents > 0
    docs = instances.TokenizedDocuments(
        tokens=ids,
        sentence_bounds=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        document_bounds=np.concatenate([[0], np.cumsum(doc_sents[present])]).astype(np.int64),
        document_index=np.asarray(doc_index, np.int64)[present],
    )
    return docs, stats


def build_shard(opts: BuildOptions, output: str, index: int, backend=None, info=None) -> dict:
    """Builds and writes one shard from its bucket; returns its sidecar."""
    if backend is None:
        backend, vocab, _ = load_tokenizer(opts.vocab_file, opts.do_lower_case)
        info = masking.VocabInfo.from_vocab(vocab, opts.vocab_file)
    docs, stats = tokenize_bucket(_bucket_path(output, index), backend, opts.max_seq_length - 3, info)
    try:
        pairs = instances.create_pairs(
            docs,
            instances.InstanceConfig(opts.max_seq_length, opts.short_seq_prob, opts.dupe_factor),
            np.random.default_rng([opts.seed, index, 1]),
        )
    except ValueError as err:
        raise BuildError(f"shard {index}: {err}") from None
    rows = instances.assemble(docs.tokens, pairs, opts.max_seq_length, info.cls_id, info.sep_id, info.pad_id)
    fields = {"input_ids": rows["input_ids"]}
    if not opts.dynamic_masking:
        cfg = masking.MaskingConfig(opts.masked_lm_prob, opts.max_predictions_per_seq, opts.whole_word_masking)
        keys = masking.example_keys(masking.seed_key(opts.seed, index, 2), np.arange(len(pairs)))
        # Chunks bound the temporaries; the counter-based keys make chunking invisible.
        parts = [
            masking.mask_batch(rows["input_ids"][s : s + 4096], keys[s : s + 4096], info, cfg)
            for s in range(0, max(len(pairs), 1), 4096)
        ]
        for name in ("input_ids", "masked_lm_positions", "masked_lm_ids", "masked_lm_weights"):
            fields[name] = np.concatenate([p[name] for p in parts])
    fields["token_type_ids"] = rows["token_type_ids"]
    fields["attention_mask"] = rows["attention_mask"]
    fields["next_sentence_label"] = pairs.next_sentence_label
    fields["source_document"] = pairs.source_document
    fields["b_document"] = pairs.b_document
    sidecar = shards.write_shard(output, index, opts.num_shards, fields, {"num_documents": docs.num_documents, "warnings": stats})
    os.remove(_bucket_path(output, index))
    return sidecar


def _init_worker() -> None:
    # One tokenizer thread per worker process: the workers are the parallelism.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    # Ctrl-C reaches the whole process group: the parent alone stops the pool (no traceback per worker).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker(args) -> dict:
    opts, output, index = args
    return build_shard(opts, output, index)


def _prepare_output(output: str) -> None:
    """Creates ``output`` and proves it writable; ``OutputError`` says what is wrong with it."""
    if os.path.exists(output) and not os.path.isdir(output):
        raise OutputError(f"--output {output} is a file, not a directory; pass the path of a directory "
                          "(new or one this command built before)")
    try:
        os.makedirs(output, exist_ok=True)
        # A real write is the only reliable test (root ignores mode bits, not read-only mounts).
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=output)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        why = os.strerror(err.errno) if err.errno else str(err)
        hint = ("choose a writable directory or make it writable (e.g. chmod u+w)"
                if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else "choose another --output")
        raise OutputError(f"cannot write to --output {output} ({why}); {hint}") from None


def _read_record(output: str, overwrite: bool) -> dict | None:
    """The ``build_options.json`` an earlier build in ``output`` wrote; None when there is none, or
    when it is unreadable and ``overwrite`` (refused otherwise)."""
    path = os.path.join(output, shards.OPTIONS)
    if not os.path.exists(path):
        return None
    fix = "use a new --output directory, or pass --overwrite to rebuild it"
    try:
        old = shards.read_json(path, fix=fix)
        if not isinstance(old, dict):
            raise shards.ShardError(f"{path} is damaged (JSON of another shape, not an object); {fix}")
        return old
    except shards.ShardError:
        if not overwrite:
            raise
        return None


def _check_vocab_copy(output: str, tokens: list[str], vocab_file: str, overwrite: bool, old: dict | None) -> bool:
    """Whether ``output/vocab.txt`` must be (re)written with ``tokens`` (``--vocab``'s).

    Refuses one of other tokens that no earlier build here wrote (``old`` is that build's record;
    unless ``overwrite``): it was kept, so the shards were described by another vocabulary than the
    one that made them, and every later reader refused or misread them. ``--vocab`` itself, or a
    copy of its tokens with other line endings, stays.
    """
    path = os.path.join(output, shards.VOCAB)
    if not os.path.isfile(path):
        return True
    try:
        present = [token for _, token in read_text_lines(path)]
    except ValueError:  # not UTF-8 text: not --vocab's tokens, nor a copy any build wrote
        present = None
    if os.path.samefile(path, vocab_file) or present == tokens:
        return False
    if present is not None and (old or {}).get("vocab_hash") == shards.vocab_hash(present):
        return True  # an earlier build's copy: the options check compares (and cleans up) that build
    if overwrite:
        logger.warning("--overwrite: replacing %s, which is not the vocabulary of --vocab %s", path, vocab_file)
        return True
    raise OutputError(f"{path} exists and is not the vocabulary of --vocab {vocab_file} (no earlier build here wrote "
                      "it); move it out of the directory, use a new --output directory, or pass --overwrite to "
                      "replace it")


def _recorded_files(output: str, old: dict | None) -> list[str]:
    """Names of the files a previous build in ``output`` wrote (its build state and manifest name them)."""
    names = {shards.MANIFEST, shards.OPTIONS, shards.VOCAB}
    num_shards = (old or {}).get("options", {}).get("num_shards")
    manifest_path = os.path.join(output, shards.MANIFEST)
    manifest = None
    if os.path.exists(manifest_path):
        try:
            manifest = shards.read_json(manifest_path)
        except shards.ShardError:
            manifest = None
    if isinstance(num_shards, int):
        for i in range(num_shards):
            names.update(shards.shard_name(i, num_shards) + ext for ext in (".bin", ".json"))
    if isinstance(manifest, dict):
        for info in manifest.get("shards", []):
            names.update((info["file"], info["file"][: -len(".bin")] + ".json"))
    present = set(os.listdir(output))
    if old is None and manifest is None:
        # Neither record is readable: only names of exactly this format's shape.
        names.update(n for n in present if shards.is_shard_file(n))
    # Temporaries of those files (an interrupted atomic write) go too.
    names.update(n for n in present if "." in n and n.rsplit(".tmp-", 1)[0] in names)
    return sorted(n for n in names if n in present)


def _delete_previous_build(output: str, old: dict | None) -> None:
    names = _recorded_files(output, old)
    logger.warning("--overwrite: deleting %d file(s) of the previous build in %s (other files are kept)", len(names), output)
    # The manifest first, the build state last: a crash midway never leaves a complete-looking directory.
    order = sorted(names, key=lambda n: (n != shards.MANIFEST, n == shards.OPTIONS))
    for name in order:
        os.remove(os.path.join(output, name))
    shutil.rmtree(os.path.join(output, PARTIAL), ignore_errors=True)


def _check_options(opts: BuildOptions, output: str, vocab_digest: str, overwrite: bool, fingerprint: list[dict],
                   old: dict | None) -> None:
    """Refuses an output directory built with other options or other inputs (unless ``overwrite``);
    ``old`` is the record of the build there (``_read_record``)."""
    path = os.path.join(output, shards.OPTIONS)
    recorded = {"options": opts.recorded(), "vocab_hash": vocab_digest, "inputs": fingerprint}
    if os.path.exists(path):
        if old is not None:
            old_opts = {**old.get("options", {}), "vocab_hash": old.get("vocab_hash")}
            new_opts = {**recorded["options"], "vocab_hash": vocab_digest}
            diff = sorted(k for k in set(old_opts) | set(new_opts) if old_opts.get(k) != new_opts.get(k))
            details = [f"{k}: {old_opts.get(k)!r} -> {new_opts.get(k)!r}" for k in diff]
            if "inputs" not in old:
                details.append("the inputs were not fingerprinted by the build that wrote it")
            else:
                details += sources.changed_inputs(old["inputs"], fingerprint)
            if not details:
                if old != recorded:  # same files, only mtimes moved: keep the record current
                    shards.atomic_write_json(path, recorded)
                return
            if not [n for n in _recorded_files(output, old) if n not in (shards.OPTIONS, shards.VOCAB)]:
                # The earlier build stopped before its first shard (e.g. its inputs held no document):
                # nothing to protect, so this build starts as in a new directory.
                logger.info("%s holds no shard of an earlier build; building with the current options and inputs",
                            output)
                shutil.rmtree(os.path.join(output, PARTIAL), ignore_errors=True)
                if os.path.exists(os.path.join(output, shards.VOCAB)):  # perhaps of another vocabulary
                    os.remove(os.path.join(output, shards.VOCAB))
                shards.atomic_write_json(path, recorded)
                return
            if not overwrite:
                raise BuildError(
                    f"{output} already holds shards built with other options or inputs ({'; '.join(details)}); "
                    "restore the original inputs, use a new --output directory, "
                    "or pass --overwrite to delete those shards and rebuild from the current inputs"
                )
            logger.warning("--overwrite: %s was built with other options or inputs (%s)", output, "; ".join(details))
        _delete_previous_build(output, old)
    elif any(shards.is_shard_file(n) or n == shards.MANIFEST for n in os.listdir(output)):
        if not overwrite:
            raise BuildError(f"{output} holds shards but no {shards.OPTIONS}; use a new --output directory, "
                             "or pass --overwrite to delete them")
        _delete_previous_build(output, None)
    shards.atomic_write_json(path, recorded)


def write_manifest(opts: BuildOptions, output: str, vocab: dict, tokenizer_settings: dict, sidecars: list[dict],
                   requested_max_predictions: int | None = None) -> dict:
    manifest = {
        "format": shards.FORMAT,
        "version": shards.FORMAT_VERSION,
        "options": opts.recorded(),
        "seed": opts.seed,
        "max_seq_length": opts.max_seq_length,
        "max_predictions_per_seq": opts.max_predictions_per_seq,
        "max_predictions_per_seq_requested": requested_max_predictions or opts.max_predictions_per_seq,
        "masked_lm_prob": opts.masked_lm_prob,
        "whole_word_masking": opts.whole_word_masking,
        "masking": "dynamic" if opts.dynamic_masking else "static",
        "vocab_size": max(vocab.values()) + 1,
        "vocab_hash": shards.vocab_hash(vocab_tokens(vocab)),
        "tokenizer": tokenizer_settings,
        "num_shards": opts.num_shards,
        "num_examples": sum(s["num_examples"] for s in sidecars),
        "num_documents": sum(s["num_documents"] for s in sidecars),
        "warnings": _merge_warnings([s["warnings"] for s in sidecars]),
        "shards": sorted(sidecars, key=lambda s: s["index"]),
    }
    shards.atomic_write_json(os.path.join(output, shards.MANIFEST), manifest)
    _summarise_warnings(manifest["warnings"], opts.max_seq_length - 3, os.path.join(output, shards.MANIFEST))
    return manifest


def _shards_to_build(output: str, lo: int, hi: int, num_shards: int) -> list[int]:
    """Shards in ``[lo, hi)`` not yet built; a damaged one is deleted (and reported) so it is rebuilt."""
    todo = []
    for i in range(lo, hi):
        info, problem = shards.check_built_shard(output, i, num_shards)
        if info is not None:
            continue
        todo.append(i)
        if problem is not None:
            logger.warning("shard %d is damaged (%s); rebuilding it", i, problem)
            manifest = os.path.join(output, shards.MANIFEST)
            if os.path.exists(manifest):
                os.remove(manifest)  # it lists the damaged shard: never leave it looking complete
            for ext in (".json", ".bin"):  # the sidecar first: no moment where a bad .bin looks built
                name = os.path.join(output, shards.shard_name(i, num_shards) + ext)
                if os.path.exists(name):
                    os.remove(name)
    _remove_temporary_files(output, todo, num_shards)
    return todo


def _remove_temporary_files(output: str, indices: list[int], num_shards: int) -> None:
    """Temporary files of shards ``indices`` (none of which is complete): a worker killed mid-write
    leaves its own; no other build writes these shards."""
    for i in indices:
        if shards.completed_shard(output, i, num_shards) is None:
            for stale in glob.glob(os.path.join(glob.escape(output), shards.shard_name(i, num_shards) + ".*.tmp-*")):
                os.remove(stale)


def build(
    opts: BuildOptions,
    output: str,
    *,
    workers: int = 1,
    shard_range: tuple[int, int] | None = None,
    overwrite: bool = False,
) -> dict | None:
    """Builds the missing shards in ``shard_range`` (default all); returns the manifest once complete.

    Raises:
      BuildError: invalid options; ``output`` built with other options or from
        changed inputs (without ``overwrite``); ``OutputError`` for an unusable ``output``.
      sources.InputError: a missing or binary input file.
    """
    opts.validate()
    requested_max_predictions = opts.max_predictions_per_seq
    opts = opts.effective()
    backend, vocab, tok_settings = load_tokenizer(opts.vocab_file, opts.do_lower_case)
    info = masking.VocabInfo.from_vocab(vocab, opts.vocab_file)  # fails early on a vocab lacking [MASK] etc.
    files = sources.expand_inputs(opts.inputs)  # fails early on a missing input path
    lo, hi = shard_range or (0, opts.num_shards)
    if not 0 <= lo < hi <= opts.num_shards:
        raise BuildError(f"--shard-range {lo}:{hi} is not within 0:{opts.num_shards}")
    fingerprint = sources.fingerprint_inputs(files)  # refuses binary inputs before anything is written
    _prepare_output(output)
    tokens = vocab_tokens(vocab)
    old = _read_record(output, overwrite)
    write_copy = _check_vocab_copy(output, tokens, opts.vocab_file, overwrite, old)
    _check_options(opts, output, shards.vocab_hash(tokens), overwrite, fingerprint, old)
    vocab_copy = os.path.join(output, shards.VOCAB)
    if write_copy or not os.path.exists(vocab_copy):  # the options check may have removed an earlier copy
        shards.atomic_write_bytes(vocab_copy, ("\n".join(tokens) + "\n").encode("utf-8"))

    todo = _shards_to_build(output, lo, hi, opts.num_shards)
    if todo:
        logger.info("building %d shard(s) of %d (%d already built and verified)", len(todo), hi - lo, hi - lo - len(todo))
        try:
            partition(opts, output, todo)
            _check_unchanged(fingerprint)
            start, done = time.perf_counter(), 0
            bar = progress_bar(total=len(todo), desc="build", unit="shard")
            if workers <= 1:
                results = (build_shard(opts, output, i, backend, info) for i in todo)
            else:
                # spawn: safe even if the caller has started threads (e.g. imported JAX).
                ctx = multiprocessing.get_context("spawn")
                pool = ctx.Pool(workers, initializer=_init_worker)
                results = pool.imap_unordered(_worker, [(opts, output, i) for i in todo])
            try:
                for sidecar in results:
                    done += sidecar["num_examples"]
                    bar.update(1)
                    bar.set_postfix(instances=done, inst_per_s=f"{done / (time.perf_counter() - start):.0f}")
            finally:
                bar.close()
                if workers > 1:
                    pool.terminate()
                    pool.join()
                    _remove_temporary_files(output, todo, opts.num_shards)  # of workers stopped mid-write
        finally:  # an interrupted or failed build leaves no corpus-sized scratch copy behind
            _remove_buckets(output, todo)
    sidecars = [shards.completed_shard(output, i, opts.num_shards) for i in range(opts.num_shards)]
    missing = [i for i, s in enumerate(sidecars) if s is None]
    if missing:
        logger.info("%d shard(s) still missing (e.g. %s); the manifest is written once all exist", len(missing), missing[:5])
        return None
    if not sum(s["num_examples"] for s in sidecars):
        # A manifest of nothing would look like a finished build; training would only say "no full batch".
        documents = sum(s["num_documents"] for s in sidecars)
        lone = _merge_warnings([s["warnings"] for s in sidecars]).get("single_sentence_documents", 0)
        raise BuildError(f"the inputs gave 0 examples: {documents} document(s), {lone} of them of one sentence, and "
                         f"an example needs a document of two or more; check --input-format (now "
                         f"{opts.input_format!r}) against the files' layout, then re-run with --overwrite. "
                         "No manifest was written")
    shutil.rmtree(os.path.join(output, PARTIAL), ignore_errors=True)
    return write_manifest(opts, output, vocab, tok_settings, sidecars, requested_max_predictions)


def _merge_warnings(per_shard: list[dict]) -> dict:
    """Counts add up; location lists concatenate (shards built before locations were kept have none)."""
    keys = sorted({k for w in per_shard for k in w})
    out = {}
    for k in keys:
        values = [w[k] for w in per_shard if k in w]
        out[k] = [x for v in values for x in v] if values and isinstance(values[0], list) else int(sum(values))
    return out


def _summarise_warnings(warnings: dict, max_tokens: int, manifest_path: str) -> None:
    """One warning line per kind of data problem, with its count and the first locations."""
    kinds = (("long_sentences", "long_sentence_locations",
              f"sentence(s) longer than max_seq_length - 3 = {max_tokens} tokens are truncated (as original "
              "BERT: a random window, sharing the length with the paired segment; a line that holds several "
              "sentences is better split, one sentence a line)"),
             ("single_sentence_documents", "single_sentence_document_locations",
              "document(s) of one sentence cannot form a sentence pair and are used only as random-next sources"))
    for count_key, where_key, text in kinds:
        count = warnings.get(count_key, 0)
        if count:
            where = warnings.get(where_key, [])
            logger.warning("%d %s; e.g. %s (all in %s)", count, text, ", ".join(where[:_WARN_LIMIT]) or "-",
                           manifest_path)


def _check_unchanged(fingerprint: list[dict]) -> None:
    """Refuses inputs rewritten while they were being read (their size or mtime moved)."""
    for entry in fingerprint:
        if "size" not in entry or entry["path"].startswith("hf:"):
            continue
        st = os.stat(entry["path"])
        if (st.st_size, st.st_mtime_ns) != (entry["size"], entry["mtime_ns"]):
            raise BuildError(f"input file {entry['path']} changed while the build was reading it; "
                             "re-run the build once it is no longer being written")
