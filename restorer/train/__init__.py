"""Training: the accelerate loop of ``train.py``, its configuration, checkpoints, logs and model
cards, shipping a trained model, and fine-tuning on new spinner styles.

* :mod:`.config`: ``RunConfig``, one dataclass per section of a training YAML;
* :mod:`.loop`: ``train()``, set up, then the loop of steps, evaluations and checkpoints;
* :mod:`.checkpoints`, :mod:`.csvlog`, :mod:`.modelcard`: what a run leaves on disk;
* :mod:`.ship`: pack a trained model directory as the shipped default (``restorer ship``);
* :mod:`.finetune`: ``restorer finetune``, on top of ``train()``.
"""
