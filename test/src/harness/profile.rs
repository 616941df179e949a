//! Where the gas of a transaction goes, by kind of work.

use std::{collections::BTreeMap, fmt};

use alloy::primitives::Address;

use revm::{
    Inspector,
    interpreter::{Interpreter, interpreter_types::Jumps},
};

/// The gas of one transaction split by kind of work. The parts add up to the gas used before
/// the refund; `refund` is what the chain gave back (so `gas_used = total() - refund`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GasProfile {
    /// 21,000 base cost of a transaction plus the calldata cost.
    pub intrinsic: u64,
    /// `SSTORE`: storage writes (including cold slot access).
    pub storage_writes: u64,
    /// `SLOAD`: storage reads (including cold slot access).
    pub storage_reads: u64,
    /// `TLOAD`/`TSTORE`: transient storage (reentrancy guards).
    pub transient: u64,
    /// `LOG0`..`LOG4`: events.
    pub events: u64,
    /// `KECCAK256`: hashing of ids and mapping keys.
    pub hashing: u64,
    /// Calls and creations: cold account access, value transfer surcharges, memory for
    /// arguments (the callee's own work is counted in the other fields).
    pub calls: u64,
    /// `BALANCE`, `EXTCODESIZE`, `EXTCODEHASH`, `EXTCODECOPY`: other account access.
    pub account_reads: u64,
    /// Every other opcode: arithmetic, stack, memory, control flow, ABI coding.
    pub compute: u64,
    /// Storage refund subtracted at the end.
    pub refund: u64,
    /// Gas of the opcodes each contract executed itself (calls excluded), by the address whose
    /// storage it ran against.
    pub by_contract: BTreeMap<Address, u64>,
}

impl GasProfile {
    /// Sum of all parts: the gas used before the refund.
    pub fn total(&self) -> u64 {
        self.intrinsic
            + self.storage_writes
            + self.storage_reads
            + self.transient
            + self.events
            + self.hashing
            + self.calls
            + self.account_reads
            + self.compute
    }

    /// The parts as (name, gas) pairs, in a fixed order.
    pub fn parts(&self) -> [(&'static str, u64); 10] {
        [
            ("intrinsic", self.intrinsic),
            ("storage_writes", self.storage_writes),
            ("storage_reads", self.storage_reads),
            ("transient", self.transient),
            ("events", self.events),
            ("hashing", self.hashing),
            ("calls", self.calls),
            ("account_reads", self.account_reads),
            ("compute", self.compute),
            ("refund", self.refund),
        ]
    }
}

impl fmt::Display for GasProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .parts()
            .iter()
            .filter(|(_, gas)| *gas != 0)
            .map(|(name, gas)| format!("{name} {gas}"))
            .collect();
        write!(f, "{}", parts.join(", "))
    }
}

/// An inspector that charges the gas of every executed opcode to a part of a [`GasProfile`].
///
/// Calls and creations are not charged at the opcode (their cost there includes the gas handed
/// to the callee); the harness assigns them the rest once the transaction is done.
#[derive(Debug, Default)]
pub(crate) struct GasProfiler {
    pub(crate) profile: GasProfile,
    current: Option<(u8, u64)>,
}

impl<CTX> Inspector<CTX> for GasProfiler {
    fn step(&mut self, interp: &mut Interpreter, _context: &mut CTX) {
        self.current = Some((interp.bytecode.opcode(), interp.gas.remaining()));
    }

    fn step_end(&mut self, interp: &mut Interpreter, _context: &mut CTX) {
        let Some((opcode, before)) = self.current.take() else {
            return;
        };
        let cost = before.saturating_sub(interp.gas.remaining());
        let profile = &mut self.profile;
        let is_call = matches!(opcode, 0xf0 | 0xf1 | 0xf2 | 0xf4 | 0xf5 | 0xfa);
        if !is_call {
            *profile
                .by_contract
                .entry(interp.input.target_address)
                .or_default() += cost;
        }
        match opcode {
            // CALL, CALLCODE, DELEGATECALL, STATICCALL, CREATE, CREATE2: see the type's docs.
            _ if is_call => {}
            0x55 => profile.storage_writes += cost,
            0x54 => profile.storage_reads += cost,
            0x5c | 0x5d => profile.transient += cost,
            0xa0..=0xa4 => profile.events += cost,
            0x20 => profile.hashing += cost,
            0x31 | 0x3b | 0x3c | 0x3f => profile.account_reads += cost,
            _ => profile.compute += cost,
        }
    }
}

/// Intrinsic gas of a call transaction on Cancun: 21,000 plus 16 per non-zero and 4 per zero
/// calldata byte (no access list).
pub(crate) fn intrinsic_gas(input: &[u8], is_create: bool) -> u64 {
    let zeros = input.iter().filter(|byte| **byte == 0).count() as u64;
    let non_zeros = input.len() as u64 - zeros;
    let mut gas = 21_000 + 4 * zeros + 16 * non_zeros;
    if is_create {
        // CREATE transaction surcharge and EIP-3860 init code words.
        gas += 32_000 + 2 * (input.len() as u64).div_ceil(32);
    }
    gas
}
