"""The ``text-generation`` pipeline."""

from __future__ import annotations

from typing import Any, List

from .base import Pipeline, _first_not_none


class TextGenerationPipeline(Pipeline):
    """``text-generation``: ``[{"generated_text": ...}]`` per prompt, the prompt followed by the
    new text (only the new text with ``return_full_text=False``).

    Takes ``GPT2LMHeadModel.generate``'s options (``GenerationConfig`` names, or
    ``generation_config=``); without a length, 256 new tokens, as in transformers. Prompts are
    batched with left padding (the eos token pads when the tokenizer has no pad token); with
    sampling, the draws depend on how prompts fall into batches.
    """

    task = "text-generation"

    def _run(self, texts: List[str], return_full_text: bool = True, **generate_kwargs: Any) -> List[Any]:
        encodings = [{"input_ids": ids} for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        for index, encoding in enumerate(encodings):
            if not encoding["input_ids"]:
                raise ValueError(f"prompt {index} is empty")
        pad_id = _first_not_none(self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0)
        options = {"pad_token_id": pad_id, **generate_kwargs}
        if not {"max_new_tokens", "max_length", "generation_config"} & set(options):
            options["max_new_tokens"] = 256
        results: List[Any] = [None] * len(texts)
        for chunk in self._batches(encodings):
            batch = self._pad([encodings[i]["input_ids"] for i in chunk], side="left")
            generated = self.model.generate(batch["input_ids"], batch["attention_mask"], **options)
            new_texts = self.tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            for i, new_text in zip(chunk, new_texts):
                results[i] = [{"generated_text": texts[i] + new_text if return_full_text else new_text}]
        return results
