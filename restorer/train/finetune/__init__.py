"""Fine-tuning on a new spinner style: `restorer finetune` (docs/finetuning.md).

* ``mining``: learn a spinner's substitution table from example pairs, as a style file;
* ``data``: the new style's sources, the replay of the base mix and the held-out sets;
* ``run``: the command itself, on top of ``restorer.train.loop.train``;
* ``card``: the fine-tuned model's card.
"""

from __future__ import annotations

from restorer.train.finetune.data import FinetuneError
from restorer.train.finetune.mining import MinedStyle, mine_style
from restorer.train.finetune.run import finetune_config, run_finetune

__all__ = ["FinetuneError", "MinedStyle", "finetune_config", "mine_style", "run_finetune"]
