//! The state of one row during denoising: its canvas, the generation slots, which slots are
//! masked, and the score stored for each slot (RDM's `output_scores`).

use crate::canvas::Canvas;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    /// The full canvas.
    pub tokens: Vec<u32>,
    /// Absolute positions of the generation slots, ascending.
    pub slots: Vec<usize>,
    /// Per slot: currently `<mask>`.
    pub masked: Vec<bool>,
    /// Per slot: the stored log-probability (0 before the slot is first decoded, −∞ while
    /// re-masked by a reparameterized step).
    pub scores: Vec<f32>,
    /// Fast-dLLM: no block before this one is current any more (a step that could not
    /// unmask anything moved the row past its block; see `plan_step`).
    pub block: usize,
}

impl Row {
    pub fn new(canvas: &Canvas) -> Row {
        let slots: Vec<usize> = canvas.generate().iter().enumerate().filter(|(_, g)| **g).map(|(i, _)| i).collect();
        let n = slots.len();
        Row { tokens: canvas.ids().to_vec(), slots, masked: vec![true; n], scores: vec![0.0; n], block: 0 }
    }

    /// N: the number of generation slots.
    pub fn n(&self) -> usize {
        self.slots.len()
    }

    pub fn masked_count(&self) -> usize {
        self.masked.iter().filter(|&&m| m).count()
    }

    pub fn token(&self, slot: usize) -> u32 {
        self.tokens[self.slots[slot]]
    }

    /// Writes a decoded token and its score into a slot.
    pub fn decode(&mut self, slot: usize, token: u32, score: f32) {
        self.tokens[self.slots[slot]] = token;
        self.masked[slot] = false;
        self.scores[slot] = score;
    }

    /// The reference's `x[transfer] = x0[transfer]` for one masked slot: writes the
    /// predicted token, except that a prediction of `<mask>` leaves the slot masked (and
    /// its stored score as it was). True when the slot was decoded.
    pub fn transfer(&mut self, slot: usize, token: u32, score: f32, mask: u32) -> bool {
        if token == mask {
            return false;
        }
        self.decode(slot, token, score);
        true
    }

    /// Puts `<mask>` back into a slot; its stored score becomes −∞.
    pub fn remask(&mut self, slot: usize, mask: u32) {
        self.tokens[self.slots[slot]] = mask;
        self.masked[slot] = true;
        self.scores[slot] = f32::NEG_INFINITY;
    }

    /// Absolute positions of the given slots.
    pub fn positions(&self, slots: &[usize]) -> Vec<usize> {
        slots.iter().map(|&j| self.slots[j]).collect()
    }
}
