//! transformers' logits processors, in the order its `generate` applies them:
//! `RepetitionPenaltyLogitsProcessor`, `NoRepeatNGramLogitsProcessor`,
//! `NoBadWordsLogitsProcessor`, `MinLengthLogitsProcessor` (which `min_new_tokens` sets), then,
//! when sampling, the warpers `TemperatureLogitsWarper`, `TopKLogitsWarper`, `TopPLogitsWarper`,
//! `MinPLogitsWarper`, `TypicalLogitsWarper`.

use rand::rngs::StdRng;
use rand::Rng;

use super::config::GenerationConfig;
use crate::error::{invalid_input, Result};

/// The processors a generation config asks for, applied to one row's scores at a time.
pub struct LogitsProcessors {
    repetition_penalty: Option<f32>,
    no_repeat_ngram_size: usize,
    bad_words: BadWords,
    /// eos is banned while a row is shorter than this.
    min_length: usize,
    eos_token_id: Option<u32>,
    warpers: Option<Warpers>,
}

/// The sampling-only processors.
struct Warpers {
    temperature: Option<f32>,
    top_k: Option<usize>,
    top_p: Option<f64>,
    min_p: Option<f64>,
    typical_p: Option<f64>,
    /// 1 when sampling, 2 in beam sampling (one beyond the eos token, as transformers keeps).
    min_tokens_to_keep: usize,
}

impl LogitsProcessors {
    /// The processors of `config` for prompts `prompt_len` tokens long (padding included);
    /// `beam_search` keeps one more token in the warpers, as transformers does.
    pub fn new(
        config: &GenerationConfig,
        eos_token_id: Option<u32>,
        vocab_size: usize,
        prompt_len: usize,
        beam_search: bool,
    ) -> Result<Self> {
        let warpers = config.do_sample.then(|| Warpers {
            temperature: Some(config.temperature as f32).filter(|&t| t != 1.0),
            top_k: config.top_k_filter(),
            top_p: config.top_p_filter(),
            min_p: config.min_p,
            typical_p: Some(config.typical_p).filter(|&p| p < 1.0),
            min_tokens_to_keep: if beam_search { 2 } else { 1 },
        });
        Ok(Self {
            repetition_penalty: Some(config.repetition_penalty as f32).filter(|&p| p != 1.0),
            no_repeat_ngram_size: config.no_repeat_ngram_size,
            bad_words: BadWords::new(config.bad_words_ids.as_deref(), eos_token_id, vocab_size)?,
            min_length: config.min_total_length(prompt_len),
            eos_token_id,
            warpers,
        })
    }

    /// Processes the scores of the next token of `row` (the tokens so far, the first
    /// `padding` of which are left padding).
    pub fn apply(&self, row: &[u32], padding: usize, scores: &mut [f32]) {
        if let Some(penalty) = self.repetition_penalty {
            apply_repetition_penalty(scores, &row[padding.min(row.len())..], penalty);
        }
        if self.no_repeat_ngram_size > 0 {
            ban_repeated_ngrams(scores, row, self.no_repeat_ngram_size);
        }
        self.bad_words.apply(row, scores);
        if row.len() < self.min_length {
            if let Some(eos) = self.eos_token_id.and_then(|e| scores.get_mut(e as usize)) {
                *eos = f32::NEG_INFINITY;
            }
        }
        if let Some(warpers) = &self.warpers {
            warpers.apply(scores);
        }
    }
}

impl Warpers {
    fn apply(&self, scores: &mut [f32]) {
        if let Some(temperature) = self.temperature {
            scores.iter_mut().for_each(|s| *s /= temperature);
        }
        if let Some(k) = self.top_k {
            apply_top_k(scores, k.max(self.min_tokens_to_keep));
        }
        if let Some(p) = self.top_p {
            apply_top_p(scores, p, self.min_tokens_to_keep);
        }
        if let Some(min_p) = self.min_p {
            apply_min_p(scores, min_p, self.min_tokens_to_keep);
        }
        if let Some(mass) = self.typical_p {
            apply_typical(scores, mass, self.min_tokens_to_keep);
        }
    }
}

/// `NoBadWordsLogitsProcessor`: single tokens banned always, longer sequences banned where the
/// row ends with all but their last token. A sequence that is just eos is ignored.
struct BadWords {
    single: Vec<u32>,
    /// (prefix, last token)
    sequences: Vec<(Vec<u32>, u32)>,
}

impl BadWords {
    fn new(
        bad_words: Option<&[Vec<u32>]>,
        eos_token_id: Option<u32>,
        vocab_size: usize,
    ) -> Result<Self> {
        let bad_words = bad_words.unwrap_or_default();
        let outside: Vec<u32> = bad_words
            .iter()
            .flatten()
            .copied()
            .filter(|&id| id as usize >= vocab_size)
            .collect();
        if !outside.is_empty() {
            return invalid_input!(
                "The model vocabulary size is {vocab_size}, but the following tokens were being \
                 biased: {outside:?} (bad_words_ids)"
            );
        }
        let mut single = Vec::new();
        let mut sequences = Vec::new();
        for words in bad_words {
            match words.as_slice() {
                [id] if Some(*id) == eos_token_id => {}
                [id] => single.push(*id),
                [prefix @ .., last] => sequences.push((prefix.to_vec(), *last)),
                [] => {}
            }
        }
        Ok(Self { single, sequences })
    }

    fn apply(&self, row: &[u32], scores: &mut [f32]) {
        for &id in &self.single {
            scores[id as usize] = f32::NEG_INFINITY;
        }
        for (prefix, last) in &self.sequences {
            if row.ends_with(prefix) {
                scores[*last as usize] = f32::NEG_INFINITY;
            }
        }
    }
}

/// `RepetitionPenaltyLogitsProcessor`: every token already in the sequence gets its logit divided
/// by `penalty` when positive, multiplied when negative.
pub fn apply_repetition_penalty(logits: &mut [f32], previous: &[u32], penalty: f32) {
    let mut seen = vec![false; logits.len()];
    for &id in previous {
        let id = id as usize;
        if id < logits.len() && !seen[id] {
            seen[id] = true;
            let score = logits[id];
            logits[id] = if score < 0.0 {
                score * penalty
            } else {
                score / penalty
            };
        }
    }
}

/// `NoRepeatNGramLogitsProcessor`: a token that would complete an n-gram already in the row
/// is banned.
fn ban_repeated_ngrams(scores: &mut [f32], row: &[u32], n: usize) {
    if row.len() < n {
        return;
    }
    let prefix = &row[row.len() + 1 - n..];
    for window in row.windows(n) {
        if &window[..n - 1] == prefix {
            if let Some(score) = scores.get_mut(window[n - 1] as usize) {
                *score = f32::NEG_INFINITY;
            }
        }
    }
}

/// `TopKLogitsWarper`: logits below the k-th largest become `-inf` (ties with it are kept).
pub fn apply_top_k(logits: &mut [f32], k: usize) {
    if k >= logits.len() {
        return;
    }
    let mut sorted = logits.to_vec();
    sorted.sort_unstable_by(|a, b| b.total_cmp(a));
    let threshold = sorted[k - 1];
    for logit in logits.iter_mut().filter(|l| **l < threshold) {
        *logit = f32::NEG_INFINITY;
    }
}

/// `TopPLogitsWarper`: in ascending order, tokens whose cumulative probability is
/// `<= 1 - top_p` become `-inf`; the `min_keep` most likely always stay.
pub fn apply_top_p(logits: &mut [f32], top_p: f64, min_keep: usize) {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[a].total_cmp(&logits[b]));
    let probs = softmax(logits);
    let mut cumulative = 0.0f32;
    let limit = (1.0 - top_p) as f32;
    let kept_from = order.len().saturating_sub(min_keep);
    for (rank, &id) in order.iter().enumerate() {
        cumulative += probs[id];
        if cumulative <= limit && rank < kept_from {
            logits[id] = f32::NEG_INFINITY;
        }
    }
}

/// `MinPLogitsWarper`: tokens less likely than `min_p` times the most likely one become `-inf`,
/// the `min_keep` most likely aside.
fn apply_min_p(logits: &mut [f32], min_p: f64, min_keep: usize) {
    let probs = softmax(logits);
    let top = probs.iter().copied().fold(0.0f32, f32::max);
    let threshold = min_p as f32 * top;
    let kept = most_likely(&probs, min_keep);
    for (id, logit) in logits.iter_mut().enumerate() {
        if probs[id] < threshold && !kept.contains(&id) {
            *logit = f32::NEG_INFINITY;
        }
    }
}

/// `TypicalLogitsWarper`: keeps the tokens whose surprisal is closest to the entropy, until
/// their probability mass reaches `mass`.
fn apply_typical(logits: &mut [f32], mass: f64, min_keep: usize) {
    let log_probs = log_softmax(logits);
    // nansum: -inf logits give 0 * -inf, which does not count.
    let entropy: f32 = -log_probs
        .iter()
        .map(|&l| l * l.exp())
        .filter(|v| !v.is_nan())
        .sum::<f32>();
    let shifted: Vec<f32> = log_probs.iter().map(|&l| (-l - entropy).abs()).collect();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| shifted[a].total_cmp(&shifted[b]));
    let sorted_logits: Vec<f32> = order.iter().map(|&i| logits[i]).collect();
    let sorted_probs = softmax(&sorted_logits);
    let mut cumulative = 0.0f32;
    let below = sorted_probs
        .iter()
        .take_while(|&&p| {
            cumulative += p;
            cumulative < mass as f32
        })
        .count();
    let last = below.min(order.len() - 1);
    let cutoff = shifted[order[last]];
    for (rank, &id) in order.iter().enumerate() {
        if rank >= min_keep && shifted[id] > cutoff {
            logits[id] = f32::NEG_INFINITY;
        }
    }
}

/// The indices of the `k` largest values.
fn most_likely(values: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    order.truncate(k);
    order
}

pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_sum = logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
    logits.iter().map(|&l| l - max - log_sum).collect()
}

/// The index of the largest logit (the first one on ties, like `torch.argmax`).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Draws a token from `softmax(logits)`.
pub fn sample(logits: &[f32], rng: &mut StdRng) -> u32 {
    draw(&softmax(logits), rng) as u32
}

/// Draws an index with probability proportional to `weights` (which sum to about 1).
pub fn draw(weights: &[f32], rng: &mut StdRng) -> usize {
    let total: f32 = weights.iter().sum();
    let mut target = rng.random::<f32>() * total;
    for (i, &w) in weights.iter().enumerate() {
        if target < w {
            return i;
        }
        target -= w;
    }
    // Rounding left `target` past the end: take the last index that has any weight.
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    const NINF: f32 = f32::NEG_INFINITY;

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative() {
        let mut logits = vec![2.0, -2.0, 1.0];
        apply_repetition_penalty(&mut logits, &[0, 1, 1], 2.0);
        assert_eq!(logits, [1.0, -4.0, 1.0]);
    }

    #[test]
    fn top_k_keeps_the_k_largest_and_ties() {
        let mut logits = vec![1.0, 3.0, 2.0, 2.0, 0.0];
        apply_top_k(&mut logits, 2);
        assert_eq!(logits, [NINF, 3.0, 2.0, 2.0, NINF]);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_above_p() {
        // probabilities 0.5, 0.25, 0.125, 0.125
        let mut logits: Vec<f32> = [0.5f32, 0.25, 0.125, 0.125]
            .iter()
            .map(|p| p.ln())
            .collect();
        apply_top_p(&mut logits, 0.7, 1);
        assert!(logits[0].is_finite() && logits[1].is_finite());
        assert!(logits[2] == NINF && logits[3] == NINF);
        // A tiny top_p still keeps the most likely tokens.
        let mut logits = vec![0.0, 1.0, 0.5];
        apply_top_p(&mut logits, 1e-6, 2);
        assert_eq!(logits, [NINF, 1.0, 0.5]);
    }

    #[test]
    fn min_p_and_typical_filter_as_transformers() {
        // probabilities 0.5, 0.25, 0.125, 0.125: min_p 0.3 keeps those >= 0.15
        let probs = [0.5f32, 0.25, 0.125, 0.125];
        let mut logits: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
        apply_min_p(&mut logits, 0.3, 1);
        assert_eq!(logits.iter().filter(|l| l.is_finite()).count(), 2);
        // entropy 1.2130: surprisals 0.693, 1.386, 2.079, 2.079 -> order 1, 0, 2, 3
        let mut logits: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
        apply_typical(&mut logits, 0.5, 1);
        assert!(logits[1].is_finite() && logits[0].is_finite());
        assert!(logits[2] == NINF && logits[3] == NINF);
    }

    #[test]
    fn ngrams_and_bad_words_are_banned() {
        let mut scores = vec![0.0; 6];
        ban_repeated_ngrams(&mut scores, &[1, 2, 3, 1, 2], 3);
        assert_eq!(scores, [0.0, 0.0, 0.0, NINF, 0.0, 0.0]);
        let bad = BadWords::new(Some(&[vec![4], vec![5], vec![2, 3]]), Some(5), 6).unwrap();
        let mut scores = vec![0.0; 6];
        bad.apply(&[1, 2], &mut scores);
        assert_eq!(scores, [0.0, 0.0, 0.0, NINF, NINF, 0.0]);
        assert!(BadWords::new(Some(&[vec![6]]), None, 6).is_err());
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.0, 2.0, 2.0, 1.0]), 1);
    }

    #[test]
    fn sampling_is_reproducible_and_respects_filters() {
        let mut logits = vec![0.0, 5.0, 4.0, -1.0];
        apply_top_k(&mut logits, 2);
        let draws = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..50)
                .map(|_| sample(&logits, &mut rng))
                .collect::<Vec<_>>()
        };
        let first = draws(7);
        assert_eq!(first, draws(7));
        assert!(first.iter().all(|&t| t == 1 || t == 2));
        assert!(first.contains(&1) && first.contains(&2));
    }
}
