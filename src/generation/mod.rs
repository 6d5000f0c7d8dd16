//! Token generation for GPT-2: the decoding loop with a KV cache, and transformers' logits
//! processors (`RepetitionPenaltyLogitsProcessor`, `TemperatureLogitsWarper`,
//! `TopKLogitsWarper`, `TopPLogitsWarper`) applied in transformers' order.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{invalid_input, Result};
use crate::models::gpt2::{position_ids_from_mask, GPT2LMHeadModel, Gpt2Cache};

mod config;
pub use config::GenerationConfig;

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

/// `TopPLogitsWarper` with `min_tokens_to_keep=1`: in ascending order, tokens whose cumulative
/// probability is `<= 1 - top_p` become `-inf`; the most likely token always stays.
pub fn apply_top_p(logits: &mut [f32], top_p: f64) {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[a].total_cmp(&logits[b]));
    let probs = softmax(logits);
    let mut cumulative = 0.0f32;
    let limit = (1.0 - top_p) as f32;
    let last = order.len().saturating_sub(1);
    for (rank, &id) in order.iter().enumerate() {
        cumulative += probs[id];
        if cumulative <= limit && rank < last {
            logits[id] = f32::NEG_INFINITY;
        }
    }
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
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
fn sample(logits: &[f32], rng: &mut StdRng) -> u32 {
    let probs = softmax(logits);
    let mut target = rng.random::<f32>();
    for (i, &p) in probs.iter().enumerate() {
        if target < p {
            return i as u32;
        }
        target -= p;
    }
    // Rounding left `target` past the end: take the last token that has any probability.
    probs.iter().rposition(|&p| p > 0.0).unwrap_or(0) as u32
}

/// A generation in progress: the sequences so far, their attention masks, the KV cache, and the
/// random generator. Each `step` adds one token to every row.
pub struct Generator {
    model: Arc<GPT2LMHeadModel>,
    config: GenerationConfig,
    eos_token_id: Option<u32>,
    pad_token_id: Option<u32>,
    sequences: Vec<Vec<u32>>,
    attention_mask: Vec<Vec<u32>>,
    /// The ids and positions not yet run through the model (the prompt, then the last tokens).
    pending_ids: Vec<Vec<u32>>,
    pending_positions: Vec<Vec<u32>>,
    unfinished: Vec<bool>,
    new_tokens: usize,
    /// How many tokens to add at most, resolved from the config and the prompt length.
    max_new_tokens: usize,
    cache: Gpt2Cache,
    rng: StdRng,
}

impl Generator {
    /// Checks the prompt (`input_ids` rows, and an `attention_mask` of the same shape with 1
    /// for tokens and 0 for padding) and the arguments, and prepares the first step.
    pub fn new(
        model: Arc<GPT2LMHeadModel>,
        input_ids: Vec<Vec<u32>>,
        attention_mask: Option<Vec<Vec<u32>>>,
        config: GenerationConfig,
    ) -> Result<Self> {
        config.validate()?;
        let model_config = model.config();
        let prompt_len = validate_prompt(&input_ids, model_config.vocab_size)?;
        let attention_mask =
            attention_mask.unwrap_or_else(|| vec![vec![1; prompt_len]; input_ids.len()]);
        validate_mask(&attention_mask, input_ids.len(), prompt_len)?;
        let max_new_tokens = config.new_tokens(prompt_len, model_config.n_positions)?;
        let eos_token_id = config.eos_token_id.or(model_config.eos_token_id);
        let pad_token_id = config
            .pad_token_id
            .or(model_config.pad_token_id)
            .or(eos_token_id);
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Ok(Self {
            cache: model.base().new_cache(prompt_len + max_new_tokens),
            pending_positions: attention_mask
                .iter()
                .map(|row| position_ids_from_mask(row))
                .collect(),
            pending_ids: input_ids.clone(),
            unfinished: vec![true; input_ids.len()],
            sequences: input_ids,
            attention_mask,
            new_tokens: 0,
            max_new_tokens,
            eos_token_id,
            pad_token_id,
            config,
            model,
            rng,
        })
    }

    /// Whether generation has stopped: `max_new_tokens` reached or every row has produced eos.
    pub fn is_done(&self) -> bool {
        self.new_tokens >= self.max_new_tokens || !self.unfinished.iter().any(|&u| u)
    }

    /// Generates the next token of every row (the pad token for rows already finished), or
    /// `None` once generation is done.
    pub fn step(&mut self) -> Result<Option<Vec<u32>>> {
        if self.is_done() {
            return Ok(None);
        }
        let logits = self.next_logits()?;
        let mut tokens = Vec::with_capacity(logits.len());
        for (row, mut row_logits) in logits.into_iter().enumerate() {
            let token = if self.unfinished[row] {
                self.choose(row, &mut row_logits)
            } else {
                // A row only finishes on eos, so the pad token (at worst eos itself) is set.
                self.pad_token_id.unwrap_or_default()
            };
            if Some(token) == self.eos_token_id {
                self.unfinished[row] = false;
            }
            tokens.push(token);
        }
        self.advance(&tokens);
        Ok(Some(tokens))
    }

    /// Runs the pending ids through the model; the last position's logits of every row.
    fn next_logits(&mut self) -> Result<Vec<Vec<f32>>> {
        let device = self.model.base().device().clone();
        let ids = matrix(&self.pending_ids, &device)?;
        let positions = matrix(&self.pending_positions, &device)?;
        let (model, mask, cache) = (&self.model, &self.attention_mask, &mut self.cache);
        // On a rayon worker: the step's row products then split onto threads that are already
        // awake, instead of waking the pool from outside about fifty times a step.
        let logits = rayon::scope(|_| model.next_token_logits(&ids, &positions, mask, cache))?;
        Ok(logits.to_vec2::<f32>()?)
    }

    /// Applies the logits processors to one row and picks its token.
    fn choose(&mut self, row: usize, logits: &mut [f32]) -> u32 {
        let config = &self.config;
        if config.repetition_penalty != 1.0 {
            apply_repetition_penalty(
                logits,
                &self.sequences[row],
                config.repetition_penalty as f32,
            );
        }
        if !config.do_sample {
            return argmax(logits);
        }
        if config.temperature != 1.0 {
            let temperature = config.temperature as f32;
            logits.iter_mut().for_each(|l| *l /= temperature);
        }
        if let Some(k) = config.top_k_filter() {
            apply_top_k(logits, k);
        }
        if let Some(p) = config.top_p_filter() {
            apply_top_p(logits, p);
        }
        sample(logits, &mut self.rng)
    }

    /// Appends the chosen tokens and makes them the next step's input.
    fn advance(&mut self, tokens: &[u32]) {
        for (row, &token) in tokens.iter().enumerate() {
            let next_position = self.pending_positions[row].last().map_or(0, |p| p + 1);
            self.sequences[row].push(token);
            self.attention_mask[row].push(1);
            self.pending_ids[row] = vec![token];
            self.pending_positions[row] = vec![next_position];
        }
        self.new_tokens += 1;
    }

    /// The prompts followed by the tokens generated so far.
    pub fn sequences(&self) -> &[Vec<u32>] {
        &self.sequences
    }

    pub fn into_sequences(self) -> Vec<Vec<u32>> {
        self.sequences
    }
}

/// Generates until `max_new_tokens` or until every row has produced eos; returns prompt + new
/// tokens for every row, like transformers' `generate`.
pub fn generate(
    model: Arc<GPT2LMHeadModel>,
    input_ids: Vec<Vec<u32>>,
    attention_mask: Option<Vec<Vec<u32>>>,
    config: GenerationConfig,
) -> Result<Vec<Vec<u32>>> {
    let mut generator = Generator::new(model, input_ids, attention_mask, config)?;
    while generator.step()?.is_some() {}
    Ok(generator.into_sequences())
}

fn matrix(rows: &[Vec<u32>], device: &Device) -> candle_core::Result<Tensor> {
    let width = rows.first().map_or(0, Vec::len);
    Tensor::from_iter(rows.iter().flatten().copied(), device)?.reshape((rows.len(), width))
}

/// Checks that the prompt is a non-empty rectangle of ids below `vocab_size`; returns its length.
fn validate_prompt(input_ids: &[Vec<u32>], vocab_size: usize) -> Result<usize> {
    let prompt_len = input_ids.first().map_or(0, Vec::len);
    if prompt_len == 0 {
        return invalid_input!(
            "input_ids is empty: generation needs a prompt of at least one token"
        );
    }
    if input_ids.iter().any(|row| row.len() != prompt_len) {
        return invalid_input!("input_ids rows have different lengths");
    }
    if let Some(&id) = input_ids
        .iter()
        .flatten()
        .find(|&&id| id as usize >= vocab_size)
    {
        return invalid_input!("input id {id} is out of range for vocab_size {vocab_size}");
    }
    Ok(prompt_len)
}

fn validate_mask(mask: &[Vec<u32>], batch: usize, prompt_len: usize) -> Result<()> {
    if mask.len() != batch || mask.iter().any(|row| row.len() != prompt_len) {
        return invalid_input!(
            "attention_mask must have the shape of input_ids ({batch}, {prompt_len})"
        );
    }
    if mask.iter().flatten().any(|&m| m > 1) {
        return invalid_input!("attention_mask must contain only 0 and 1");
    }
    if mask.iter().any(|row| row.iter().all(|&m| m == 0)) {
        return invalid_input!("attention_mask has a row with no tokens");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let ninf = f32::NEG_INFINITY;
        assert_eq!(logits, [ninf, 3.0, 2.0, 2.0, ninf]);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_above_p() {
        // probabilities 0.5, 0.25, 0.125, 0.125
        let mut logits: Vec<f32> = [0.5f32, 0.25, 0.125, 0.125]
            .iter()
            .map(|p| p.ln())
            .collect();
        apply_top_p(&mut logits, 0.7);
        assert!(logits[0].is_finite() && logits[1].is_finite());
        assert!(logits[2] == f32::NEG_INFINITY && logits[3] == f32::NEG_INFINITY);
        // A tiny top_p still keeps the most likely token.
        let mut logits = vec![0.0, 1.0, 0.5];
        apply_top_p(&mut logits, 1e-6);
        assert_eq!(logits.iter().filter(|l| l.is_finite()).count(), 1);
        assert!(logits[1].is_finite());
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.0, 2.0, 2.0, 1.0]), 1);
    }

    #[test]
    fn sampling_is_reproducible_and_respects_filters() {
        let mut logits = vec![0.0, 5.0, 4.0, -1.0];
        apply_top_k(&mut logits, 2);
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..50)
                .map(|_| sample(&logits, &mut rng))
                .collect::<Vec<_>>()
        };
        let draws = draw(7);
        assert_eq!(draws, draw(7));
        assert!(draws.iter().all(|&t| t == 1 || t == 2));
        assert!(draws.contains(&1) && draws.contains(&2));
    }

    #[test]
    fn invalid_prompts_are_rejected() {
        assert!(validate_prompt(&[vec![]], 10).is_err());
        assert!(validate_prompt(&[vec![1, 10]], 10).is_err());
        assert!(validate_mask(&[vec![0, 0]], 1, 2).is_err());
        assert!(validate_mask(&[vec![0, 1]], 1, 2).is_ok());
    }
}
