//! The in-memory chain.

use std::{collections::HashMap, convert::Infallible, fmt};

use alloy::{
    primitives::{Address, B256, Bytes, TxKind, U256, keccak256},
    signers::local::PrivateKeySigner,
    sol_types::{SolCall, SolConstructor},
};
use revm::{
    Context, DatabaseRef, ExecuteCommitEvm, ExecuteEvm, InspectEvm, MainBuilder, MainContext,
    context::{
        TxEnv,
        result::{ExecutionResult, Output},
    },
    context_interface::block::BlobExcessGasAndPrice,
    database::{CacheDB, EmptyDB},
    handler::{MainnetContext, MainnetEvm},
    primitives::{eip4844::BLOB_BASE_FEE_UPDATE_FRACTION_CANCUN, hardfork::SpecId},
    state::AccountInfo,
};

use super::{
    Receipt, Revert, TxError,
    profile::{GasProfile, GasProfiler, intrinsic_gas},
};

/// Chain id of the harness chain (the same as anvil's default).
pub const CHAIN_ID: u64 = 31337;
/// Hard fork the harness runs: Cancun, the `evm_version` the contracts are compiled for.
pub const SPEC: SpecId = SpecId::CANCUN;
/// Block number of a new [`Chain`].
pub const GENESIS_BLOCK: u64 = 1;
/// Timestamp (seconds since the UNIX epoch) of a new [`Chain`]: 2024-01-01T00:00:00Z.
pub const GENESIS_TIMESTAMP: u64 = 1_704_067_200;
/// Seconds between two blocks made by [`Chain::mine`].
pub const BLOCK_TIME: u64 = 12;
/// Gas limit of every block, and the default gas limit of a transaction.
pub const BLOCK_GAS_LIMIT: u64 = 30_000_000;
/// ETH balance of each account made by [`Chain::account`]: 10 000 ether.
pub const DEFAULT_BALANCE: U256 = U256::from_limbs([0x19e0_c9ba_b240_0000, 0x21e, 0, 0]);

type Db = CacheDB<EmptyDB>;
type Evm = MainnetEvm<MainnetContext<Db>>;

/// Domain separator of the keys of the accounts made by [`Chain::account`].
const ACCOUNT_SEED: &[u8] = b"insitu.harness.account";

/// An in-memory EVM chain. See the [module documentation](super) for an overview.
pub struct Chain {
    evm: Evm,
    signers: HashMap<Address, PrivateKeySigner>,
    labels: HashMap<Address, String>,
    next_account: u64,
    gas_limit: u64,
}

/// A saved state of a [`Chain`] (accounts, storage, code, clock), restored with
/// [`Chain::restore`].
#[derive(Clone, Debug)]
pub struct Snapshot {
    db: Db,
    number: U256,
    timestamp: U256,
}

/// A raw transaction for [`Chain::send`] and [`Chain::simulate`]: the untyped form behind the
/// typed helpers, for calldata built by hand or plain ETH transfers with options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tx {
    /// Sender. No signature is checked; any address can send.
    pub from: Address,
    /// Callee, or `None` to create a contract from `input`.
    pub to: Option<Address>,
    /// Calldata, or init code (bytecode followed by encoded constructor arguments) for a create.
    pub input: Bytes,
    /// Wei sent along.
    pub value: U256,
    /// Gas limit; `None` uses the chain's default ([`Chain::set_gas_limit`]).
    pub gas_limit: Option<u64>,
}

impl Tx {
    /// A call of `to` with `input` as calldata.
    pub fn call(from: Address, to: Address, input: impl Into<Bytes>) -> Self {
        Self {
            from,
            to: Some(to),
            input: input.into(),
            ..Self::default()
        }
    }

    /// A contract creation with `initcode`.
    pub fn create(from: Address, initcode: impl Into<Bytes>) -> Self {
        Self {
            from,
            to: None,
            input: initcode.into(),
            ..Self::default()
        }
    }

    /// Sets the wei sent along.
    #[must_use]
    pub fn value(mut self, value: U256) -> Self {
        self.value = value;
        self
    }

    /// Sets the gas limit.
    #[must_use]
    pub fn gas_limit(mut self, gas_limit: u64) -> Self {
        self.gas_limit = Some(gas_limit);
        self
    }
}

impl Default for Chain {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field("chain_id", &CHAIN_ID)
            .field("block_number", &self.block_number())
            .field("timestamp", &self.timestamp())
            .field("accounts", &self.next_account)
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl Chain {
    /// A new chain at block [`GENESIS_BLOCK`], time [`GENESIS_TIMESTAMP`], with no accounts.
    pub fn new() -> Self {
        let evm = Context::mainnet()
            .with_db(Db::default())
            .modify_cfg_chained(|cfg| {
                cfg.spec = SPEC;
                cfg.chain_id = CHAIN_ID;
            })
            .modify_block_chained(|block| {
                block.number = U256::from(GENESIS_BLOCK);
                block.timestamp = U256::from(GENESIS_TIMESTAMP);
                block.gas_limit = BLOCK_GAS_LIMIT;
                block.basefee = 0;
                block.prevrandao = Some(B256::ZERO);
                block.blob_excess_gas_and_price = Some(BlobExcessGasAndPrice::new(
                    0,
                    BLOB_BASE_FEE_UPDATE_FRACTION_CANCUN,
                ));
            })
            .build_mainnet();
        Self {
            evm,
            signers: HashMap::new(),
            labels: HashMap::new(),
            next_account: 0,
            gas_limit: BLOCK_GAS_LIMIT,
        }
    }

    // ---- Clock ----

    /// The chain id ([`CHAIN_ID`]).
    pub fn chain_id(&self) -> u64 {
        self.evm.ctx.cfg.chain_id
    }

    /// Number of the current block.
    pub fn block_number(&self) -> u64 {
        self.evm.ctx.block.number.saturating_to()
    }

    /// Timestamp of the current block, in seconds since the UNIX epoch.
    pub fn timestamp(&self) -> u64 {
        self.evm.ctx.block.timestamp.saturating_to()
    }

    /// Moves `blocks` blocks forward, each [`BLOCK_TIME`] seconds after the previous one.
    pub fn mine(&mut self, blocks: u64) {
        let block = &mut self.evm.ctx.block;
        block.number = block.number.saturating_add(U256::from(blocks));
        block.timestamp = block
            .timestamp
            .saturating_add(U256::from(blocks.saturating_mul(BLOCK_TIME)));
    }

    /// Moves the clock `seconds` forward without changing the block number (like Foundry's
    /// `vm.warp(block.timestamp + seconds)`).
    pub fn warp(&mut self, seconds: u64) {
        let block = &mut self.evm.ctx.block;
        block.timestamp = block.timestamp.saturating_add(U256::from(seconds));
    }

    /// Sets the timestamp of the current block. It may move backwards, which a real chain never
    /// does; prefer [`Chain::warp`].
    pub fn set_timestamp(&mut self, timestamp: u64) {
        self.evm.ctx.block.timestamp = U256::from(timestamp);
    }

    /// Sets the number of the current block, without changing the timestamp.
    pub fn set_block_number(&mut self, number: u64) {
        self.evm.ctx.block.number = U256::from(number);
    }

    // ---- Accounts ----

    /// Creates the next deterministic externally owned account, funded with [`DEFAULT_BALANCE`].
    ///
    /// The n-th account of every chain has the same key and address, so test output is stable.
    /// Its private key is available through [`Chain::signer`].
    pub fn account(&mut self) -> Address {
        let mut seed = ACCOUNT_SEED.to_vec();
        seed.extend_from_slice(&self.next_account.to_be_bytes());
        self.next_account += 1;
        // keccak256 of distinct inputs is a valid secp256k1 key except with negligible
        // probability; skip such a value rather than fail.
        let mut key = keccak256(&seed);
        let signer = loop {
            match PrivateKeySigner::from_bytes(&key) {
                Ok(signer) => break signer,
                Err(_) => key = keccak256(key),
            }
        };
        let address = signer.address();
        self.signers.insert(address, signer);
        self.set_balance(address, DEFAULT_BALANCE);
        address
    }

    /// Like [`Chain::account`], and labels the account with `label`.
    pub fn account_named(&mut self, label: &str) -> Address {
        let address = self.account();
        self.label(address, label);
        address
    }

    /// The private key of an account made by [`Chain::account`], e.g. to sign EIP-712 messages.
    pub fn signer(&self, address: Address) -> Option<&PrivateKeySigner> {
        self.signers.get(&address)
    }

    /// Gives `address` a human-readable label (shown by [`Chain::name`]).
    pub fn label(&mut self, address: Address, label: &str) {
        self.labels.insert(address, label.to_owned());
    }

    /// The label of `address`, if any.
    pub fn label_of(&self, address: Address) -> Option<&str> {
        self.labels.get(&address).map(String::as_str)
    }

    /// The label of `address`, or its checksummed hex form.
    pub fn name(&self, address: Address) -> String {
        self.label_of(address)
            .map_or_else(|| address.to_checksum(None), str::to_owned)
    }

    /// ETH balance of `address`, in wei.
    pub fn balance(&self, address: Address) -> U256 {
        self.account_info(address).balance
    }

    /// Sets the ETH balance of `address`, in wei.
    pub fn set_balance(&mut self, address: Address, balance: U256) {
        let mut info = self.account_info(address);
        info.balance = balance;
        self.db_mut().insert_account_info(address, info);
    }

    /// Nonce of `address` (number of transactions sent, or contracts created by a contract).
    pub fn nonce(&self, address: Address) -> u64 {
        self.account_info(address).nonce
    }

    /// Runtime code at `address` (empty for an externally owned account).
    pub fn code(&self, address: Address) -> Bytes {
        let info = self.account_info(address);
        if let Some(code) = info.code {
            return code.original_bytes();
        }
        match self.db().code_by_hash_ref(info.code_hash) {
            Ok(code) => code.original_bytes(),
            Err(never) => match never {},
        }
    }

    /// Value of storage `slot` of `address`.
    pub fn storage(&self, address: Address, slot: U256) -> U256 {
        match self.db().storage_ref(address, slot) {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    // ---- Transactions ----

    /// Sets the gas limit used by transactions that do not set one (default
    /// [`BLOCK_GAS_LIMIT`]).
    pub fn set_gas_limit(&mut self, gas_limit: u64) {
        self.gas_limit = gas_limit;
    }

    /// Deploys a contract from `from`: `bytecode` is the creation code of a binding
    /// (`Name::BYTECODE`), `args` its constructor call (`Name::constructorCall { .. }`).
    /// Returns the new contract's address.
    pub fn deploy<A: SolConstructor>(
        &mut self,
        from: Address,
        bytecode: &[u8],
        args: &A,
    ) -> Result<Address, TxError> {
        let receipt = self.deploy_raw(from, initcode(bytecode, &args.abi_encode()), U256::ZERO)?;
        Ok(receipt.output)
    }

    /// Deploys a contract whose constructor takes no arguments.
    pub fn deploy_bare(&mut self, from: Address, bytecode: &[u8]) -> Result<Address, TxError> {
        Ok(self
            .deploy_raw(from, Bytes::copy_from_slice(bytecode), U256::ZERO)?
            .output)
    }

    /// Deploys `initcode` (creation code followed by the encoded constructor arguments) with
    /// `value` wei, and returns the receipt, whose `output` is the new address.
    pub fn deploy_raw(
        &mut self,
        from: Address,
        initcode: impl Into<Bytes>,
        value: U256,
    ) -> Result<Receipt<Address>, TxError> {
        let receipt = self.send(Tx::create(from, initcode).value(value))?;
        let address = receipt.contract_address.ok_or(TxError::NoContractCreated)?;
        Ok(receipt.map(|_| address))
    }

    /// Calls a function without committing anything (like `eth_call`), from the zero address.
    /// Returns the decoded return value.
    pub fn call<C: SolCall>(&mut self, to: Address, call: &C) -> Result<C::Return, TxError> {
        self.call_from(Address::ZERO, to, call)
    }

    /// Calls a function from `from` without committing anything (e.g. a view that reads
    /// `msg.sender`). Returns the decoded return value.
    pub fn call_from<C: SolCall>(
        &mut self,
        from: Address,
        to: Address,
        call: &C,
    ) -> Result<C::Return, TxError> {
        let receipt = self.simulate(Tx::call(from, to, call.abi_encode()))?;
        decode_return::<C>(&receipt.output)
    }

    /// Sends a transaction calling a function and commits it. Returns the receipt with the
    /// decoded return value; a revert is committed too (nonce), and returned as an error.
    pub fn transact<C: SolCall>(
        &mut self,
        from: Address,
        to: Address,
        call: &C,
    ) -> Result<Receipt<C::Return>, TxError> {
        self.transact_value(from, to, call, U256::ZERO)
    }

    /// Like [`Chain::transact`], sending `value` wei along to a payable function.
    pub fn transact_value<C: SolCall>(
        &mut self,
        from: Address,
        to: Address,
        call: &C,
        value: U256,
    ) -> Result<Receipt<C::Return>, TxError> {
        let receipt = self.send(Tx::call(from, to, call.abi_encode()).value(value))?;
        let output = decode_return::<C>(&receipt.output)?;
        Ok(receipt.map(|_| output))
    }

    /// Sends `value` wei from `from` to `to` with empty calldata (a plain transfer, or the
    /// `receive` function of a contract).
    pub fn send_eth(
        &mut self,
        from: Address,
        to: Address,
        value: U256,
    ) -> Result<Receipt<()>, TxError> {
        Ok(self
            .send(Tx::call(from, to, Bytes::new()).value(value))?
            .map(|_| ()))
    }

    /// Executes a raw transaction and commits it. The receipt's `output` is the raw return data
    /// (empty for a create; see `contract_address`).
    pub fn send(&mut self, tx: Tx) -> Result<Receipt<Bytes>, TxError> {
        self.execute(tx, true)
    }

    /// Executes a raw transaction without committing it, as `eth_call` does.
    pub fn simulate(&mut self, tx: Tx) -> Result<Receipt<Bytes>, TxError> {
        self.execute(tx, false)
    }

    // ---- Snapshots ----

    /// Saves the current state and clock.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            db: self.db().clone(),
            number: self.evm.ctx.block.number,
            timestamp: self.evm.ctx.block.timestamp,
        }
    }

    /// Restores a state saved by [`Chain::snapshot`]. Accounts made since keep their keys and
    /// labels, but their balances are those of the snapshot.
    pub fn restore(&mut self, snapshot: &Snapshot) {
        *self.db_mut() = snapshot.db.clone();
        self.evm.ctx.block.number = snapshot.number;
        self.evm.ctx.block.timestamp = snapshot.timestamp;
    }

    // ---- Internals ----

    fn db(&self) -> &Db {
        &self.evm.ctx.journaled_state.database
    }

    fn db_mut(&mut self) -> &mut Db {
        &mut self.evm.ctx.journaled_state.database
    }

    fn account_info(&self, address: Address) -> AccountInfo {
        match self.db().basic_ref(address) {
            Ok(info) => info.unwrap_or_default(),
            Err(never) => match never {},
        }
    }

    fn tx_env(&self, tx: Tx) -> TxEnv {
        TxEnv::builder()
            .caller(tx.from)
            .kind(tx.to.map_or(TxKind::Create, TxKind::Call))
            .data(tx.input)
            .value(tx.value)
            .gas_limit(tx.gas_limit.unwrap_or(self.gas_limit))
            .gas_price(0)
            .nonce(self.nonce(tx.from))
            .chain_id(Some(CHAIN_ID))
            .build_fill()
    }

    fn execute(&mut self, tx: Tx, commit: bool) -> Result<Receipt<Bytes>, TxError> {
        let env = self.tx_env(tx);
        let result: ExecutionResult = if commit {
            self.evm.transact_commit(env)
        } else {
            self.evm.transact(env).map(|outcome| outcome.result)
        }
        .map_err(|err| TxError::Rejected(err.map_db_err(|never: Infallible| match never {})))?;
        self.receipt(result)
    }

    /// Executes a transaction without committing it, like [`Chain::simulate`], and also returns
    /// where its gas went. The receipt is the same as [`Chain::send`] would give in this state.
    pub fn profile(&mut self, tx: Tx) -> Result<(Receipt<Bytes>, GasProfile), TxError> {
        let intrinsic = intrinsic_gas(&tx.input, tx.to.is_none());
        let env = self.tx_env(tx);
        let mut evm = self
            .evm
            .ctx
            .clone()
            .build_mainnet_with_inspector(GasProfiler::default());
        let result = evm
            .inspect_tx(env)
            .map_err(|err| TxError::Rejected(err.map_db_err(|never: Infallible| match never {})))?
            .result;
        let mut profile = std::mem::take(&mut evm.inspector.profile);
        profile.intrinsic = intrinsic;
        profile.refund = result.gas().final_refunded();
        let before_refund = result.tx_gas_used() + profile.refund;
        profile.calls = before_refund.saturating_sub(profile.total());
        let receipt = self.receipt(result)?;
        Ok((receipt, profile))
    }

    fn receipt(&self, result: ExecutionResult) -> Result<Receipt<Bytes>, TxError> {
        let gas_used = result.tx_gas_used();
        let gas_refunded = result.gas().final_refunded();
        match result {
            ExecutionResult::Success { logs, output, .. } => {
                let (output, contract_address) = match output {
                    Output::Call(data) => (data, None),
                    Output::Create(_, address) => (Bytes::new(), address),
                };
                Ok(Receipt {
                    output,
                    gas_used,
                    gas_refunded,
                    logs,
                    contract_address,
                    block_number: self.block_number(),
                    timestamp: self.timestamp(),
                })
            }
            ExecutionResult::Revert { output, .. } => Err(TxError::Revert(Revert {
                data: output,
                gas_used,
            })),
            ExecutionResult::Halt { reason, .. } => Err(TxError::Halt { reason, gas_used }),
        }
    }
}

fn initcode(bytecode: &[u8], args: &[u8]) -> Bytes {
    let mut code = Vec::with_capacity(bytecode.len() + args.len());
    code.extend_from_slice(bytecode);
    code.extend_from_slice(args);
    code.into()
}

fn decode_return<C: SolCall>(data: &[u8]) -> Result<C::Return, TxError> {
    C::abi_decode_returns(data).map_err(|source| TxError::Decode {
        function: C::SIGNATURE,
        data: Bytes::copy_from_slice(data),
        source: Box::new(source),
    })
}
