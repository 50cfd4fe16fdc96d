"""The committed steps of a checkpoint directory, read from folder names: no JAX, no Orbax.

``bert-jax glue-submit`` only needs to know whether a run saved a newer step than the one its
predictions came from; importing ``bert_jax.checkpointing`` for that would load JAX and Orbax
(about a second) in a command that otherwise copies files.
"""

from __future__ import annotations

import os


def saved_steps(directory: str) -> list[int]:
    """The committed steps under a checkpoint ``directory``, oldest first ([] if it does not exist),
    read from the folder names without opening a manager."""
    if not os.path.isdir(directory):
        return []
    # Orbax names committed steps by their number; in-progress ones carry a temporary suffix.
    return sorted(int(n) for n in os.listdir(directory) if n.isdigit() and os.path.isdir(os.path.join(directory, n)))
