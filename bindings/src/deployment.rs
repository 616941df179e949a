//! The deployment plan of the contract suite: which contracts, in which order, wired how.
//!
//! The plan is plain data: a list of transactions from one deployer account, whose contract
//! addresses are known in advance from the deployer's address and nonce (`CREATE`). The revm test
//! harness and the deploy script on a real chain both execute this same list, so tests always run
//! against the suite exactly as operators deploy it, and an executor can check every address it gets
//! against the one planned.

use alloy::primitives::{Address, Bytes, TxKind};
use alloy::sol_types::{SolCall, SolConstructor};
use std::collections::BTreeMap;

use crate::{
    AccessCondition, AccessTemplate, AgreementStore, AssetRegistry, ComputeExecutionCondition,
    ComputeTemplate, EscrowPaymentCondition, HashLockCondition, LockPaymentCondition,
    SignCondition, TemplateRegistry, ThresholdCondition,
};

/// Addresses of every contract of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuiteAddresses {
    /// Agreements, condition states and the template registry.
    pub agreement_store: Address,
    /// Assets, providers, delegates and provenance.
    pub asset_registry: Address,
    /// Lock payment condition (also keeps the network fee).
    pub lock_payment: Address,
    /// Access condition.
    pub access: Address,
    /// Compute execution condition.
    pub compute_execution: Address,
    /// Escrow payment condition (holds every locked payment).
    pub escrow_payment: Address,
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
        [
            ("AgreementStore", self.agreement_store),
            ("AssetRegistry", self.asset_registry),
            ("LockPaymentCondition", self.lock_payment),
            ("AccessCondition", self.access),
            ("ComputeExecutionCondition", self.compute_execution),
            ("EscrowPaymentCondition", self.escrow_payment),
            ("SignCondition", self.sign),
            ("HashLockCondition", self.hash_lock),
            ("ThresholdCondition", self.threshold),
            ("AccessTemplate", self.access_template),
            ("ComputeTemplate", self.compute_template),
        ]
        .into_iter()
        .map(|(name, address)| (name.to_owned(), address))
        .collect()
    }

    /// Reads the addresses back from a map written by [`SuiteAddresses::by_name`].
    ///
    /// Returns the name of the first missing contract as the error.
    pub fn from_names(names: &BTreeMap<String, Address>) -> Result<Self, String> {
        let get = |name: &str| names.get(name).copied().ok_or_else(|| name.to_owned());
        Ok(Self {
            agreement_store: get("AgreementStore")?,
            asset_registry: get("AssetRegistry")?,
            lock_payment: get("LockPaymentCondition")?,
            access: get("AccessCondition")?,
            compute_execution: get("ComputeExecutionCondition")?,
            escrow_payment: get("EscrowPaymentCondition")?,
            sign: get("SignCondition")?,
            hash_lock: get("HashLockCondition")?,
            threshold: get("ThresholdCondition")?,
            access_template: get("AccessTemplate")?,
            compute_template: get("ComputeTemplate")?,
        })
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

/// Options of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeployOptions {
    /// Account that receives the admin and governor roles.
    pub governor: Address,
    /// Network fee receiver and basis points; set only when the deployer is the governor.
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
    /// Governor calls still to be made when the governor is not the deployer (template approvals,
    /// network fee), as (label, target, calldata).
    pub governor_calls: Vec<PlannedTx>,
    /// Contracts deployed from replaced creation code (see [`plan_with_overrides`]); empty for
    /// [`plan`].
    pub overridden: Vec<String>,
}

/// Plans the deployment of the suite by `deployer`, whose next nonce is `first_nonce`.
///
/// Order: store, registry, conditions (lock, escrow, access, compute, sign, hash lock, threshold),
/// templates; then both templates are proposed, and, when the deployer is the governor, approved and
/// the network fee set. Otherwise those governor calls are returned for the governor to send.
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

    let agreement_store = deploy(
        "deploy AgreementStore",
        &AgreementStore::BYTECODE,
        AgreementStore::constructorCall {
            governor: options.governor,
        }
        .abi_encode(),
    );
    let asset_registry = deploy("deploy AssetRegistry", &AssetRegistry::BYTECODE, Vec::new());
    let lock_payment = deploy(
        "deploy LockPaymentCondition",
        &LockPaymentCondition::BYTECODE,
        LockPaymentCondition::constructorCall {
            store: agreement_store,
        }
        .abi_encode(),
    );
    let escrow_payment = deploy(
        "deploy EscrowPaymentCondition",
        &EscrowPaymentCondition::BYTECODE,
        EscrowPaymentCondition::constructorCall {
            store: agreement_store,
            lockCondition_: lock_payment,
        }
        .abi_encode(),
    );
    let access = deploy(
        "deploy AccessCondition",
        &AccessCondition::BYTECODE,
        AccessCondition::constructorCall {
            store: agreement_store,
            registry: asset_registry,
            escrow_: escrow_payment,
        }
        .abi_encode(),
    );
    let compute_execution = deploy(
        "deploy ComputeExecutionCondition",
        &ComputeExecutionCondition::BYTECODE,
        ComputeExecutionCondition::constructorCall {
            store: agreement_store,
            registry: asset_registry,
            escrow_: escrow_payment,
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
            lock: lock_payment,
            access,
            escrow: escrow_payment,
        }
        .abi_encode(),
    );
    let compute_template = deploy(
        "deploy ComputeTemplate",
        &ComputeTemplate::BYTECODE,
        ComputeTemplate::constructorCall {
            store: agreement_store,
            lock: lock_payment,
            compute: compute_execution,
            escrow: escrow_payment,
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
    let mut governor_calls = vec![
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
        governor_calls.push(call(
            "set network fee",
            lock_payment,
            LockPaymentCondition::setNetworkFeeCall { receiver, bps }.abi_encode(),
        ));
    }
    if deployer == options.governor {
        transactions.append(&mut governor_calls);
    }

    DeploymentPlan {
        addresses: SuiteAddresses {
            agreement_store,
            asset_registry,
            lock_payment,
            access,
            compute_execution,
            escrow_payment,
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

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    const DEPLOYER: Address = address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266");

    #[test]
    fn addresses_follow_the_deployer_nonce() {
        let plan = plan(
            DEPLOYER,
            5,
            DeployOptions {
                governor: DEPLOYER,
                network_fee: None,
            },
        );
        let created: Vec<Address> = plan
            .transactions
            .iter()
            .filter_map(|tx| tx.creates)
            .collect();
        assert_eq!(created.len(), 11);
        for (i, address) in created.iter().enumerate() {
            assert_eq!(*address, DEPLOYER.create(5 + i as u64));
        }
        assert_eq!(plan.addresses.agreement_store, DEPLOYER.create(5));
        assert_eq!(plan.addresses.compute_template, DEPLOYER.create(15));
    }

    #[test]
    fn governor_calls_are_sent_only_by_the_governor() {
        let fee = Some((address!("00000000000000000000000000000000000000fe"), 100));
        let own = plan(
            DEPLOYER,
            0,
            DeployOptions {
                governor: DEPLOYER,
                network_fee: fee,
            },
        );
        assert_eq!(own.transactions.len(), 11 + 2 + 3);
        assert!(own.governor_calls.is_empty());

        let other = address!("00000000000000000000000000000000000000aa");
        let split = plan(
            DEPLOYER,
            0,
            DeployOptions {
                governor: other,
                network_fee: fee,
            },
        );
        assert_eq!(split.transactions.len(), 11 + 2);
        let labels: Vec<_> = split.governor_calls.iter().map(|tx| tx.label).collect();
        assert_eq!(
            labels,
            [
                "approve AccessTemplate",
                "approve ComputeTemplate",
                "set network fee"
            ]
        );
    }

    #[test]
    fn overrides_replace_only_the_named_contract() {
        let options = DeployOptions {
            governor: DEPLOYER,
            network_fee: None,
        };
        let base = plan(DEPLOYER, 0, options);
        assert!(base.overridden.is_empty());
        let code = Bytes::from_static(&[0x60, 0x00]);
        let overrides = BTreeMap::from([
            ("EscrowPaymentCondition".to_owned(), code.clone()),
            ("NoSuchContract".to_owned(), code.clone()),
        ]);
        let swapped = plan_with_overrides(DEPLOYER, 0, options, &overrides);
        assert_eq!(swapped.overridden, ["EscrowPaymentCondition"]);
        assert_eq!(swapped.addresses, base.addresses);
        for (ours, theirs) in swapped.transactions.iter().zip(&base.transactions) {
            if ours.label == "deploy EscrowPaymentCondition" {
                let args = &theirs.input[EscrowPaymentCondition::BYTECODE.len()..];
                assert_eq!(&ours.input[..code.len()], &code[..]);
                assert_eq!(&ours.input[code.len()..], args);
            } else {
                assert_eq!(ours, theirs);
            }
        }
    }

    #[test]
    fn names_round_trip() {
        let plan = plan(
            DEPLOYER,
            0,
            DeployOptions {
                governor: DEPLOYER,
                network_fee: None,
            },
        );
        let names = plan.addresses.by_name();
        assert_eq!(names.len(), 11);
        assert_eq!(SuiteAddresses::from_names(&names), Ok(plan.addresses));
        let mut missing = names.clone();
        missing.remove("EscrowPaymentCondition");
        assert_eq!(
            SuiteAddresses::from_names(&missing),
            Err("EscrowPaymentCondition".to_owned())
        );
    }
}
