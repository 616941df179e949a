//! The deployment plan of the contract suite: which contracts, in which order, wired how.
//!
//! The plan is plain data: a list of transactions from one deployer account, whose contract
//! addresses are known in advance from the deployer's address and nonce (`CREATE`). The revm test
//! harness and the deploy script on a real chain both execute this same list, so tests always run
//! against the suite exactly as operators deploy it, and an executor can check every address it gets
//! against the one planned.

use alloy::primitives::{Address, B256, Bytes, TxKind, U256};
use alloy::sol_types::{SolCall, SolConstructor};
use std::collections::BTreeMap;

use crate::{
    AccessCondition, AccessTemplate, AgreementStore, AssetRegistry, ComputeExecutionCondition,
    ComputeTemplate, GovernanceTimelock, HashLockCondition, PaymentCondition, SignCondition,
    TemplateRegistry, ThresholdCondition,
};

/// Addresses of every contract of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuiteAddresses {
    /// The governance timelock holding the admin and governor roles, when the deployment has one.
    pub governance_timelock: Option<Address>,
    /// Condition states, agreement ids and the template registry.
    pub agreement_store: Address,
    /// Assets, providers, delegates, offer epochs and provenance.
    pub asset_registry: Address,
    /// Payment condition: takes payments into escrow, settles each once, keeps the network fee.
    pub payment: Address,
    /// Access condition.
    pub access: Address,
    /// Compute execution condition.
    pub compute_execution: Address,
    /// EIP-712 sign condition.
    pub sign: Address,
    /// Hash lock condition.
    pub hash_lock: Address,
    /// k-of-n threshold condition.
    pub threshold: Address,
    /// Access template.
    pub access_template: Address,
    /// Compute template.
    pub compute_template: Address,
}

impl SuiteAddresses {
    /// The addresses by contract name, as written to an addresses file.
    pub fn by_name(&self) -> BTreeMap<String, Address> {
        let mut names: BTreeMap<String, Address> = [
            ("AgreementStore", self.agreement_store),
            ("AssetRegistry", self.asset_registry),
            ("PaymentCondition", self.payment),
            ("AccessCondition", self.access),
            ("ComputeExecutionCondition", self.compute_execution),
            ("SignCondition", self.sign),
            ("HashLockCondition", self.hash_lock),
            ("ThresholdCondition", self.threshold),
            ("AccessTemplate", self.access_template),
            ("ComputeTemplate", self.compute_template),
        ]
        .into_iter()
        .map(|(name, address)| (name.to_owned(), address))
        .collect();
        if let Some(timelock) = self.governance_timelock {
            names.insert("GovernanceTimelock".to_owned(), timelock);
        }
        names
    }

    /// Reads the addresses back from a map written by [`SuiteAddresses::by_name`].
    ///
    /// Returns the name of the first missing contract as the error (the timelock is optional).
    pub fn from_names(names: &BTreeMap<String, Address>) -> Result<Self, String> {
        let get = |name: &str| names.get(name).copied().ok_or_else(|| name.to_owned());
        Ok(Self {
            governance_timelock: names.get("GovernanceTimelock").copied(),
            agreement_store: get("AgreementStore")?,
            asset_registry: get("AssetRegistry")?,
            payment: get("PaymentCondition")?,
            access: get("AccessCondition")?,
            compute_execution: get("ComputeExecutionCondition")?,
            sign: get("SignCondition")?,
            hash_lock: get("HashLockCondition")?,
            threshold: get("ThresholdCondition")?,
            access_template: get("AccessTemplate")?,
            compute_template: get("ComputeTemplate")?,
        })
    }

    /// The account holding the governor role: the timelock when there is one.
    pub fn governor(&self, governance: Governance) -> Address {
        match governance {
            Governance::Account(account) => account,
            Governance::Timelock { .. } => self
                .governance_timelock
                .expect("a timelock deployment has a timelock address"),
        }
    }
}

/// One transaction of the plan, sent by the deployer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTx {
    /// What the transaction does, for logs.
    pub label: &'static str,
    /// `Create` for a deployment, `Call(address)` for a call.
    pub kind: TxKind,
    /// Init code with constructor arguments, or calldata.
    pub input: Bytes,
    /// For a deployment, the address the contract will have.
    pub creates: Option<Address>,
}

/// Who governs the deployment (approves templates, sets the network fee, administers roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Governance {
    /// A [`GovernanceTimelock`] holds the admin and governor roles: every governance call is
    /// scheduled by `proposer` and executed (by anyone) after `delay` seconds. The production setup;
    /// `delay` 0 is for dev chains.
    Timelock {
        /// The account (e.g. a multisig) that schedules and cancels governance operations.
        proposer: Address,
        /// Seconds between scheduling and executing an operation.
        delay: u64,
    },
    /// `Account` holds the roles itself and governance calls take effect at once (tests, dev chains).
    Account(Address),
}

/// Options of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeployOptions {
    /// Who governs the suite.
    pub governance: Governance,
    /// Seconds an admin-role transfer must wait between start and acceptance (the store takes a
    /// `uint48`; a `u32` covers 136 years and cannot overflow it).
    pub admin_transfer_delay: u32,
    /// Network fee receiver and basis points, set with the templates' approval.
    pub network_fee: Option<(Address, u16)>,
}

/// The whole plan: the suite's addresses and the transactions that create and wire it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentPlan {
    /// Where each contract will be.
    pub addresses: SuiteAddresses,
    /// The transactions, in the order they must be sent, all from the deployer, with consecutive
    /// nonces starting at the `first_nonce` given to [`plan`].
    pub transactions: Vec<PlannedTx>,
    /// Governance calls the deployer cannot make itself, for the governing account to send (template
    /// approvals and network fee; for a timelock, the `scheduleBatch` and, after the delay, the
    /// `executeBatch` of those calls).
    pub governor_calls: Vec<PlannedTx>,
    /// Contracts deployed from replaced creation code (see [`plan_with_overrides`]); empty for
    /// [`plan`].
    pub overridden: Vec<String>,
}

/// The salt of the deployment's first governance batch in the timelock.
pub const GOVERNANCE_SALT: B256 = B256::ZERO;

/// Plans the deployment of the suite by `deployer`, whose next nonce is `first_nonce`.
///
/// Order: the governance timelock (when [`Governance::Timelock`]), store, registry, conditions
/// (payment, access, compute, sign, hash lock, threshold), templates; then both templates are
/// proposed. The governance calls (approve both templates, set the network fee) follow as
/// transactions when the deployer may make them at once: it is the governing account, or the
/// timelock's proposer with no delay (then it schedules and executes one batch). Otherwise they are
/// returned in [`DeploymentPlan::governor_calls`].
pub fn plan(deployer: Address, first_nonce: u64, options: DeployOptions) -> DeploymentPlan {
    plan_with_overrides(deployer, first_nonce, options, &BTreeMap::new())
}

/// Like [`plan`], with the creation code of some contracts replaced: `overrides` maps a contract
/// name, as in [`SuiteAddresses::by_name`], to other creation code taking the same constructor
/// arguments. Everything else (order, addresses, wiring) is unchanged.
///
/// For tests only, e.g. to deploy the suite with one contract swapped for a deliberately broken
/// copy and check that the test suite notices. Names that are not contracts of the suite are
/// ignored; [`DeploymentPlan::overridden`] lists the ones that were applied.
pub fn plan_with_overrides(
    deployer: Address,
    first_nonce: u64,
    options: DeployOptions,
    overrides: &BTreeMap<String, Bytes>,
) -> DeploymentPlan {
    let mut nonce = first_nonce;
    let mut transactions = Vec::new();
    let mut overridden = Vec::new();
    let mut deploy = |label: &'static str, bytecode: &Bytes, args: Vec<u8>| {
        let address = deployer.create(nonce);
        nonce += 1;
        let name = label.strip_prefix("deploy ").unwrap_or(label);
        let bytecode = match overrides.get(name) {
            Some(code) => {
                overridden.push(name.to_owned());
                code
            }
            None => bytecode,
        };
        let mut input = bytecode.to_vec();
        input.extend_from_slice(&args);
        transactions.push(PlannedTx {
            label,
            kind: TxKind::Create,
            input: input.into(),
            creates: Some(address),
        });
        address
    };

    let (governor, governance_timelock) = match options.governance {
        Governance::Account(account) => (account, None),
        Governance::Timelock { proposer, delay } => {
            let timelock = deploy(
                "deploy GovernanceTimelock",
                &GovernanceTimelock::BYTECODE,
                GovernanceTimelock::constructorCall {
                    minDelay: U256::from(delay),
                    proposers: vec![proposer],
                    executors: vec![Address::ZERO],
                }
                .abi_encode(),
            );
            (timelock, Some(timelock))
        }
    };
    let agreement_store = deploy(
        "deploy AgreementStore",
        &AgreementStore::BYTECODE,
        AgreementStore::constructorCall {
            governor,
            adminTransferDelay: alloy::primitives::Uint::<48, 1>::from(
                options.admin_transfer_delay,
            ),
        }
        .abi_encode(),
    );
    let asset_registry = deploy("deploy AssetRegistry", &AssetRegistry::BYTECODE, Vec::new());
    let payment = deploy(
        "deploy PaymentCondition",
        &PaymentCondition::BYTECODE,
        PaymentCondition::constructorCall {
            store: agreement_store,
        }
        .abi_encode(),
    );
    let access = deploy(
        "deploy AccessCondition",
        &AccessCondition::BYTECODE,
        AccessCondition::constructorCall {
            store: agreement_store,
            registry: asset_registry,
            payment,
        }
        .abi_encode(),
    );
    let compute_execution = deploy(
        "deploy ComputeExecutionCondition",
        &ComputeExecutionCondition::BYTECODE,
        ComputeExecutionCondition::constructorCall {
            store: agreement_store,
            registry: asset_registry,
            payment,
        }
        .abi_encode(),
    );
    let sign = deploy(
        "deploy SignCondition",
        &SignCondition::BYTECODE,
        SignCondition::constructorCall {
            store: agreement_store,
        }
        .abi_encode(),
    );
    let hash_lock = deploy(
        "deploy HashLockCondition",
        &HashLockCondition::BYTECODE,
        HashLockCondition::constructorCall {
            store: agreement_store,
        }
        .abi_encode(),
    );
    let threshold = deploy(
        "deploy ThresholdCondition",
        &ThresholdCondition::BYTECODE,
        ThresholdCondition::constructorCall {
            store: agreement_store,
        }
        .abi_encode(),
    );
    let access_template = deploy(
        "deploy AccessTemplate",
        &AccessTemplate::BYTECODE,
        AccessTemplate::constructorCall {
            store: agreement_store,
            registry: asset_registry,
            payment,
            access,
        }
        .abi_encode(),
    );
    let compute_template = deploy(
        "deploy ComputeTemplate",
        &ComputeTemplate::BYTECODE,
        ComputeTemplate::constructorCall {
            store: agreement_store,
            registry: asset_registry,
            payment,
            compute: compute_execution,
        }
        .abi_encode(),
    );

    let call = |label: &'static str, to: Address, input: Vec<u8>| PlannedTx {
        label,
        kind: TxKind::Call(to),
        input: input.into(),
        creates: None,
    };
    for (label, template) in [
        ("propose AccessTemplate", access_template),
        ("propose ComputeTemplate", compute_template),
    ] {
        transactions.push(call(
            label,
            agreement_store,
            TemplateRegistry::proposeTemplateCall { template }.abi_encode(),
        ));
    }
    let mut governance = vec![
        call(
            "approve AccessTemplate",
            agreement_store,
            TemplateRegistry::approveTemplateCall {
                template: access_template,
            }
            .abi_encode(),
        ),
        call(
            "approve ComputeTemplate",
            agreement_store,
            TemplateRegistry::approveTemplateCall {
                template: compute_template,
            }
            .abi_encode(),
        ),
    ];
    if let Some((receiver, bps)) = options.network_fee {
        governance.push(call(
            "set network fee",
            payment,
            PaymentCondition::setNetworkFeeCall { receiver, bps }.abi_encode(),
        ));
    }
    let (mut governor_calls, deployer_governs) = match options.governance {
        Governance::Account(account) => (governance, account == deployer),
        Governance::Timelock { proposer, delay } => {
            let timelock = governance_timelock.expect("deployed above");
            let batch = timelock_batch(timelock, &governance, delay);
            (batch, proposer == deployer && delay == 0)
        }
    };
    if deployer_governs {
        transactions.append(&mut governor_calls);
    }

    DeploymentPlan {
        addresses: SuiteAddresses {
            governance_timelock,
            agreement_store,
            asset_registry,
            payment,
            access,
            compute_execution,
            sign,
            hash_lock,
            threshold,
            access_template,
            compute_template,
        },
        transactions,
        governor_calls,
        overridden,
    }
}

/// The `scheduleBatch` and `executeBatch` calls that carry `calls` out through `timelock` after
/// `delay` seconds (salt [`GOVERNANCE_SALT`], no predecessor).
pub fn timelock_batch(timelock: Address, calls: &[PlannedTx], delay: u64) -> Vec<PlannedTx> {
    let targets: Vec<Address> = calls
        .iter()
        .map(|call| match call.kind {
            TxKind::Call(to) => to,
            TxKind::Create => panic!("a governance call is a call"),
        })
        .collect();
    let values = vec![U256::ZERO; calls.len()];
    let payloads: Vec<Bytes> = calls.iter().map(|call| call.input.clone()).collect();
    let schedule = GovernanceTimelock::scheduleBatchCall {
        targets: targets.clone(),
        values: values.clone(),
        payloads: payloads.clone(),
        predecessor: B256::ZERO,
        salt: GOVERNANCE_SALT,
        delay: U256::from(delay),
    };
    let execute = GovernanceTimelock::executeBatchCall {
        targets,
        values,
        payloads,
        predecessor: B256::ZERO,
        salt: GOVERNANCE_SALT,
    };
    vec![
        PlannedTx {
            label: "schedule governance batch",
            kind: TxKind::Call(timelock),
            input: schedule.abi_encode().into(),
            creates: None,
        },
        PlannedTx {
            label: "execute governance batch",
            kind: TxKind::Call(timelock),
            input: execute.abi_encode().into(),
            creates: None,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    const DEPLOYER: Address = address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
    const OTHER: Address = address!("00000000000000000000000000000000000000aa");
    const FEE: Option<(Address, u16)> =
        Some((address!("00000000000000000000000000000000000000fe"), 100));

    fn options(governance: Governance, network_fee: Option<(Address, u16)>) -> DeployOptions {
        DeployOptions {
            governance,
            admin_transfer_delay: 0,
            network_fee,
        }
    }

    fn labels(txs: &[PlannedTx]) -> Vec<&'static str> {
        txs.iter().map(|tx| tx.label).collect()
    }

    #[test]
    fn addresses_follow_the_deployer_nonce() {
        for (governance, count) in [
            (Governance::Account(DEPLOYER), 10),
            (
                Governance::Timelock {
                    proposer: DEPLOYER,
                    delay: 0,
                },
                11,
            ),
        ] {
            let plan = plan(DEPLOYER, 5, options(governance, None));
            let created: Vec<Address> = plan
                .transactions
                .iter()
                .filter_map(|tx| tx.creates)
                .collect();
            assert_eq!(created.len(), count);
            for (i, address) in created.iter().enumerate() {
                assert_eq!(*address, DEPLOYER.create(5 + i as u64));
            }
            assert_eq!(
                plan.addresses.compute_template,
                DEPLOYER.create(5 + count as u64 - 1)
            );
            assert_eq!(
                plan.addresses.governance_timelock.is_some(),
                count == 11,
                "a timelock exactly when asked for"
            );
        }
    }

    #[test]
    fn governor_calls_are_sent_by_the_deployer_only_when_it_may() {
        let own = plan(DEPLOYER, 0, options(Governance::Account(DEPLOYER), FEE));
        assert_eq!(own.transactions.len(), 10 + 2 + 3);
        assert!(own.governor_calls.is_empty());

        let split = plan(DEPLOYER, 0, options(Governance::Account(OTHER), FEE));
        assert_eq!(split.transactions.len(), 10 + 2);
        assert_eq!(
            labels(&split.governor_calls),
            [
                "approve AccessTemplate",
                "approve ComputeTemplate",
                "set network fee"
            ]
        );
    }

    #[test]
    fn a_timelock_governs_through_one_scheduled_batch() {
        let instant = Governance::Timelock {
            proposer: DEPLOYER,
            delay: 0,
        };
        let own = plan(DEPLOYER, 0, options(instant, FEE));
        assert!(own.governor_calls.is_empty());
        assert_eq!(
            labels(&own.transactions[11..]),
            [
                "propose AccessTemplate",
                "propose ComputeTemplate",
                "schedule governance batch",
                "execute governance batch"
            ]
        );
        let timelock = own.addresses.governance_timelock.unwrap();
        assert_eq!(own.transactions[13].kind, TxKind::Call(timelock));

        for governance in [
            Governance::Timelock {
                proposer: DEPLOYER,
                delay: 86_400,
            },
            Governance::Timelock {
                proposer: OTHER,
                delay: 0,
            },
        ] {
            let later = plan(DEPLOYER, 0, options(governance, FEE));
            assert_eq!(later.transactions.len(), 11 + 2);
            assert_eq!(
                labels(&later.governor_calls),
                ["schedule governance batch", "execute governance batch"]
            );
        }
        let delayed = plan(
            DEPLOYER,
            0,
            options(
                Governance::Timelock {
                    proposer: DEPLOYER,
                    delay: 86_400,
                },
                FEE,
            ),
        );
        let schedule =
            GovernanceTimelock::scheduleBatchCall::abi_decode(&delayed.governor_calls[0].input)
                .unwrap();
        assert_eq!(schedule.delay, U256::from(86_400));
        assert_eq!(
            schedule.targets,
            [
                delayed.addresses.agreement_store,
                delayed.addresses.agreement_store,
                delayed.addresses.payment
            ]
        );
    }

    #[test]
    fn overrides_replace_only_the_named_contract() {
        let options = options(Governance::Account(DEPLOYER), None);
        let base = plan(DEPLOYER, 0, options);
        assert!(base.overridden.is_empty());
        let code = Bytes::from_static(&[0x60, 0x00]);
        let overrides = BTreeMap::from([
            ("PaymentCondition".to_owned(), code.clone()),
            ("NoSuchContract".to_owned(), code.clone()),
        ]);
        let swapped = plan_with_overrides(DEPLOYER, 0, options, &overrides);
        assert_eq!(swapped.overridden, ["PaymentCondition"]);
        assert_eq!(swapped.addresses, base.addresses);
        for (ours, theirs) in swapped.transactions.iter().zip(&base.transactions) {
            if ours.label == "deploy PaymentCondition" {
                let args = &theirs.input[PaymentCondition::BYTECODE.len()..];
                assert_eq!(&ours.input[..code.len()], &code[..]);
                assert_eq!(&ours.input[code.len()..], args);
            } else {
                assert_eq!(ours, theirs);
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for governance in [
            Governance::Account(DEPLOYER),
            Governance::Timelock {
                proposer: DEPLOYER,
                delay: 0,
            },
        ] {
            let plan = plan(DEPLOYER, 0, options(governance, None));
            let names = plan.addresses.by_name();
            assert_eq!(
                names.len(),
                10 + usize::from(plan.addresses.governance_timelock.is_some())
            );
            assert_eq!(SuiteAddresses::from_names(&names), Ok(plan.addresses));
            let mut missing = names.clone();
            missing.remove("PaymentCondition");
            assert_eq!(
                SuiteAddresses::from_names(&missing),
                Err("PaymentCondition".to_owned())
            );
        }
    }
}
