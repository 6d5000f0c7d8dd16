"""pipeline("ner", stride=N) against transformers' pipeline: texts longer than the model takes
are tagged in overlapping windows and the windows' entities merged as transformers merges
them."""

from __future__ import annotations

import pytest
import torch
import transformers

import candle_port
from pipeline_models import MAX_POSITIONS, assert_same_records, build_roberta, build_xlmr_ner

LIMIT = MAX_POSITIONS - 2
SENTENCES = [
    "I love Paris and London!",
    "café naïve 😀 Zürich is great",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Angela Merkel met Emmanuel Macron in Berlin on Tuesday.",
]
LONG_TEXTS = [" ".join(SENTENCES * 4), "Short one.", " ".join(SENTENCES[::-1] * 3)]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ner-stride")
    return {"ner": build_roberta("ner", root / "ner"), "xlmr-ner": build_xlmr_ner(root / "xlmr-ner")}


def pair(directory, **kwargs):
    ours = candle_port.pipeline("ner", str(directory), batch_size=3, progress=False, **kwargs)
    # The reference tokenizer is told the model's length limit, which the test vocabularies lack.
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, model_max_length=LIMIT)
    return ours, transformers.pipeline("ner", model=str(directory), tokenizer=tokenizer, **kwargs)


@pytest.mark.parametrize("model", ["ner", "xlmr-ner"])
@pytest.mark.parametrize("stride, aggregation", [(16, "simple"), (3, "simple"), (30, None)])
def test_windows_match_transformers(dirs, model, stride, aggregation):
    kwargs = {"stride": stride} if aggregation is None else {"stride": stride, "aggregation_strategy": aggregation}
    ours, reference = pair(dirs[model], **kwargs)
    assert len(ours.tokenizer(LONG_TEXTS[0])["input_ids"]) > 2 * LIMIT
    expected = reference(LONG_TEXTS)
    assert all(expected[i] for i in (0, 2)), "the random model should tag something"
    assert_same_records(ours(LONG_TEXTS), expected)
    assert_same_records(ours(LONG_TEXTS[2], ignore_labels=[]), reference(LONG_TEXTS[2], ignore_labels=[]))


def test_entities_span_the_whole_text(dirs):
    ours = candle_port.pipeline("ner", dirs["ner"], stride=8, aggregation_strategy="simple", ignore_labels=[])
    entities = ours(LONG_TEXTS[0])
    assert entities[-1]["end"] > len(LONG_TEXTS[0]) - 10
    truncated = candle_port.pipeline("ner", dirs["ner"], aggregation_strategy="simple", ignore_labels=[])(LONG_TEXTS[0])
    assert truncated[-1]["end"] < len(LONG_TEXTS[0]) // 2
    starts = [e["start"] for e in entities]
    assert starts == sorted(starts) and all(a["end"] <= b["start"] for a, b in zip(entities, entities[1:]))


def test_bad_stride(dirs):
    ours = candle_port.pipeline("ner", dirs["ner"])
    with pytest.raises(ValueError, match="aggregation_strategy='simple', not 'none'"):
        ours(LONG_TEXTS[0], stride=4, aggregation_strategy="none")
    with pytest.raises(ValueError, match=f"must be less than the model's limit of {LIMIT}"):
        ours(LONG_TEXTS[0], stride=LIMIT, aggregation_strategy="simple")
    with pytest.raises(ValueError, match=f"stride={LIMIT - 2} must be less than the {LIMIT - 2} tokens"):
        ours(LONG_TEXTS[0], stride=LIMIT - 2, aggregation_strategy="simple")
    with pytest.raises(ValueError, match="non-negative int"):
        ours(LONG_TEXTS[0], stride=-1, aggregation_strategy="simple")
    with pytest.raises(ValueError, match="truncation=False"):
        ours(LONG_TEXTS[0], stride=4, aggregation_strategy="simple", truncation=False)
