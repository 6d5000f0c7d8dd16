//! Token generation for GPT-2, as transformers' `generate`: greedy decoding and sampling
//! (`Generator`, which also streams), beam search (`beam`), with a KV cache, transformers'
//! logits processors (`processors`) and stopping criteria (`stopping`), and one
//! `GenerationConfig` (`config`) validated once.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::error::{invalid_input, Result};
use crate::models::gpt2::{position_ids_from_mask, GPT2LMHeadModel, Gpt2Cache};
use crate::tokenizer::Tokenizer;

mod beam;
mod config;
mod processors;
mod stopping;

pub use config::{EarlyStopping, GenerationConfig, StopStrings};
pub use processors::{apply_repetition_penalty, apply_top_k, apply_top_p, argmax};
use processors::{sample, LogitsProcessors};
use stopping::{stop_string_criteria, Stopping};

/// What `generate` returns: the sequences (prompt + new tokens), and, with
/// `return_dict_in_generate` and `output_scores`, the scores.
#[derive(Debug, Clone, Default)]
pub struct GenerateOutput {
    pub sequences: Vec<Vec<u32>>,
    /// Per step, the processed scores of every row (log-probabilities in beam search).
    pub scores: Option<Vec<Vec<Vec<f32>>>>,
    /// Beam search: the final (length-penalized) score of each returned sequence.
    pub sequences_scores: Option<Vec<f32>>,
    /// Beam search: per returned sequence, the row (batch × beam) each new token came from, -1
    /// past its end. Returned with `return_dict_in_generate`.
    pub beam_indices: Option<Vec<Vec<i64>>>,
}

/// Generates as transformers' `generate` does: beam search when `num_beams > 1`, else greedy
/// decoding or sampling. `tokenizer` is needed for `stop_strings`.
pub fn generate(
    model: Arc<GPT2LMHeadModel>,
    input_ids: Vec<Vec<u32>>,
    attention_mask: Option<Vec<Vec<u32>>>,
    config: GenerationConfig,
    tokenizer: Option<&Tokenizer>,
) -> Result<GenerateOutput> {
    if config.num_beams > 1 {
        return beam::beam_search(model, input_ids, attention_mask, config, tokenizer);
    }
    let mut generator = Generator::new(model, input_ids, attention_mask, config, tokenizer)?;
    while generator.step()?.is_some() {}
    Ok(generator.into_output())
}

/// What greedy decoding, sampling and beam search share: the checked and expanded prompt, the
/// lengths, special tokens, processors and stopping criteria.
struct Prepared {
    /// The prompts, each repeated `expand` times in a row.
    input_ids: Vec<Vec<u32>>,
    attention_mask: Vec<Vec<u32>>,
    /// The left padding of every row, which the repetition penalty skips.
    padding: Vec<usize>,
    prompt_len: usize,
    max_new_tokens: usize,
    eos_token_id: Option<u32>,
    pad_token_id: Option<u32>,
    processors: LogitsProcessors,
    stopping: Stopping,
    rng: StdRng,
}

impl Prepared {
    fn new(
        model: &GPT2LMHeadModel,
        input_ids: Vec<Vec<u32>>,
        attention_mask: Option<Vec<Vec<u32>>>,
        config: &GenerationConfig,
        tokenizer: Option<&Tokenizer>,
        expand: usize,
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
        let stop_strings = config.stop_strings.as_ref().map(StopStrings::to_vec);
        let stopping = Stopping::new(eos_token_id, stop_string_criteria(stop_strings, tokenizer)?);
        let processors = LogitsProcessors::new(
            config,
            eos_token_id,
            model_config.vocab_size,
            prompt_len,
            config.num_beams > 1,
        )?;
        let repeat = |rows: Vec<Vec<u32>>| -> Vec<Vec<u32>> {
            rows.into_iter()
                .flat_map(|row| std::iter::repeat_n(row, expand))
                .collect()
        };
        let attention_mask = repeat(attention_mask);
        Ok(Self {
            padding: attention_mask
                .iter()
                .map(|row| row.iter().take_while(|&&m| m == 0).count())
                .collect(),
            input_ids: repeat(input_ids),
            attention_mask,
            prompt_len,
            max_new_tokens,
            eos_token_id,
            pad_token_id,
            processors,
            stopping,
            rng: match config.seed {
                Some(seed) => StdRng::seed_from_u64(seed),
                None => StdRng::from_os_rng(),
            },
        })
    }
}

/// The model side of a generation: the KV cache, the attention masks, and the ids and positions
/// not yet run through the model (the prompt, then each step's tokens).
struct Decoder {
    model: Arc<GPT2LMHeadModel>,
    cache: Gpt2Cache,
    attention_mask: Vec<Vec<u32>>,
    pending_ids: Vec<Vec<u32>>,
    pending_positions: Vec<Vec<u32>>,
}

impl Decoder {
    fn new(
        model: Arc<GPT2LMHeadModel>,
        input_ids: Vec<Vec<u32>>,
        attention_mask: Vec<Vec<u32>>,
        max_len: usize,
    ) -> Self {
        Self {
            cache: model.base().new_cache(max_len),
            pending_positions: attention_mask
                .iter()
                .map(|row| position_ids_from_mask(row))
                .collect(),
            pending_ids: input_ids,
            attention_mask,
            model,
        }
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

    /// Makes one token per row the next step's input.
    fn advance(&mut self, tokens: &[u32]) {
        for (row, &token) in tokens.iter().enumerate() {
            let next_position = self.pending_positions[row].last().map_or(0, |p| p + 1);
            self.attention_mask[row].push(1);
            self.pending_ids[row] = vec![token];
            self.pending_positions[row] = vec![next_position];
        }
    }

    /// Continues from the rows `rows` (one per row, in the new order): beam search's reordering.
    fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        let pick = |table: &[Vec<u32>]| rows.iter().map(|&r| table[r].clone()).collect();
        self.attention_mask = pick(&self.attention_mask);
        self.pending_positions = pick(&self.pending_positions);
        let indices: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        Ok(self.cache.select_rows(&indices)?)
    }
}

/// Greedy decoding or sampling in progress: each `step` adds one token to every row.
pub struct Generator {
    decoder: Decoder,
    prepared: Prepared,
    config: GenerationConfig,
    sequences: Vec<Vec<u32>>,
    unfinished: Vec<bool>,
    new_tokens: usize,
    /// Per step, the processed scores (`return_dict_in_generate` with `output_scores`).
    scores: Option<Vec<Vec<Vec<f32>>>>,
}

impl Generator {
    /// Checks the prompt (`input_ids` rows, and an `attention_mask` of the same shape with 1
    /// for tokens and 0 for padding) and the options, and prepares the first step. With
    /// `num_return_sequences`, each prompt gets that many rows, sampled independently.
    pub fn new(
        model: Arc<GPT2LMHeadModel>,
        input_ids: Vec<Vec<u32>>,
        attention_mask: Option<Vec<Vec<u32>>>,
        config: GenerationConfig,
        tokenizer: Option<&Tokenizer>,
    ) -> Result<Self> {
        if config.num_beams > 1 {
            return invalid_input!(
                "beam search (num_beams > 1) cannot be streamed step by step; use generate, or \
                 num_beams=1"
            );
        }
        let expand = config.num_return_sequences;
        let prepared = Prepared::new(
            &model,
            input_ids,
            attention_mask,
            &config,
            tokenizer,
            expand,
        )?;
        let max_len = prepared.prompt_len + prepared.max_new_tokens;
        let sequences = prepared.input_ids.clone();
        let decoder = Decoder::new(
            model,
            prepared.input_ids.clone(),
            prepared.attention_mask.clone(),
            max_len,
        );
        Ok(Self {
            unfinished: vec![true; sequences.len()],
            scores: (config.return_dict_in_generate && config.output_scores).then(Vec::new),
            sequences,
            decoder,
            prepared,
            config,
            new_tokens: 0,
        })
    }

    /// Whether generation has stopped: `max_new_tokens` reached or every row has finished.
    pub fn is_done(&self) -> bool {
        self.new_tokens >= self.prepared.max_new_tokens || !self.unfinished.iter().any(|&u| u)
    }

    /// Generates the next token of every row (the pad token for rows already finished), or
    /// `None` once generation is done.
    pub fn step(&mut self) -> Result<Option<Vec<u32>>> {
        if self.is_done() {
            return Ok(None);
        }
        let mut logits = self.decoder.next_logits()?;
        let prepared = &mut self.prepared;
        let mut tokens = Vec::with_capacity(logits.len());
        for (row, scores) in logits.iter_mut().enumerate() {
            prepared
                .processors
                .apply(&self.sequences[row], prepared.padding[row], scores);
            // Rows that stopped get padding, when eos stops rows (else they go on, as in
            // transformers); the pad token defaults to eos, so it is set then.
            let token = if !self.unfinished[row] && prepared.stopping.has_eos() {
                prepared.pad_token_id.unwrap_or_default()
            } else if self.config.do_sample {
                sample(scores, &mut prepared.rng)
            } else {
                processors::argmax(scores)
            };
            tokens.push(token);
        }
        if let Some(scores) = &mut self.scores {
            scores.push(logits);
        }
        for (row, &token) in tokens.iter().enumerate() {
            self.sequences[row].push(token);
            if self.prepared.stopping.is_finished(&self.sequences[row]) {
                self.unfinished[row] = false;
            }
        }
        self.decoder.advance(&tokens);
        self.new_tokens += 1;
        Ok(Some(tokens))
    }

    /// The prompts followed by the tokens generated so far.
    pub fn sequences(&self) -> &[Vec<u32>] {
        &self.sequences
    }

    /// The sequences, and the scores when they were asked for.
    pub fn into_output(self) -> GenerateOutput {
        GenerateOutput {
            sequences: self.sequences,
            scores: self.scores,
            ..GenerateOutput::default()
        }
    }
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
    fn invalid_prompts_are_rejected() {
        assert!(validate_prompt(&[vec![]], 10).is_err());
        assert!(validate_prompt(&[vec![1, 10]], 10).is_err());
        assert!(validate_mask(&[vec![0, 0]], 1, 2).is_err());
        assert!(validate_mask(&[vec![0, 1]], 1, 2).is_ok());
    }
}
