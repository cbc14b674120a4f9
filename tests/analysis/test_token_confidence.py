"""Token-level confidence of a Hugging Face seq2seq model: every labelled position scored once,
with the model's own loss as the check of the label log-probabilities."""

import pytest
import torch

from labelreg_nlp.analysis.token_confidence import hf_token_scores
from tests.integrations.hf_toy import collate, t5_seq2seq, token_examples, training_args


@pytest.mark.parametrize("batch_size", [3, 32])
def test_hf_token_scores_match_the_models_own_loss(tmp_path, batch_size):
    from transformers import Seq2SeqTrainer

    model = t5_seq2seq()
    examples = token_examples(10, seed=5, seq2seq=True)
    trainer = Seq2SeqTrainer(model=model, args=training_args(tmp_path, seq2seq=True, per_device_eval_batch_size=batch_size),
                             data_collator=collate)
    scored = hf_token_scores(trainer, examples, p_grid=[0, 2])
    batch = collate(examples)
    assert len(scored) == int((batch["labels"] != -100).sum()) == sum(len(e["labels"]) for e in examples)
    with torch.no_grad():
        output = model(**batch)  # T5's loss: mean cross-entropy over the labels that are not -100
    assert float(-scored.target_log_prob.mean()) == pytest.approx(float(output.loss), rel=1e-5)
    keep = batch["labels"] != -100
    assert torch.equal(scored.predictions, output.logits.argmax(-1)[keep])
    assert scored.pnorm.shape == (2, len(scored))
