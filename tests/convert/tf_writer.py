"""Writes and reads original-layout BERT checkpoints with real TensorFlow (run by a TF venv's python).

  python tf_writer.py write CONFIG_JSON SEED SPEC [SPEC ...]
      SPEC = DIR[,drop=VAR][,reshape=VAR]: one checkpoint per SPEC, all with the same random
      weights, written by tf.compat.v1.train.Saver under the original variable names and shapes
      (as google-research/bert's modeling.py / run_pretraining.py create them), with the
      optimizer's adam_m / adam_v slots and global_step, plus bert_config.json and
      weights.npz (the BERT variables as numpy, for the test's own reference).
      drop leaves a variable out; reshape writes it one column wider.
  python tf_writer.py read PREFIX OUT_NPZ
      tf.train.load_checkpoint(PREFIX): every variable into OUT_NPZ (and dtypes into OUT_NPZ.json).

The test suite imports nothing from here; it only runs this file in a separate process.
"""

import json
import os
import sys

import numpy as np


def bert_variables(config: dict) -> dict:
    """Original variable name -> shape, for BertForPreTraining (modeling.py + run_pretraining.py)."""
    h, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    out = {"bert/embeddings/word_embeddings": (v, h),
           "bert/embeddings/token_type_embeddings": (config["type_vocab_size"], h),
           "bert/embeddings/position_embeddings": (config["max_position_embeddings"], h),
           "bert/embeddings/LayerNorm/beta": (h,), "bert/embeddings/LayerNorm/gamma": (h,)}
    for n in range(config["num_hidden_layers"]):
        scope = f"bert/encoder/layer_{n}"
        for dense, shape in (("attention/self/query", (h, h)), ("attention/self/key", (h, h)),
                             ("attention/self/value", (h, h)), ("attention/output/dense", (h, h)),
                             ("intermediate/dense", (h, i)), ("output/dense", (i, h))):
            out[f"{scope}/{dense}/kernel"] = shape
            out[f"{scope}/{dense}/bias"] = shape[1:]
        for norm in ("attention/output/LayerNorm", "output/LayerNorm"):
            out[f"{scope}/{norm}/beta"] = (h,)
            out[f"{scope}/{norm}/gamma"] = (h,)
    out.update({"bert/pooler/dense/kernel": (h, h), "bert/pooler/dense/bias": (h,),
                "cls/predictions/transform/dense/kernel": (h, h), "cls/predictions/transform/dense/bias": (h,),
                "cls/predictions/transform/LayerNorm/beta": (h,), "cls/predictions/transform/LayerNorm/gamma": (h,),
                "cls/predictions/output_bias": (v,),
                "cls/seq_relationship/output_weights": (2, h), "cls/seq_relationship/output_bias": (2,)})
    return out


def random_weights(config: dict, seed: int) -> dict:
    """Weights large enough that a wrong mapping changes the outputs well beyond the tolerance."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in bert_variables(config).items():
        if name.endswith("gamma"):
            weights[name] = (1.0 + 0.2 * rng.standard_normal(shape)).astype(np.float32)
        else:
            weights[name] = (0.2 * rng.standard_normal(shape)).astype(np.float32)
    return weights


def write(config: dict, seed: int, specs: list) -> None:
    import tensorflow as tf

    weights = random_weights(config, seed)
    for spec in specs:
        directory, *options = spec.split(",")
        options = dict(option.split("=", 1) for option in options)
        os.makedirs(directory, exist_ok=True)
        with tf.Graph().as_default():
            variables = []
            for name, value in weights.items():
                if name == options.get("drop"):
                    continue
                if name == options.get("reshape"):
                    value = np.concatenate([value, value[..., :1]], axis=-1)
                variables.append(tf.compat.v1.get_variable(name, initializer=value))
                # AdamWeightDecayOptimizer's slots, named as optimization.py names them.
                for slot in ("adam_m", "adam_v"):
                    tf.compat.v1.get_variable(f"{name}/{slot}", initializer=np.full_like(value, 0.5))
            step = tf.compat.v1.train.get_or_create_global_step()
            saver = tf.compat.v1.train.Saver()
            with tf.compat.v1.Session() as session:
                session.run(tf.compat.v1.global_variables_initializer())
                session.run(step.assign(1234))
                saver.save(session, os.path.join(directory, "bert_model.ckpt"), write_meta_graph=False)
        with open(os.path.join(directory, "bert_config.json"), "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
        np.savez(os.path.join(directory, "weights.npz"), **weights)


def read(prefix: str, out: str) -> None:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    names = sorted(reader.get_variable_to_shape_map())
    np.savez(out, **{name: reader.get_tensor(name) for name in names})
    with open(out + ".json", "w") as f:
        json.dump({name: reader.get_variable_to_dtype_map()[name].name for name in names}, f)


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "write":
        write(json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
    elif command == "read":
        read(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {command!r}; use write or read.")
