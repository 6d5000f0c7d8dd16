//! Beam search as transformers 5's `_beam_search`: each step keeps, per prompt, the
//! `2 × num_beams` best continuations of all beams (sampled without replacement in beam
//! sampling), continues the best `num_beams` that have not finished, and keeps the best
//! `num_beams` finished hypotheses (scores divided by `length ** length_penalty`), stopping as
//! `early_stopping` says.

use std::sync::Arc;

use super::config::{EarlyStopping, GenerationConfig};
use super::processors::{draw, log_softmax, softmax};
use super::{Decoder, GenerateOutput, Prepared};
use crate::error::Result;
use crate::models::gpt2::GPT2LMHeadModel;
use crate::tokenizer::Tokenizer;

/// transformers' stand-in for minus infinity in beam scores.
const EXCLUDED: f32 = -1.0e9;

/// A hypothesis: its tokens (prompt included), its score, and the row each new token came from.
#[derive(Clone)]
struct Hypothesis {
    tokens: Vec<u32>,
    score: f32,
    beam_indices: Vec<i64>,
    /// For the finished set: whether this slot holds a finished hypothesis.
    finished: bool,
}

/// A continuation of a running beam: its hypothesis and the beam it extends.
struct Candidate {
    hypothesis: Hypothesis,
    source: usize,
    /// The sequence stops here (eos, a stop string, or the maximum length).
    stops: bool,
}

pub fn beam_search(
    model: Arc<GPT2LMHeadModel>,
    input_ids: Vec<Vec<u32>>,
    attention_mask: Option<Vec<Vec<u32>>>,
    config: GenerationConfig,
    tokenizer: Option<&Tokenizer>,
) -> Result<GenerateOutput> {
    let num_beams = config.num_beams;
    let batch = input_ids.len();
    let mut prepared = Prepared::new(
        &model,
        input_ids,
        attention_mask,
        &config,
        tokenizer,
        num_beams,
    )?;
    let prompt_len = prepared.prompt_len;
    let max_length = prompt_len + prepared.max_new_tokens;
    let mut search = Search {
        num_beams,
        beams_to_keep: 2 * num_beams,
        prompt_len,
        max_length,
        length_penalty: config.length_penalty,
        early_stopping: config.early_stopping,
        running: (0..batch)
            .map(|b| {
                (0..num_beams)
                    .map(|j| Hypothesis {
                        tokens: prepared.input_ids[b * num_beams + j].clone(),
                        // Only the first beam's continuations count at the first step.
                        score: if j == 0 { 0.0 } else { EXCLUDED },
                        beam_indices: Vec::new(),
                        finished: false,
                    })
                    .collect()
            })
            .collect(),
        finished: vec![
            vec![
                Hypothesis {
                    tokens: Vec::new(),
                    score: EXCLUDED,
                    beam_indices: Vec::new(),
                    finished: false,
                };
                num_beams
            ];
            batch
        ],
        improvable: vec![true; batch],
    };
    let mut decoder = Decoder::new(
        model,
        prepared.input_ids.clone(),
        prepared.attention_mask.clone(),
        max_length,
    );
    let mut all_scores = (config.return_dict_in_generate && config.output_scores).then(Vec::new);
    loop {
        let mut log_probs: Vec<Vec<f32>> = decoder
            .next_logits()?
            .iter()
            .map(|row| log_softmax(row))
            .collect();
        for (row, scores) in log_probs.iter_mut().enumerate() {
            let hypothesis = &search.running[row / num_beams][row % num_beams];
            prepared
                .processors
                .apply(&hypothesis.tokens, prepared.padding[row], scores);
        }
        let mut all_stop = true;
        let mut sources = Vec::with_capacity(batch * num_beams);
        for b in 0..batch {
            let rows = &log_probs[b * num_beams..(b + 1) * num_beams];
            let picks = if config.do_sample {
                sample_candidates(
                    rows,
                    &search.running[b],
                    search.beams_to_keep,
                    &mut prepared,
                )
            } else {
                top_candidates(rows, &search.running[b], search.beams_to_keep)
            };
            let candidates = search.candidates(b, &picks, &prepared);
            all_stop &= candidates.iter().all(|c| c.stops);
            sources.extend(search.continue_best(b, &candidates));
            search.update_finished(b, candidates);
        }
        if let Some(all) = &mut all_scores {
            all.push(log_probs);
        }
        if !search.goes_on(all_stop) {
            break;
        }
        let tokens: Vec<u32> = search
            .running
            .iter()
            .flatten()
            .map(|h| *h.tokens.last().expect("a prompt is not empty"))
            .collect();
        decoder.select_rows(&sources)?;
        decoder.advance(&tokens);
    }
    Ok(search.output(&config, &prepared, all_scores))
}

/// The beam search state of a batch.
struct Search {
    num_beams: usize,
    beams_to_keep: usize,
    prompt_len: usize,
    max_length: usize,
    length_penalty: f64,
    early_stopping: EarlyStopping,
    /// Per prompt, the `num_beams` running hypotheses, best first.
    running: Vec<Vec<Hypothesis>>,
    /// Per prompt, the `num_beams` best finished hypotheses, best first.
    finished: Vec<Vec<Hypothesis>>,
    /// Per prompt: whether a running beam may still beat a finished one.
    improvable: Vec<bool>,
}

impl Search {
    /// The candidates (beam, token, accumulated score) as hypotheses.
    fn candidates(
        &self,
        b: usize,
        picks: &[(f32, usize, u32)],
        prepared: &Prepared,
    ) -> Vec<Candidate> {
        picks
            .iter()
            .map(|&(score, beam, token)| {
                let parent = &self.running[b][beam];
                let mut tokens = parent.tokens.clone();
                tokens.push(token);
                let mut beam_indices = parent.beam_indices.clone();
                beam_indices.push((b * self.num_beams + beam) as i64);
                let stops =
                    tokens.len() >= self.max_length || prepared.stopping.is_finished(&tokens);
                Candidate {
                    hypothesis: Hypothesis {
                        tokens,
                        score,
                        beam_indices,
                        finished: false,
                    },
                    source: b * self.num_beams + beam,
                    stops,
                }
            })
            .collect()
    }

    /// The best `num_beams` candidates that do not stop become the running beams (when fewer
    /// remain, stopped ones fill in, excluded by their score); returns the rows they extend.
    fn continue_best(&mut self, b: usize, candidates: &[Candidate]) -> Vec<usize> {
        let scores: Vec<f32> = candidates
            .iter()
            .map(|c| c.hypothesis.score + if c.stops { EXCLUDED } else { 0.0 })
            .collect();
        let best = best_indices(&scores, self.num_beams);
        self.running[b] = best
            .iter()
            .map(|&k| Hypothesis {
                score: scores[k],
                ..candidates[k].hypothesis.clone()
            })
            .collect();
        best.iter().map(|&k| candidates[k].source).collect()
    }

    /// Among the best `num_beams` candidates, those that stop join the finished hypotheses,
    /// which keep the best `num_beams`.
    fn update_finished(&mut self, b: usize, candidates: Vec<Candidate>) {
        let length = self.current_len(&candidates) + 1 - self.prompt_len;
        let divisor = (length as f64).powf(self.length_penalty) as f32;
        let full = self.early_stopping == EarlyStopping::Flag(true)
            && self.finished[b].iter().all(|h| h.finished);
        let mut pool = std::mem::take(&mut self.finished[b]);
        for (k, candidate) in candidates.into_iter().enumerate() {
            let just_finished = candidate.stops && k < self.num_beams;
            let mut score = candidate.hypothesis.score / divisor;
            for excluded in [full, !self.improvable[b], !just_finished] {
                score += if excluded { EXCLUDED } else { 0.0 };
            }
            pool.push(Hypothesis {
                score,
                finished: just_finished,
                ..candidate.hypothesis
            });
        }
        let scores: Vec<f32> = pool.iter().map(|h| h.score).collect();
        self.finished[b] = best_indices(&scores, self.num_beams)
            .into_iter()
            .map(|k| pool[k].clone())
            .collect();
    }

    /// The length before this step's token.
    fn current_len(&self, candidates: &[Candidate]) -> usize {
        candidates
            .first()
            .map_or(self.prompt_len, |c| c.hypothesis.tokens.len() - 1)
    }

    /// Updates which prompts can still improve and says whether the search goes on
    /// (transformers' `_check_early_stop_heuristic` and `_beam_search_has_unfinished_sequences`).
    fn goes_on(&mut self, all_stop: bool) -> bool {
        let cur_len = self.running[0][0].tokens.len();
        let hypothetical = match self.early_stopping {
            EarlyStopping::Never(_) if self.length_penalty > 0.0 => {
                self.max_length - self.prompt_len
            }
            _ => cur_len - self.prompt_len,
        };
        let divisor = (hypothetical as f64).powf(self.length_penalty) as f32;
        for b in 0..self.running.len() {
            let best_possible = self.running[b][0].score / divisor;
            let worst = self.finished[b]
                .iter()
                .map(|h| h.score)
                .fold(f32::INFINITY, f32::min);
            let can_beat = self.finished[b]
                .iter()
                .any(|h| best_possible > if h.finished { worst } else { EXCLUDED });
            self.improvable[b] &= can_beat;
        }
        let all_full = self.finished.iter().flatten().all(|h| h.finished)
            && self.early_stopping == EarlyStopping::Flag(true);
        self.improvable.iter().any(|&i| i) && !all_full && !all_stop
    }

    /// The best `num_return_sequences` finished hypotheses of every prompt, padded to one length.
    fn output(
        self,
        config: &GenerationConfig,
        prepared: &Prepared,
        scores: Option<Vec<Vec<Vec<f32>>>>,
    ) -> GenerateOutput {
        let returned: Vec<Hypothesis> = self
            .finished
            .into_iter()
            .flat_map(|hypotheses| hypotheses.into_iter().take(config.num_return_sequences))
            .collect();
        let generated = returned
            .iter()
            .map(|h| h.beam_indices.len())
            .max()
            .unwrap_or(0);
        // transformers fills with `pad_token_id or eos_token_id` (a pad id of 0 counts as unset).
        let fill = prepared
            .pad_token_id
            .filter(|&p| p != 0)
            .or(prepared.eos_token_id)
            .unwrap_or_default();
        let width = self.prompt_len + generated;
        let sequences = returned
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let mut tokens = if h.finished {
                    h.tokens.clone()
                } else {
                    prepared.input_ids[i / config.num_return_sequences * self.num_beams].clone()
                };
                tokens.resize(width, fill);
                tokens
            })
            .collect();
        let with_dict = config.return_dict_in_generate;
        GenerateOutput {
            sequences,
            sequences_scores: (with_dict && config.output_scores)
                .then(|| returned.iter().map(|h| h.score).collect()),
            beam_indices: with_dict.then(|| {
                returned
                    .iter()
                    .map(|h| {
                        let mut indices = h.beam_indices.clone();
                        indices.resize(generated, -1);
                        indices
                    })
                    .collect()
            }),
            scores,
        }
    }
}

/// The `k` best continuations (accumulated score, beam, token) of a prompt's beams, best first
/// (ties: the lower index first).
fn top_candidates(rows: &[Vec<f32>], running: &[Hypothesis], k: usize) -> Vec<(f32, usize, u32)> {
    let mut best: Vec<(f32, usize, u32)> = Vec::with_capacity(k + 1);
    for (beam, row) in rows.iter().enumerate() {
        let base = running[beam].score;
        for (token, &log_prob) in row.iter().enumerate() {
            let score = log_prob + base;
            // NaN-free scores: a candidate not above the k-th best is skipped.
            if best.len() == k
                && score.partial_cmp(&best[k - 1].0) != Some(std::cmp::Ordering::Greater)
            {
                continue;
            }
            let at = best.partition_point(|&(s, _, _)| s >= score);
            best.insert(at, (score, beam, token as u32));
            best.truncate(k);
        }
    }
    best
}

/// `k` continuations drawn without replacement from the softmax of the accumulated scores (beam
/// sampling), best first.
fn sample_candidates(
    rows: &[Vec<f32>],
    running: &[Hypothesis],
    k: usize,
    prepared: &mut Prepared,
) -> Vec<(f32, usize, u32)> {
    let vocab = rows[0].len();
    let accumulated: Vec<f32> = rows
        .iter()
        .zip(running)
        .flat_map(|(row, h)| row.iter().map(move |&l| l + h.score))
        .collect();
    let mut weights = softmax(&accumulated);
    let mut picks: Vec<(f32, usize, u32)> = (0..k.min(accumulated.len()))
        .map(|_| {
            let index = draw(&weights, &mut prepared.rng);
            weights[index] = 0.0;
            (accumulated[index], index / vocab, (index % vocab) as u32)
        })
        .collect();
    picks.sort_by(|a, b| b.0.total_cmp(&a.0));
    picks
}

/// The indices of the `k` largest scores, best first (ties: the lower index first).
fn best_indices(scores: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order.truncate(k);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hypothesis(score: f32) -> Hypothesis {
        Hypothesis {
            tokens: vec![1],
            score,
            beam_indices: Vec::new(),
            finished: false,
        }
    }

    #[test]
    fn top_candidates_span_all_beams() {
        let rows = vec![vec![-1.0, -2.0, -3.0], vec![-0.5, -4.0, -0.1]];
        let running = [hypothesis(0.0), hypothesis(-1.0)];
        let best = top_candidates(&rows, &running, 3);
        assert_eq!(best, [(-1.0, 0, 0), (-1.1, 1, 2), (-1.5, 1, 0)]);
        assert_eq!(best_indices(&[0.5, 2.0, 2.0, -1.0], 2), [1, 2]);
    }
}
