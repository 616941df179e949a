//! Shrinking a failing sequence: delta debugging over its steps (remove halves, quarters, ...,
//! single steps while the same invariant still breaks), then merging adjacent clock moves.

use super::Campaign;
use super::actions::{Call, Step};

/// Most sequences replayed while shrinking one failure.
const BUDGET: usize = 4_000;

/// The shortest sequence found that still breaks `invariant`.
pub fn shrink(campaign: &mut Campaign, steps: Vec<Step>, invariant: &str) -> Vec<Step> {
    let budget = std::cell::Cell::new(BUDGET);
    let fails = |campaign: &mut Campaign, candidate: &[Step]| -> Option<usize> {
        if budget.get() == 0 {
            return None;
        }
        budget.set(budget.get() - 1);
        match campaign.execute(candidate).violation {
            Some((index, violation)) if violation.invariant == invariant => Some(index),
            _ => None,
        }
    };
    let mut current = steps;
    if let Some(index) = fails(campaign, &current) {
        current.truncate(index + 1);
    } else {
        return current;
    }
    loop {
        let before = current.len();
        // Remove chunks, from large to single steps.
        let mut chunk = (current.len() / 2).max(1);
        loop {
            let mut start = 0;
            while start < current.len() {
                let end = (start + chunk).min(current.len());
                let mut candidate = current[..start].to_vec();
                candidate.extend_from_slice(&current[end..]);
                match fails(campaign, &candidate) {
                    Some(index) => {
                        candidate.truncate(index + 1);
                        current = candidate;
                    }
                    None => start += chunk,
                }
            }
            if chunk == 1 {
                break;
            }
            chunk /= 2;
        }
        // Merge adjacent clock moves into one warp.
        let mut i = 0;
        while i + 1 < current.len() {
            if let (Some(a), Some(b)) = (seconds(&current[i].call), seconds(&current[i + 1].call)) {
                let mut candidate = current.clone();
                candidate[i] = Step {
                    actor: current[i].actor,
                    call: Call::Warp { seconds: a + b },
                };
                candidate.remove(i + 1);
                if let Some(index) = fails(campaign, &candidate) {
                    candidate.truncate(index + 1);
                    current = candidate;
                    continue;
                }
            }
            i += 1;
        }
        if current.len() >= before || budget.get() == 0 {
            return current;
        }
    }
}

/// Seconds a clock move advances (a mined block moves the clock as a warp would, plus the
/// block number, which no contract reads).
fn seconds(call: &Call) -> Option<u64> {
    match call {
        Call::Warp { seconds } => Some(*seconds),
        Call::Mine { blocks } => Some(blocks * crate::harness::BLOCK_TIME),
        _ => None,
    }
}
