//! AssetRegistry: registration and did derivation, derived assets and provenance, metadata,
//! ownership, providers, delegated permissions, who may serve an asset, and PROV records.
//!
//! Every revert is checked for its decoded custom error and for leaving the registry as it was,
//! read back through the registry's views.

use alloy::{
    primitives::{Address, B256, U256, aliases::U40, keccak256},
    sol_types::{SolCall, SolError, SolEventInterface, SolValue},
};
use insitu_bindings::AssetRegistry::{self, AssetRegistryEvents};
use insitu_tests::harness::{ExpectRevert, Receipt, TxError};
use insitu_tests::world::World;

const URL: &str = "https://provider.example/asset.json";
const OTHER_URL: &str = "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";

/// What the registry's views say about one did, for every named party.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AssetView {
    asset: AssetRegistry::Asset,
    owner_of: Address,
    /// (account, isProvider, isDelegate, canServe)
    roles: Vec<(Address, bool, bool, bool)>,
}

/// A world whose asset `did` is owned by `owner` and served by `keeper`.
struct Registry {
    w: World,
    registry: Address,
    owner: Address,
    keeper: Address,
    /// Becomes a delegate in the tests that grant one.
    delegate: Address,
    /// Receives ownership in the transfer tests.
    new_owner: Address,
    outsider: Address,
    did: B256,
}

impl Registry {
    fn new() -> Self {
        let w = World::new();
        Self {
            registry: w.suite.asset_registry,
            owner: w.provider,
            keeper: w.keeper,
            delegate: w.co_provider,
            new_owner: w.consumer,
            outsider: w.outsider,
            did: w.did,
            w,
        }
    }

    /// A registry where `delegate` holds a permission on `did`.
    fn with_delegate() -> Self {
        let mut r = Self::new();
        let (did, delegate, owner) = (r.did, r.delegate, r.owner);
        r.send(owner, AssetRegistry::grantPermissionCall { did, delegate })
            .expect("grant permission");
        r
    }

    fn parties(&self) -> Vec<Address> {
        vec![
            self.owner,
            self.keeper,
            self.delegate,
            self.new_owner,
            self.outsider,
            self.w.governor,
            self.w.fee_receiver,
            Address::ZERO,
        ]
    }

    fn send<C: SolCall>(&mut self, from: Address, call: C) -> Result<Receipt<C::Return>, TxError> {
        self.w.transact(from, self.registry, &call, U256::ZERO)
    }

    fn view<C: SolCall>(&mut self, call: C) -> C::Return {
        self.w
            .chain
            .call(self.registry, &call)
            .expect("a registry view")
    }

    fn asset(&mut self, did: B256) -> AssetRegistry::Asset {
        self.view(AssetRegistry::getAssetCall { did })
    }

    fn can_serve(&mut self, did: B256, account: Address) -> bool {
        self.view(AssetRegistry::canServeCall { did, account })
    }

    fn is_provider(&mut self, did: B256, account: Address) -> bool {
        self.view(AssetRegistry::isProviderCall { did, account })
    }

    fn is_delegate(&mut self, did: B256, account: Address) -> bool {
        self.view(AssetRegistry::isDelegateCall { did, account })
    }

    fn owner_of(&mut self, did: B256) -> Address {
        self.view(AssetRegistry::ownerOfCall { did })
    }

    fn state(&mut self, dids: &[B256]) -> Vec<AssetView> {
        let parties = self.parties();
        dids.iter()
            .map(|&did| AssetView {
                asset: self.asset(did),
                owner_of: self.owner_of(did),
                roles: parties
                    .iter()
                    .map(|&account| {
                        (
                            account,
                            self.is_provider(did, account),
                            self.is_delegate(did, account),
                            self.can_serve(did, account),
                        )
                    })
                    .collect(),
            })
            .collect()
    }

    /// Sends `call`, expects it to revert with `E`, and checks that nothing the views show about
    /// `dids` (and the suite's asset) changed.
    #[track_caller]
    fn reverts<C: SolCall, E: SolError>(&mut self, from: Address, call: C, dids: &[B256]) -> E {
        let mut watched = dids.to_vec();
        watched.push(self.did);
        let before = self.state(&watched);
        let err = self.send(from, call).expect_revert::<E>();
        assert_eq!(
            self.state(&watched),
            before,
            "a reverted call changed the registry"
        );
        err
    }

    /// Every log of `receipt`, decoded as registry events; all must come from the registry.
    #[track_caller]
    fn events<T>(&self, receipt: &Receipt<T>) -> Vec<AssetRegistryEvents> {
        receipt
            .logs
            .iter()
            .map(|log| {
                assert_eq!(log.address, self.registry, "a log from another contract");
                AssetRegistryEvents::decode_raw_log(log.topics(), &log.data.data)
                    .expect("a registry event")
            })
            .collect()
    }

    fn register(
        &mut self,
        from: Address,
        seed: B256,
        providers: &[Address],
    ) -> Result<Receipt<B256>, TxError> {
        self.send(
            from,
            AssetRegistry::registerCall {
                seed,
                checksum: checksum(),
                url: URL.into(),
                providers: providers.to_vec(),
            },
        )
    }

    /// Registers a fresh asset of `from` without providers.
    fn fresh(&mut self, from: Address) -> B256 {
        let seed = self.w.seed();
        self.register(from, seed, &[]).expect("register").output
    }
}

fn checksum() -> B256 {
    keccak256(b"metadata document")
}

fn did_of(seed: B256, owner: Address) -> B256 {
    keccak256((seed, owner).abi_encode_params())
}

fn activity(n: u8) -> B256 {
    keccak256([b'a', n])
}

// ---- register ----

#[test]
fn register_derives_the_did_and_stores_the_asset_with_its_providers() {
    let mut r = Registry::new();
    let (owner, keeper, other) = (r.owner, r.keeper, r.delegate);
    let seed = B256::repeat_byte(0x5e);
    r.w.chain.warp(1_000);

    let receipt = r.register(owner, seed, &[keeper, other]).unwrap();
    let did = receipt.output;

    assert_eq!(did, did_of(seed, owner));
    assert_eq!(
        r.view(AssetRegistry::computeDidCall { seed, owner }),
        did,
        "computeDid agrees with the did register returns"
    );
    assert_eq!(
        r.asset(did),
        AssetRegistry::Asset {
            owner,
            registeredAt: U40::from(r.w.chain.timestamp()),
            ownerEpoch: alloy::primitives::aliases::U56::ZERO,
            checksum: checksum(),
            url: URL.into(),
        }
    );
    assert_eq!(r.owner_of(did), owner);
    assert!(r.is_provider(did, keeper));
    assert!(r.is_provider(did, other));
    assert!(
        !r.is_provider(did, owner),
        "the owner is not listed as provider"
    );
    assert!(!r.is_provider(did, r.outsider));
    assert!(!r.is_delegate(did, keeper));
    assert_eq!(
        r.events(&receipt),
        vec![
            AssetRegistryEvents::AssetRegistered(AssetRegistry::AssetRegistered {
                did,
                owner,
                checksum: checksum(),
                url: URL.into(),
            }),
            AssetRegistryEvents::ProviderAdded(AssetRegistry::ProviderAdded {
                did,
                provider: keeper
            }),
            AssetRegistryEvents::ProviderAdded(AssetRegistry::ProviderAdded {
                did,
                provider: other
            }),
        ]
    );
}

#[test]
fn register_without_providers_emits_only_asset_registered() {
    let mut r = Registry::new();
    let outsider = r.outsider;
    let seed = r.w.seed();
    let receipt = r.register(outsider, seed, &[]).unwrap();
    let did = receipt.output;
    assert_eq!(
        r.events(&receipt),
        vec![AssetRegistryEvents::AssetRegistered(
            AssetRegistry::AssetRegistered {
                did,
                owner: outsider,
                checksum: checksum(),
                url: URL.into(),
            }
        )]
    );
    assert!(r.can_serve(did, outsider), "the owner serves its asset");
    assert!(!r.can_serve(did, r.keeper));
}

#[test]
fn the_same_seed_gives_each_owner_its_own_did() {
    let mut r = Registry::new();
    let (owner, outsider) = (r.owner, r.outsider);
    let seed = B256::repeat_byte(0x77);
    let mine = r.register(owner, seed, &[]).unwrap().output;
    let theirs = r.register(outsider, seed, &[]).unwrap().output;
    assert_ne!(mine, theirs);
    assert_eq!(mine, did_of(seed, owner));
    assert_eq!(theirs, did_of(seed, outsider));
    assert_eq!(r.owner_of(mine), owner);
    assert_eq!(r.owner_of(theirs), outsider);
}

#[test]
fn registering_a_seed_twice_reverts_asset_already_registered() {
    let mut r = Registry::new();
    let owner = r.owner;
    let seed = r.w.seed();
    let did = r.register(owner, seed, &[]).unwrap().output;
    let call = AssetRegistry::registerCall {
        seed,
        checksum: keccak256(b"another document"),
        url: OTHER_URL.into(),
        providers: vec![r.outsider],
    };
    let err: AssetRegistry::AssetAlreadyRegistered = r.reverts(owner, call, &[did]);
    assert_eq!(err.did, did);
    assert_eq!(r.asset(did).url, URL, "the first registration stands");
}

#[test]
fn register_refuses_a_zero_checksum_before_an_empty_url() {
    let mut r = Registry::new();
    let owner = r.owner;
    let seed = r.w.seed();
    let did = did_of(seed, owner);
    let _: AssetRegistry::InvalidChecksum = r.reverts(
        owner,
        AssetRegistry::registerCall {
            seed,
            checksum: B256::ZERO,
            url: URL.into(),
            providers: vec![],
        },
        &[did],
    );
    let _: AssetRegistry::InvalidChecksum = r.reverts(
        owner,
        AssetRegistry::registerCall {
            seed,
            checksum: B256::ZERO,
            url: String::new(),
            providers: vec![],
        },
        &[did],
    );
    assert_eq!(r.owner_of(did), Address::ZERO, "nothing was registered");
}

#[test]
fn register_refuses_an_empty_url() {
    let mut r = Registry::new();
    let owner = r.owner;
    let seed = r.w.seed();
    let did = did_of(seed, owner);
    let _: AssetRegistry::InvalidUrl = r.reverts(
        owner,
        AssetRegistry::registerCall {
            seed,
            checksum: checksum(),
            url: String::new(),
            providers: vec![],
        },
        &[did],
    );
    assert_eq!(r.owner_of(did), Address::ZERO);
}

#[test]
fn register_refuses_a_zero_provider_and_registers_nothing() {
    let mut r = Registry::new();
    let (owner, keeper) = (r.owner, r.keeper);
    let seed = r.w.seed();
    let did = did_of(seed, owner);
    // The asset and the first provider are written before the zero provider is met: the revert
    // must undo them.
    let _: AssetRegistry::InvalidAddress = r.reverts(
        owner,
        AssetRegistry::registerCall {
            seed,
            checksum: checksum(),
            url: URL.into(),
            providers: vec![keeper, Address::ZERO],
        },
        &[did],
    );
    assert_eq!(r.asset(did).owner, Address::ZERO);
    assert!(!r.is_provider(did, keeper));
    // The seed is still free.
    assert_eq!(r.register(owner, seed, &[keeper]).unwrap().output, did);
}

#[test]
fn register_refuses_a_duplicate_provider_and_registers_nothing() {
    let mut r = Registry::new();
    let (owner, keeper, other) = (r.owner, r.keeper, r.delegate);
    let seed = r.w.seed();
    let did = did_of(seed, owner);
    let err: AssetRegistry::ProviderAlreadyAdded = r.reverts(
        owner,
        AssetRegistry::registerCall {
            seed,
            checksum: checksum(),
            url: URL.into(),
            providers: vec![keeper, other, keeper],
        },
        &[did],
    );
    assert_eq!((err.did, err.provider), (did, keeper));
    assert_eq!(r.owner_of(did), Address::ZERO);
}

// ---- registerDerived ----

#[test]
fn register_derived_records_generation_and_every_source() {
    let mut r = Registry::new();
    let (owner, keeper, outsider) = (r.owner, r.keeper, r.outsider);
    let source_a = r.did;
    // A source owned by someone else: provenance may point at any registered asset.
    let source_b = r.fresh(outsider);
    let seed = r.w.seed();
    let job = activity(1);

    let receipt = r
        .send(
            owner,
            AssetRegistry::registerDerivedCall {
                seed,
                checksum: checksum(),
                url: URL.into(),
                providers: vec![keeper],
                sources: vec![source_a, source_b],
                activityId: job,
            },
        )
        .unwrap();
    let did = receipt.output;

    assert_eq!(did, did_of(seed, owner));
    assert_eq!(r.owner_of(did), owner);
    assert!(r.is_provider(did, keeper));
    assert_eq!(
        r.events(&receipt),
        vec![
            AssetRegistryEvents::AssetRegistered(AssetRegistry::AssetRegistered {
                did,
                owner,
                checksum: checksum(),
                url: URL.into(),
            }),
            AssetRegistryEvents::ProviderAdded(AssetRegistry::ProviderAdded {
                did,
                provider: keeper
            }),
            AssetRegistryEvents::WasGeneratedBy(AssetRegistry::WasGeneratedBy {
                did,
                activityId: job,
                agent: owner,
            }),
            AssetRegistryEvents::WasDerivedFrom(AssetRegistry::WasDerivedFrom {
                did,
                sourceDid: source_a,
                activityId: job,
                agent: owner,
            }),
            AssetRegistryEvents::WasDerivedFrom(AssetRegistry::WasDerivedFrom {
                did,
                sourceDid: source_b,
                activityId: job,
                agent: owner,
            }),
        ]
    );
}

#[test]
fn register_derived_without_sources_only_records_generation() {
    let mut r = Registry::new();
    let outsider = r.outsider;
    let seed = r.w.seed();
    let receipt = r
        .send(
            outsider,
            AssetRegistry::registerDerivedCall {
                seed,
                checksum: checksum(),
                url: URL.into(),
                providers: vec![],
                sources: vec![],
                activityId: activity(2),
            },
        )
        .unwrap();
    let did = receipt.output;
    let events = r.events(&receipt);
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[1],
        AssetRegistryEvents::WasGeneratedBy(AssetRegistry::WasGeneratedBy {
            did,
            activityId: activity(2),
            agent: outsider,
        })
    );
}

#[test]
fn register_derived_from_an_unknown_source_reverts_and_registers_nothing() {
    let mut r = Registry::new();
    let (owner, known) = (r.owner, r.did);
    let unknown = keccak256(b"never registered");
    let seed = r.w.seed();
    let did = did_of(seed, owner);
    let err: AssetRegistry::AssetNotFound = r.reverts(
        owner,
        AssetRegistry::registerDerivedCall {
            seed,
            checksum: checksum(),
            url: URL.into(),
            providers: vec![],
            sources: vec![known, unknown],
            activityId: activity(3),
        },
        &[did],
    );
    assert_eq!(err.did, unknown);
    assert_eq!(r.owner_of(did), Address::ZERO);
}

#[test]
fn register_derived_with_its_own_precomputed_did_as_source_reverts_self_derivation() {
    // The did is computable before registration, so a derived asset can name itself as source;
    // SelfDerivation is therefore reachable through registerDerived too, not only through
    // recordDerivation.
    let mut r = Registry::new();
    let owner = r.owner;
    let seed = r.w.seed();
    let did = r.view(AssetRegistry::computeDidCall { seed, owner });
    let err: AssetRegistry::SelfDerivation = r.reverts(
        owner,
        AssetRegistry::registerDerivedCall {
            seed,
            checksum: checksum(),
            url: URL.into(),
            providers: vec![],
            sources: vec![did],
            activityId: activity(4),
        },
        &[did],
    );
    assert_eq!(err.did, did);
    assert_eq!(r.owner_of(did), Address::ZERO);
}

#[test]
fn register_derived_validates_like_register_and_shares_its_dids() {
    let mut r = Registry::new();
    let owner = r.owner;
    let seed = r.w.seed();
    let did = r.register(owner, seed, &[]).unwrap().output;
    let derived = |seed, checksum, url: &str| AssetRegistry::registerDerivedCall {
        seed,
        checksum,
        url: url.into(),
        providers: vec![],
        sources: vec![],
        activityId: activity(5),
    };
    let err: AssetRegistry::AssetAlreadyRegistered =
        r.reverts(owner, derived(seed, checksum(), URL), &[did]);
    assert_eq!(err.did, did);
    let fresh = r.w.seed();
    let fresh_did = did_of(fresh, owner);
    let _: AssetRegistry::InvalidChecksum =
        r.reverts(owner, derived(fresh, B256::ZERO, URL), &[fresh_did]);
    let _: AssetRegistry::InvalidUrl =
        r.reverts(owner, derived(fresh, checksum(), ""), &[fresh_did]);
}

// ---- updateMetadata ----

#[test]
fn the_owner_updates_the_metadata() {
    let mut r = Registry::new();
    let (owner, did) = (r.owner, r.did);
    let before = r.asset(did);
    r.w.chain.warp(60);
    let new_checksum = keccak256(b"v2");
    let receipt = r
        .send(
            owner,
            AssetRegistry::updateMetadataCall {
                did,
                checksum: new_checksum,
                url: OTHER_URL.into(),
            },
        )
        .unwrap();
    assert_eq!(
        r.events(&receipt),
        vec![AssetRegistryEvents::MetadataUpdated(
            AssetRegistry::MetadataUpdated {
                did,
                checksum: new_checksum,
                url: OTHER_URL.into(),
                by: owner,
            }
        )]
    );
    assert_eq!(
        r.asset(did),
        AssetRegistry::Asset {
            checksum: new_checksum,
            url: OTHER_URL.into(),
            ..before
        },
        "owner and registration time are kept"
    );
}

#[test]
fn a_delegate_updates_the_metadata() {
    let mut r = Registry::with_delegate();
    let (delegate, did) = (r.delegate, r.did);
    let new_checksum = keccak256(b"v3");
    let receipt = r
        .send(
            delegate,
            AssetRegistry::updateMetadataCall {
                did,
                checksum: new_checksum,
                url: OTHER_URL.into(),
            },
        )
        .unwrap();
    let events = r.events(&receipt);
    assert_eq!(
        events,
        vec![AssetRegistryEvents::MetadataUpdated(
            AssetRegistry::MetadataUpdated {
                did,
                checksum: new_checksum,
                url: OTHER_URL.into(),
                by: delegate,
            }
        )]
    );
    let asset = r.asset(did);
    assert_eq!(
        (asset.checksum, asset.url.as_str()),
        (new_checksum, OTHER_URL)
    );
    assert_eq!(asset.owner, r.owner);
}

#[test]
fn neither_an_outsider_nor_a_provider_updates_the_metadata() {
    let mut r = Registry::new();
    let did = r.did;
    for caller in [r.outsider, r.keeper] {
        let err: AssetRegistry::NotAssetManager = r.reverts(
            caller,
            AssetRegistry::updateMetadataCall {
                did,
                checksum: keccak256(b"hijack"),
                url: OTHER_URL.into(),
            },
            &[],
        );
        assert_eq!((err.did, err.caller), (did, caller));
    }
}

#[test]
fn updating_an_unknown_asset_reverts_asset_not_found() {
    let mut r = Registry::new();
    let owner = r.owner;
    let unknown = keccak256(b"unknown");
    let err: AssetRegistry::AssetNotFound = r.reverts(
        owner,
        AssetRegistry::updateMetadataCall {
            did: unknown,
            checksum: checksum(),
            url: URL.into(),
        },
        &[unknown],
    );
    assert_eq!(err.did, unknown);
}

#[test]
fn updating_to_invalid_metadata_reverts() {
    let mut r = Registry::new();
    let (owner, did) = (r.owner, r.did);
    let _: AssetRegistry::InvalidChecksum = r.reverts(
        owner,
        AssetRegistry::updateMetadataCall {
            did,
            checksum: B256::ZERO,
            url: OTHER_URL.into(),
        },
        &[],
    );
    let _: AssetRegistry::InvalidUrl = r.reverts(
        owner,
        AssetRegistry::updateMetadataCall {
            did,
            checksum: checksum(),
            url: String::new(),
        },
        &[],
    );
}

// ---- transferOwnership ----

#[test]
fn a_transfer_moves_control_to_the_new_owner() {
    let mut r = Registry::new();
    let (owner, new_owner, keeper, did) = (r.owner, r.new_owner, r.keeper, r.did);
    let before = r.asset(did);

    let receipt = r
        .send(
            owner,
            AssetRegistry::transferOwnershipCall {
                did,
                newOwner: new_owner,
            },
        )
        .unwrap();
    assert_eq!(
        r.events(&receipt),
        vec![AssetRegistryEvents::AssetOwnershipTransferred(
            AssetRegistry::AssetOwnershipTransferred {
                did,
                previousOwner: owner,
                newOwner: new_owner,
            }
        )]
    );
    assert_eq!(r.owner_of(did), new_owner);
    assert_eq!(
        r.asset(did),
        AssetRegistry::Asset {
            owner: new_owner,
            ownerEpoch: before.ownerEpoch + alloy::primitives::aliases::U56::from(1),
            ..before
        }
    );
    assert!(r.is_provider(did, keeper), "providers are kept");
    assert!(r.can_serve(did, new_owner));
    assert!(!r.can_serve(did, owner), "the old owner no longer serves");

    // The new owner controls the asset.
    let other = r.delegate;
    r.send(
        new_owner,
        AssetRegistry::grantPermissionCall {
            did,
            delegate: other,
        },
    )
    .unwrap();
    r.send(
        new_owner,
        AssetRegistry::updateMetadataCall {
            did,
            checksum: keccak256(b"new owner's"),
            url: OTHER_URL.into(),
        },
    )
    .unwrap();

    // The old owner lost it.
    let err: AssetRegistry::NotAssetOwner = r.reverts(
        owner,
        AssetRegistry::transferOwnershipCall {
            did,
            newOwner: owner,
        },
        &[],
    );
    assert_eq!((err.did, err.caller), (did, owner));
    let err: AssetRegistry::NotAssetOwner = r.reverts(
        owner,
        AssetRegistry::revokePermissionCall {
            did,
            delegate: other,
        },
        &[],
    );
    assert_eq!((err.did, err.caller), (did, owner));
    let err: AssetRegistry::NotAssetManager = r.reverts(
        owner,
        AssetRegistry::addProviderCall {
            did,
            provider: owner,
        },
        &[],
    );
    assert_eq!((err.did, err.caller), (did, owner));
}

#[test]
fn only_the_owner_transfers() {
    let mut r = Registry::with_delegate();
    let did = r.did;
    for caller in [r.delegate, r.keeper, r.outsider] {
        let err: AssetRegistry::NotAssetOwner = r.reverts(
            caller,
            AssetRegistry::transferOwnershipCall {
                did,
                newOwner: caller,
            },
            &[],
        );
        assert_eq!((err.did, err.caller), (did, caller));
    }
    let owner = r.owner;
    let unknown = keccak256(b"unknown");
    let err: AssetRegistry::AssetNotFound = r.reverts(
        owner,
        AssetRegistry::transferOwnershipCall {
            did: unknown,
            newOwner: owner,
        },
        &[unknown],
    );
    assert_eq!(err.did, unknown);
}

#[test]
fn a_transfer_to_the_zero_address_reverts_invalid_address() {
    let mut r = Registry::new();
    let (owner, did) = (r.owner, r.did);
    let _: AssetRegistry::InvalidAddress = r.reverts(
        owner,
        AssetRegistry::transferOwnershipCall {
            did,
            newOwner: Address::ZERO,
        },
        &[],
    );
    assert_eq!(r.owner_of(did), owner);
}

#[test]
fn a_transfer_ends_every_delegation_of_the_previous_owner() {
    let mut r = Registry::with_delegate();
    let (owner, new_owner, delegate, did) = (r.owner, r.new_owner, r.delegate, r.did);
    assert!(r.is_delegate(did, delegate));
    r.send(
        owner,
        AssetRegistry::transferOwnershipCall {
            did,
            newOwner: new_owner,
        },
    )
    .unwrap();
    assert_eq!(
        r.asset(did).ownerEpoch,
        alloy::primitives::aliases::U56::from(1)
    );
    assert!(!r.is_delegate(did, delegate));
    assert!(!r.can_serve(did, delegate));
    let err: AssetRegistry::NotAssetManager = r.reverts(
        delegate,
        AssetRegistry::addProviderCall {
            did,
            provider: delegate,
        },
        &[],
    );
    assert_eq!(err.caller, delegate);
    // Nothing left to revoke; the new owner may grant the same account again, afresh.
    let err: AssetRegistry::PermissionUnchanged = r.reverts(
        new_owner,
        AssetRegistry::revokePermissionCall { did, delegate },
        &[],
    );
    assert_eq!(err.delegate, delegate);
    r.send(
        new_owner,
        AssetRegistry::grantPermissionCall { did, delegate },
    )
    .unwrap();
    assert!(r.is_delegate(did, delegate));
    r.send(
        delegate,
        AssetRegistry::addProviderCall {
            did,
            provider: delegate,
        },
    )
    .expect("a delegate of the new owner manages");
}

#[test]
fn a_seller_who_delegated_to_itself_loses_control_on_transfer() {
    let mut r = Registry::new();
    let (owner, new_owner, did) = (r.owner, r.new_owner, r.did);
    r.send(
        owner,
        AssetRegistry::grantPermissionCall {
            did,
            delegate: owner,
        },
    )
    .expect("the owner may delegate to itself");
    r.send(
        owner,
        AssetRegistry::transferOwnershipCall {
            did,
            newOwner: new_owner,
        },
    )
    .unwrap();
    assert!(!r.can_serve(did, owner));
    let err: AssetRegistry::NotAssetManager = r.reverts(
        owner,
        AssetRegistry::updateMetadataCall {
            did,
            checksum: keccak256(b"seller's"),
            url: OTHER_URL.into(),
        },
        &[],
    );
    assert_eq!(err.caller, owner);
}

#[test]
fn a_provider_may_resign() {
    let mut r = Registry::new();
    let (keeper, outsider, did) = (r.keeper, r.outsider, r.did);
    assert!(r.is_provider(did, keeper));
    let receipt = r
        .send(keeper, AssetRegistry::resignProviderCall { did })
        .expect("resign");
    let event = receipt.expect_event::<AssetRegistry::ProviderRemoved>();
    assert_eq!((event.did, event.provider), (did, keeper));
    assert!(!r.is_provider(did, keeper));
    assert!(!r.can_serve(did, keeper));
    let err: AssetRegistry::ProviderNotFound =
        r.reverts(keeper, AssetRegistry::resignProviderCall { did }, &[]);
    assert_eq!((err.did, err.provider), (did, keeper));
    let err: AssetRegistry::ProviderNotFound =
        r.reverts(outsider, AssetRegistry::resignProviderCall { did }, &[]);
    assert_eq!(err.provider, outsider);
    let unknown = B256::repeat_byte(0xee);
    let err: AssetRegistry::AssetNotFound = r.reverts(
        keeper,
        AssetRegistry::resignProviderCall { did: unknown },
        &[],
    );
    assert_eq!(err.did, unknown);
}

#[test]
fn the_owner_adds_and_removes_a_provider() {
    let mut r = Registry::new();
    let (owner, did, extra) = (r.owner, r.did, r.delegate);
    let receipt = r
        .send(
            owner,
            AssetRegistry::addProviderCall {
                did,
                provider: extra,
            },
        )
        .unwrap();
    assert_eq!(
        r.events(&receipt),
        vec![AssetRegistryEvents::ProviderAdded(
            AssetRegistry::ProviderAdded {
                did,
                provider: extra
            }
        )]
    );
    assert!(r.is_provider(did, extra));
    assert!(r.can_serve(did, extra));
    assert!(!r.is_delegate(did, extra), "a provider is not a delegate");

    let receipt = r
        .send(
            owner,
            AssetRegistry::removeProviderCall {
                did,
                provider: extra,
            },
        )
        .unwrap();
    assert_eq!(
        r.events(&receipt),
        vec![AssetRegistryEvents::ProviderRemoved(
            AssetRegistry::ProviderRemoved {
                did,
                provider: extra
            }
        )]
    );
    assert!(!r.is_provider(did, extra));
    assert!(!r.can_serve(did, extra));
}

#[test]
fn a_delegate_adds_and_removes_providers() {
    let mut r = Registry::with_delegate();
    let (delegate, did, keeper, outsider) = (r.delegate, r.did, r.keeper, r.outsider);
    r.send(
        delegate,
        AssetRegistry::addProviderCall {
            did,
            provider: outsider,
        },
    )
    .unwrap();
    assert!(r.is_provider(did, outsider));
    let receipt = r
        .send(
            delegate,
            AssetRegistry::removeProviderCall {
                did,
                provider: keeper,
            },
        )
        .unwrap();
    assert_eq!(
        r.events(&receipt),
        vec![AssetRegistryEvents::ProviderRemoved(
            AssetRegistry::ProviderRemoved {
                did,
                provider: keeper
            }
        )]
    );
    assert!(!r.is_provider(did, keeper));
}

#[test]
fn neither_an_outsider_nor_a_provider_manages_providers() {
    let mut r = Registry::new();
    let (did, keeper) = (r.did, r.keeper);
    for caller in [r.outsider, keeper] {
        let err: AssetRegistry::NotAssetManager = r.reverts(
            caller,
            AssetRegistry::addProviderCall {
                did,
                provider: caller,
            },
            &[],
        );
        assert_eq!((err.did, err.caller), (did, caller));
        // Not even a provider removing itself.
        let err: AssetRegistry::NotAssetManager = r.reverts(
            caller,
            AssetRegistry::removeProviderCall {
                did,
                provider: keeper,
            },
            &[],
        );
        assert_eq!((err.did, err.caller), (did, caller));
    }
}

#[test]
fn adding_a_zero_or_existing_provider_reverts() {
    let mut r = Registry::new();
    let (owner, did, keeper) = (r.owner, r.did, r.keeper);
    let _: AssetRegistry::InvalidAddress = r.reverts(
        owner,
        AssetRegistry::addProviderCall {
            did,
            provider: Address::ZERO,
        },
        &[],
    );
    let err: AssetRegistry::ProviderAlreadyAdded = r.reverts(
        owner,
        AssetRegistry::addProviderCall {
            did,
            provider: keeper,
        },
        &[],
    );
    assert_eq!((err.did, err.provider), (did, keeper));
}

#[test]
fn removing_a_provider_that_is_not_one_reverts_provider_not_found() {
    let mut r = Registry::new();
    let (owner, did, keeper, outsider) = (r.owner, r.did, r.keeper, r.outsider);
    let err: AssetRegistry::ProviderNotFound = r.reverts(
        owner,
        AssetRegistry::removeProviderCall {
            did,
            provider: outsider,
        },
        &[],
    );
    assert_eq!((err.did, err.provider), (did, outsider));
    // The owner serves without being a provider: it cannot be removed as one.
    let err: AssetRegistry::ProviderNotFound = r.reverts(
        owner,
        AssetRegistry::removeProviderCall {
            did,
            provider: owner,
        },
        &[],
    );
    assert_eq!(err.provider, owner);
    // Removing twice.
    r.send(
        owner,
        AssetRegistry::removeProviderCall {
            did,
            provider: keeper,
        },
    )
    .unwrap();
    let err: AssetRegistry::ProviderNotFound = r.reverts(
        owner,
        AssetRegistry::removeProviderCall {
            did,
            provider: keeper,
        },
        &[],
    );
    assert_eq!(err.provider, keeper);
}

#[test]
fn managing_providers_of_an_unknown_asset_reverts_asset_not_found() {
    let mut r = Registry::new();
    let (owner, keeper) = (r.owner, r.keeper);
    let unknown = keccak256(b"unknown");
    let err: AssetRegistry::AssetNotFound = r.reverts(
        owner,
        AssetRegistry::addProviderCall {
            did: unknown,
            provider: keeper,
        },
        &[unknown],
    );
    assert_eq!(err.did, unknown);
    let err: AssetRegistry::AssetNotFound = r.reverts(
        owner,
        AssetRegistry::removeProviderCall {
            did: unknown,
            provider: keeper,
        },
        &[unknown],
    );
    assert_eq!(err.did, unknown);
}

// ---- grantPermission / revokePermission ----

#[test]
fn the_owner_grants_and_revokes_a_permission() {
    let mut r = Registry::new();
    let (owner, did, delegate) = (r.owner, r.did, r.delegate);
    assert!(!r.can_serve(did, delegate));

    let receipt = r
        .send(owner, AssetRegistry::grantPermissionCall { did, delegate })
        .unwrap();
    assert_eq!(
        r.events(&receipt),
        vec![AssetRegistryEvents::PermissionGranted(
            AssetRegistry::PermissionGranted { did, delegate }
        )]
    );
    assert!(r.is_delegate(did, delegate));
    assert!(r.can_serve(did, delegate));
    assert!(
        !r.is_provider(did, delegate),
        "a delegate is not a provider"
    );

    let receipt = r
        .send(owner, AssetRegistry::revokePermissionCall { did, delegate })
        .unwrap();
    assert_eq!(
        r.events(&receipt),
        vec![AssetRegistryEvents::PermissionRevoked(
            AssetRegistry::PermissionRevoked { did, delegate }
        )]
    );
    assert!(!r.is_delegate(did, delegate));
    assert!(!r.can_serve(did, delegate));
    let err: AssetRegistry::NotAssetManager = r.reverts(
        delegate,
        AssetRegistry::updateMetadataCall {
            did,
            checksum: checksum(),
            url: URL.into(),
        },
        &[],
    );
    assert_eq!(err.caller, delegate);
}

#[test]
fn granting_or_revoking_without_a_change_reverts_permission_unchanged() {
    let mut r = Registry::with_delegate();
    let (owner, did, delegate, outsider) = (r.owner, r.did, r.delegate, r.outsider);
    let err: AssetRegistry::PermissionUnchanged = r.reverts(
        owner,
        AssetRegistry::grantPermissionCall { did, delegate },
        &[],
    );
    assert_eq!((err.did, err.delegate), (did, delegate));
    let err: AssetRegistry::PermissionUnchanged = r.reverts(
        owner,
        AssetRegistry::revokePermissionCall {
            did,
            delegate: outsider,
        },
        &[],
    );
    assert_eq!((err.did, err.delegate), (did, outsider));
    // The zero address is never a delegate: revoking it is "unchanged", not InvalidAddress.
    let err: AssetRegistry::PermissionUnchanged = r.reverts(
        owner,
        AssetRegistry::revokePermissionCall {
            did,
            delegate: Address::ZERO,
        },
        &[],
    );
    assert_eq!(err.delegate, Address::ZERO);
    r.send(owner, AssetRegistry::revokePermissionCall { did, delegate })
        .unwrap();
    let err: AssetRegistry::PermissionUnchanged = r.reverts(
        owner,
        AssetRegistry::revokePermissionCall { did, delegate },
        &[],
    );
    assert_eq!((err.did, err.delegate), (did, delegate));
}

#[test]
fn granting_to_the_zero_address_reverts_invalid_address() {
    let mut r = Registry::new();
    let (owner, did) = (r.owner, r.did);
    let _: AssetRegistry::InvalidAddress = r.reverts(
        owner,
        AssetRegistry::grantPermissionCall {
            did,
            delegate: Address::ZERO,
        },
        &[],
    );
}

#[test]
fn only_the_owner_grants_and_revokes() {
    let mut r = Registry::with_delegate();
    let (did, delegate, outsider) = (r.did, r.delegate, r.outsider);
    for caller in [delegate, r.keeper, outsider] {
        let err: AssetRegistry::NotAssetOwner = r.reverts(
            caller,
            AssetRegistry::grantPermissionCall {
                did,
                delegate: outsider,
            },
            &[],
        );
        assert_eq!((err.did, err.caller), (did, caller));
        let err: AssetRegistry::NotAssetOwner = r.reverts(
            caller,
            AssetRegistry::revokePermissionCall { did, delegate },
            &[],
        );
        assert_eq!((err.did, err.caller), (did, caller));
    }
    let owner = r.owner;
    let unknown = keccak256(b"unknown");
    let err: AssetRegistry::AssetNotFound = r.reverts(
        owner,
        AssetRegistry::grantPermissionCall {
            did: unknown,
            delegate,
        },
        &[unknown],
    );
    assert_eq!(err.did, unknown);
    let err: AssetRegistry::AssetNotFound = r.reverts(
        owner,
        AssetRegistry::revokePermissionCall {
            did: unknown,
            delegate,
        },
        &[unknown],
    );
    assert_eq!(err.did, unknown);
}

// ---- canServe ----

#[test]
fn can_serve_truth_table() {
    let mut r = Registry::with_delegate();
    let (owner, keeper, delegate, outsider, did) =
        (r.owner, r.keeper, r.delegate, r.outsider, r.did);
    let unknown = keccak256(b"unknown");

    let table = [
        (owner, true),
        (keeper, true),
        (delegate, true),
        (outsider, false),
        (Address::ZERO, false),
    ];
    for (account, expected) in table {
        assert_eq!(
            r.can_serve(did, account),
            expected,
            "canServe({})",
            r.w.chain.name(account)
        );
        assert!(
            !r.can_serve(unknown, account),
            "nobody serves an unknown did"
        );
    }
    // The permission of one asset does not extend to another asset of the same owner.
    let second = r.fresh(owner);
    assert!(r.can_serve(second, owner));
    assert!(!r.can_serve(second, keeper));
    assert!(!r.can_serve(second, delegate));

    r.send(
        owner,
        AssetRegistry::removeProviderCall {
            did,
            provider: keeper,
        },
    )
    .unwrap();
    assert!(!r.can_serve(did, keeper), "after removal");
    r.send(owner, AssetRegistry::revokePermissionCall { did, delegate })
        .unwrap();
    assert!(!r.can_serve(did, delegate), "after revocation");
    assert!(r.can_serve(did, owner));

    // Provider and delegate at once: serving survives losing one of the two.
    r.send(
        owner,
        AssetRegistry::addProviderCall {
            did,
            provider: outsider,
        },
    )
    .unwrap();
    r.send(
        owner,
        AssetRegistry::grantPermissionCall {
            did,
            delegate: outsider,
        },
    )
    .unwrap();
    r.send(
        owner,
        AssetRegistry::removeProviderCall {
            did,
            provider: outsider,
        },
    )
    .unwrap();
    assert!(r.can_serve(did, outsider), "still a delegate");
    r.send(
        owner,
        AssetRegistry::revokePermissionCall {
            did,
            delegate: outsider,
        },
    )
    .unwrap();
    assert!(!r.can_serve(did, outsider));
}

// ---- recordUse ----

#[test]
fn every_server_records_a_use() {
    let mut r = Registry::with_delegate();
    let did = r.did;
    for (n, agent) in [r.owner, r.keeper, r.delegate].into_iter().enumerate() {
        let job = activity(u8::try_from(n).unwrap());
        let receipt = r
            .send(
                agent,
                AssetRegistry::recordUseCall {
                    did,
                    activityId: job,
                },
            )
            .unwrap();
        assert_eq!(
            r.events(&receipt),
            vec![AssetRegistryEvents::Used(AssetRegistry::Used {
                did,
                activityId: job,
                agent,
            })]
        );
    }
}

#[test]
fn a_non_server_cannot_record_a_use() {
    let mut r = Registry::new();
    let (owner, keeper, outsider, did) = (r.owner, r.keeper, r.outsider, r.did);
    let err: AssetRegistry::NotAssetServer = r.reverts(
        outsider,
        AssetRegistry::recordUseCall {
            did,
            activityId: activity(9),
        },
        &[],
    );
    assert_eq!((err.did, err.caller), (did, outsider));

    r.send(
        owner,
        AssetRegistry::removeProviderCall {
            did,
            provider: keeper,
        },
    )
    .unwrap();
    let err: AssetRegistry::NotAssetServer = r.reverts(
        keeper,
        AssetRegistry::recordUseCall {
            did,
            activityId: activity(9),
        },
        &[],
    );
    assert_eq!((err.did, err.caller), (did, keeper));
}

#[test]
fn recording_a_use_of_an_unknown_asset_reverts_asset_not_found() {
    let mut r = Registry::new();
    let keeper = r.keeper;
    let unknown = keccak256(b"unknown");
    let err: AssetRegistry::AssetNotFound = r.reverts(
        keeper,
        AssetRegistry::recordUseCall {
            did: unknown,
            activityId: activity(1),
        },
        &[unknown],
    );
    assert_eq!(err.did, unknown);
}

// ---- recordDerivation ----

#[test]
fn owner_and_delegate_record_a_derivation() {
    let mut r = Registry::with_delegate();
    let (owner, delegate, did) = (r.owner, r.delegate, r.did);
    let source = r.fresh(r.outsider);
    for agent in [owner, delegate] {
        let receipt = r
            .send(
                agent,
                AssetRegistry::recordDerivationCall {
                    did,
                    sourceDid: source,
                    activityId: activity(7),
                },
            )
            .unwrap();
        assert_eq!(
            r.events(&receipt),
            vec![AssetRegistryEvents::WasDerivedFrom(
                AssetRegistry::WasDerivedFrom {
                    did,
                    sourceDid: source,
                    activityId: activity(7),
                    agent,
                }
            )]
        );
    }
}

#[test]
fn neither_a_provider_nor_an_outsider_records_a_derivation() {
    let mut r = Registry::new();
    let did = r.did;
    let source = r.fresh(r.owner);
    for caller in [r.keeper, r.outsider] {
        let err: AssetRegistry::NotAssetManager = r.reverts(
            caller,
            AssetRegistry::recordDerivationCall {
                did,
                sourceDid: source,
                activityId: activity(1),
            },
            &[source],
        );
        assert_eq!((err.did, err.caller), (did, caller));
    }
}

#[test]
fn an_asset_cannot_be_derived_from_itself() {
    let mut r = Registry::new();
    let (owner, did) = (r.owner, r.did);
    let err: AssetRegistry::SelfDerivation = r.reverts(
        owner,
        AssetRegistry::recordDerivationCall {
            did,
            sourceDid: did,
            activityId: activity(1),
        },
        &[],
    );
    assert_eq!(err.did, did);
}

#[test]
fn a_derivation_needs_both_assets_registered() {
    let mut r = Registry::new();
    let (owner, did) = (r.owner, r.did);
    let unknown = keccak256(b"unknown");
    let err: AssetRegistry::AssetNotFound = r.reverts(
        owner,
        AssetRegistry::recordDerivationCall {
            did,
            sourceDid: unknown,
            activityId: activity(1),
        },
        &[unknown],
    );
    assert_eq!(err.did, unknown, "unknown source");
    let err: AssetRegistry::AssetNotFound = r.reverts(
        owner,
        AssetRegistry::recordDerivationCall {
            did: unknown,
            sourceDid: did,
            activityId: activity(1),
        },
        &[unknown],
    );
    assert_eq!(err.did, unknown, "unknown derived asset");
    // An unknown did is reported as such before the self-derivation check.
    let err: AssetRegistry::AssetNotFound = r.reverts(
        owner,
        AssetRegistry::recordDerivationCall {
            did: unknown,
            sourceDid: unknown,
            activityId: activity(1),
        },
        &[unknown],
    );
    assert_eq!(err.did, unknown);
}
