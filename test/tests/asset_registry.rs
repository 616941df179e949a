//! AssetRegistry: registration and did derivation, derived assets, compute results and provenance
//! (attested by a server of each source), metadata, two-step ownership transfer, providers kept per
//! owner epoch and enumerable, delegated permissions, who may serve an asset, offer epochs and
//! their revocation, the offer context templates read, and PROV records.
//!
//! Every revert is checked for its decoded custom error and for leaving the registry as it was,
//! read back through the registry's views.

use alloy::{
    primitives::{
        Address, B256, U256,
        aliases::{U24, U40},
        keccak256,
    },
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
    pending_owner: Address,
    /// `providersOf`, sorted.
    providers: Vec<Address>,
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

    fn pending_owner(&mut self, did: B256) -> Address {
        self.view(AssetRegistry::pendingOwnerOfCall { did })
    }

    /// `providersOf(did)`, sorted (the set's order is unspecified).
    fn providers(&mut self, did: B256) -> Vec<Address> {
        let mut providers = self.view(AssetRegistry::providersOfCall { did });
        providers.sort();
        providers
    }

    fn offer_epoch(&mut self, did: B256) -> u32 {
        self.asset(did).offerEpoch
    }

    fn offer_context(&mut self, did: B256, account: Address) -> (bool, u32, bool) {
        let context = self.view(AssetRegistry::offerContextCall { did, account });
        (
            context.registered,
            context.offerEpoch,
            context.accountCanServe,
        )
    }

    /// Everything the views say about `dids`. Also checks that the views agree with each other:
    /// `offerContext` is (registered, offer epoch, canServe), and `isProvider` is membership of
    /// `providersOf`.
    fn state(&mut self, dids: &[B256]) -> Vec<AssetView> {
        let parties = self.parties();
        let mut views = Vec::new();
        for &did in dids {
            let asset = self.asset(did);
            let providers = self.providers(did);
            let mut roles = Vec::new();
            for &account in &parties {
                let role = (
                    account,
                    self.is_provider(did, account),
                    self.is_delegate(did, account),
                    self.can_serve(did, account),
                );
                assert_eq!(role.1, providers.contains(&account), "isProvider");
                assert_eq!(
                    self.offer_context(did, account),
                    (asset.owner != Address::ZERO, asset.offerEpoch, role.3),
                    "offerContext agrees with getAsset and canServe"
                );
                roles.push(role);
            }
            views.push(AssetView {
                owner_of: self.owner_of(did),
                pending_owner: self.pending_owner(did),
                asset,
                providers,
                roles,
            });
        }
        views
    }

    /// `from` starts the transfer of `did` to `to`, and `to` accepts it.
    fn transfer(&mut self, did: B256, from: Address, to: Address) {
        self.send(
            from,
            AssetRegistry::transferOwnershipCall { did, newOwner: to },
        )
        .expect("start the transfer");
        self.send(to, AssetRegistry::acceptOwnershipCall { did })
            .expect("accept the transfer");
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

/// The did of the result of job `activity` owned by `owner` and registered by `agent`: its own id
/// space, tagged, one part per agent.
fn result_did_of(activity: B256, owner: Address, agent: Address) -> B256 {
    keccak256((keccak256(b"insitu.result"), activity, owner, agent).abi_encode_params())
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
            ownerEpoch: U24::ZERO,
            offerEpoch: 0,
            checksum: checksum(),
            url: URL.into(),
        }
    );
    assert_eq!(r.owner_of(did), owner);
    let mut expected = vec![keeper, other];
    expected.sort();
    assert_eq!(r.providers(did), expected, "providersOf lists both");
    assert_eq!(r.pending_owner(did), Address::ZERO);
    assert_eq!(r.offer_context(did, keeper), (true, 0, true));
    assert_eq!(r.offer_context(did, r.outsider), (true, 0, false));
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
    // A source owned by someone else, which the registrant serves as one of its providers: the
    // source's side attests the derivation (review L-2).
    let seed_b = r.w.seed();
    let source_b = r.register(outsider, seed_b, &[owner]).unwrap().output;
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
    // No source, so nobody attests: `WasGeneratedBy` is then the registrant's own claim (any
    // activity id is accepted). A verifier trusts a generation only next to a `WasDerivedFrom`
    // or `Used` from a server of the source.
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

#[test]
fn register_derived_refuses_a_source_the_registrant_cannot_serve() {
    // Review L-2 and test gap 16: the old `registerDerived` accepted any registrant, any source and
    // any activity, and a test asserted it as intended, so anyone could claim their asset was
    // derived from a reputable data set. Now a server of each source must attest; nothing is
    // registered otherwise.
    let mut r = Registry::new();
    let (owner, outsider, served) = (r.owner, r.outsider, r.did);
    let seed = r.w.seed();
    let did = did_of(seed, outsider);
    let err: AssetRegistry::NotAssetServer = r.reverts(
        outsider,
        AssetRegistry::registerDerivedCall {
            seed,
            checksum: checksum(),
            url: URL.into(),
            providers: vec![],
            sources: vec![served],
            activityId: activity(8),
        },
        &[did],
    );
    assert_eq!((err.did, err.caller), (served, outsider));
    // The owner of one source cannot vouch for another's, even next to its own.
    let foreign = r.fresh(outsider);
    let seed = r.w.seed();
    let did = did_of(seed, owner);
    let err: AssetRegistry::NotAssetServer = r.reverts(
        owner,
        AssetRegistry::registerDerivedCall {
            seed,
            checksum: checksum(),
            url: URL.into(),
            providers: vec![],
            sources: vec![served, foreign],
            activityId: activity(8),
        },
        &[did, foreign],
    );
    assert_eq!((err.did, err.caller), (foreign, owner));
    assert_eq!(r.owner_of(did), Address::ZERO);
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
        vec![
            AssetRegistryEvents::MetadataUpdated(AssetRegistry::MetadataUpdated {
                did,
                checksum: new_checksum,
                url: OTHER_URL.into(),
                by: owner,
            }),
            AssetRegistryEvents::OffersRevoked(AssetRegistry::OffersRevoked {
                did,
                epoch: 1,
                by: owner,
            })
        ]
    );
    assert_eq!(
        r.asset(did),
        AssetRegistry::Asset {
            checksum: new_checksum,
            url: OTHER_URL.into(),
            offerEpoch: before.offerEpoch + 1,
            ..before
        },
        "owner, owner epoch and registration time are kept; offers made for the old metadata lapse"
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
        vec![
            AssetRegistryEvents::MetadataUpdated(AssetRegistry::MetadataUpdated {
                did,
                checksum: new_checksum,
                url: OTHER_URL.into(),
                by: delegate,
            }),
            AssetRegistryEvents::OffersRevoked(AssetRegistry::OffersRevoked {
                did,
                epoch: 1,
                by: delegate,
            })
        ]
    );
    let asset = r.asset(did);
    assert_eq!(asset.offerEpoch, 1);
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

// ---- transferOwnership / acceptOwnership / cancelOwnershipTransfer ----

#[test]
fn a_transfer_starts_with_the_owner_and_completes_when_the_new_owner_accepts() {
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
        vec![AssetRegistryEvents::OwnershipTransferStarted(
            AssetRegistry::OwnershipTransferStarted {
                did,
                owner,
                pendingOwner: new_owner,
            }
        )]
    );
    // Started, not done: nothing but the pending owner changed.
    assert_eq!(r.pending_owner(did), new_owner);
    assert_eq!(r.asset(did), before);
    assert_eq!(r.owner_of(did), owner);
    assert!(r.can_serve(did, owner));
    assert!(
        r.can_serve(did, keeper),
        "the keeper serves until the transfer completes"
    );
    assert!(!r.can_serve(did, new_owner));

    let receipt = r
        .send(new_owner, AssetRegistry::acceptOwnershipCall { did })
        .unwrap();
    assert_eq!(
        r.events(&receipt),
        vec![
            AssetRegistryEvents::AssetOwnershipTransferred(
                AssetRegistry::AssetOwnershipTransferred {
                    did,
                    previousOwner: owner,
                    newOwner: new_owner,
                }
            ),
            AssetRegistryEvents::OffersRevoked(AssetRegistry::OffersRevoked {
                did,
                epoch: before.offerEpoch + 1,
                by: new_owner,
            }),
        ]
    );
    assert_eq!(r.owner_of(did), new_owner);
    assert_eq!(r.pending_owner(did), Address::ZERO);
    assert_eq!(
        r.asset(did),
        AssetRegistry::Asset {
            owner: new_owner,
            ownerEpoch: before.ownerEpoch + U24::from(1),
            offerEpoch: before.offerEpoch + 1,
            ..before
        }
    );
    // Review L-1: the old registry kept the provider set across a transfer, so the seller's
    // keeper (or any provider the seller or a delegate added) still served the buyer's asset.
    // Providers now belong to an ownership: the previous owner's set is gone.
    assert!(!r.is_provider(did, keeper), "providers are NOT kept");
    assert!(
        !r.can_serve(did, keeper),
        "the seller's keeper no longer serves"
    );
    assert_eq!(r.providers(did), Vec::<Address>::new());
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
    let err: AssetRegistry::NotAssetServer =
        r.reverts(owner, AssetRegistry::revokeOffersCall { did }, &[]);
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
fn a_transfer_to_the_zero_address_or_to_the_owner_reverts_invalid_address() {
    let mut r = Registry::new();
    let (owner, did) = (r.owner, r.did);
    for new_owner in [Address::ZERO, owner] {
        let _: AssetRegistry::InvalidAddress = r.reverts(
            owner,
            AssetRegistry::transferOwnershipCall {
                did,
                newOwner: new_owner,
            },
            &[],
        );
    }
    assert_eq!(r.owner_of(did), owner);
    assert_eq!(r.pending_owner(did), Address::ZERO);
}

#[test]
fn only_the_pending_owner_accepts() {
    let mut r = Registry::with_delegate();
    let (owner, new_owner, did) = (r.owner, r.new_owner, r.did);
    // Nothing pending: even the owner and the future buyer are refused.
    for caller in [owner, new_owner, r.outsider] {
        let err: AssetRegistry::NotPendingOwner =
            r.reverts(caller, AssetRegistry::acceptOwnershipCall { did }, &[]);
        assert_eq!((err.did, err.caller), (did, caller));
    }
    r.send(
        owner,
        AssetRegistry::transferOwnershipCall {
            did,
            newOwner: new_owner,
        },
    )
    .unwrap();
    for caller in [owner, r.delegate, r.keeper, r.outsider, Address::ZERO] {
        let err: AssetRegistry::NotPendingOwner =
            r.reverts(caller, AssetRegistry::acceptOwnershipCall { did }, &[]);
        assert_eq!((err.did, err.caller), (did, caller));
    }
    let unknown = keccak256(b"unknown");
    let err: AssetRegistry::AssetNotFound = r.reverts(
        new_owner,
        AssetRegistry::acceptOwnershipCall { did: unknown },
        &[unknown],
    );
    assert_eq!(err.did, unknown);
    r.send(new_owner, AssetRegistry::acceptOwnershipCall { did })
        .expect("the pending owner accepts");
    // Accepted once: the pending transfer is consumed.
    let err: AssetRegistry::NotPendingOwner =
        r.reverts(new_owner, AssetRegistry::acceptOwnershipCall { did }, &[]);
    assert_eq!(err.caller, new_owner);
}

#[test]
fn starting_again_replaces_the_pending_owner() {
    let mut r = Registry::new();
    let (owner, first, second, did) = (r.owner, r.new_owner, r.outsider, r.did);
    for pending in [first, second] {
        let receipt = r
            .send(
                owner,
                AssetRegistry::transferOwnershipCall {
                    did,
                    newOwner: pending,
                },
            )
            .unwrap();
        let event = receipt.expect_event::<AssetRegistry::OwnershipTransferStarted>();
        assert_eq!(
            (event.did, event.owner, event.pendingOwner),
            (did, owner, pending)
        );
        assert_eq!(r.pending_owner(did), pending);
    }
    let err: AssetRegistry::NotPendingOwner =
        r.reverts(first, AssetRegistry::acceptOwnershipCall { did }, &[]);
    assert_eq!(err.caller, first, "the replaced buyer can no longer accept");
    r.send(second, AssetRegistry::acceptOwnershipCall { did })
        .unwrap();
    assert_eq!(r.owner_of(did), second);
}

#[test]
fn the_owner_cancels_a_pending_transfer() {
    let mut r = Registry::with_delegate();
    let (owner, new_owner, did) = (r.owner, r.new_owner, r.did);
    let err: AssetRegistry::NoPendingOwner = r.reverts(
        owner,
        AssetRegistry::cancelOwnershipTransferCall { did },
        &[],
    );
    assert_eq!(err.did, did);
    r.send(
        owner,
        AssetRegistry::transferOwnershipCall {
            did,
            newOwner: new_owner,
        },
    )
    .unwrap();
    // Only the owner cancels; neither the buyer nor a delegate.
    for caller in [new_owner, r.delegate, r.keeper, r.outsider] {
        let err: AssetRegistry::NotAssetOwner = r.reverts(
            caller,
            AssetRegistry::cancelOwnershipTransferCall { did },
            &[],
        );
        assert_eq!((err.did, err.caller), (did, caller));
    }
    let unknown = keccak256(b"unknown");
    let err: AssetRegistry::AssetNotFound = r.reverts(
        owner,
        AssetRegistry::cancelOwnershipTransferCall { did: unknown },
        &[unknown],
    );
    assert_eq!(err.did, unknown);

    let before = r.state(&[did]);
    let receipt = r
        .send(owner, AssetRegistry::cancelOwnershipTransferCall { did })
        .unwrap();
    assert_eq!(
        r.events(&receipt),
        vec![AssetRegistryEvents::OwnershipTransferCancelled(
            AssetRegistry::OwnershipTransferCancelled {
                did,
                owner,
                pendingOwner: new_owner,
            }
        )]
    );
    assert_eq!(r.pending_owner(did), Address::ZERO);
    let after = r.state(&[did]);
    assert_eq!(
        (after[0].asset.clone(), after[0].roles.clone()),
        (before[0].asset.clone(), before[0].roles.clone()),
        "a cancel changes nothing else: no epoch, no provider, no delegate"
    );
    let err: AssetRegistry::NotPendingOwner =
        r.reverts(new_owner, AssetRegistry::acceptOwnershipCall { did }, &[]);
    assert_eq!(err.caller, new_owner);
    let err: AssetRegistry::NoPendingOwner = r.reverts(
        owner,
        AssetRegistry::cancelOwnershipTransferCall { did },
        &[],
    );
    assert_eq!(err.did, did);
}

#[test]
fn a_transfer_ends_every_delegation_of_the_previous_owner() {
    let mut r = Registry::with_delegate();
    let (owner, new_owner, delegate, did) = (r.owner, r.new_owner, r.delegate, r.did);
    assert!(r.is_delegate(did, delegate));
    r.transfer(did, owner, new_owner);
    assert_eq!(r.asset(did).ownerEpoch, U24::from(1));
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
    r.transfer(did, owner, new_owner);
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
fn a_provider_the_seller_or_a_delegate_added_for_itself_ends_with_the_transfer() {
    // Review L-1 and test gap 2: the old registry kept `_providers` across owners, so a seller (or
    // a delegate) that listed itself as a provider before selling still passed `canServe` on the
    // buyer's asset: it could fulfil the buyer's agreements without delivering and record uses.
    let mut r = Registry::with_delegate();
    let (owner, new_owner, delegate, keeper, did) =
        (r.owner, r.new_owner, r.delegate, r.keeper, r.did);
    for provider in [owner, delegate] {
        r.send(delegate, AssetRegistry::addProviderCall { did, provider })
            .expect("a delegate adds providers, itself included");
    }
    let mut listed = vec![owner, keeper, delegate];
    listed.sort();
    assert_eq!(r.providers(did), listed, "providersOf lists every provider");
    r.transfer(did, owner, new_owner);
    for account in [owner, delegate, keeper] {
        assert!(!r.is_provider(did, account));
        assert!(!r.can_serve(did, account), "{}", r.w.chain.name(account));
        assert_eq!(r.offer_context(did, account), (true, 1, false));
        let err: AssetRegistry::NotAssetServer = r.reverts(
            account,
            AssetRegistry::recordUseCall {
                did,
                activityId: activity(1),
            },
            &[],
        );
        assert_eq!((err.did, err.caller), (did, account));
        let err: AssetRegistry::NotAssetServer =
            r.reverts(account, AssetRegistry::revokeOffersCall { did }, &[]);
        assert_eq!(err.caller, account);
        // Nothing of the old set is left to resign from either.
        let err: AssetRegistry::ProviderNotFound =
            r.reverts(account, AssetRegistry::resignProviderCall { did }, &[]);
        assert_eq!(err.provider, account);
    }
    assert_eq!(r.providers(did), Vec::<Address>::new());
    // The buyer builds its own set; re-adding an old provider starts afresh.
    r.send(
        new_owner,
        AssetRegistry::addProviderCall {
            did,
            provider: keeper,
        },
    )
    .unwrap();
    assert_eq!(r.providers(did), vec![keeper]);
    assert!(r.can_serve(did, keeper));
    assert!(!r.can_serve(did, owner));
}

#[test]
fn a_transfer_back_does_not_revive_the_first_owners_providers() {
    let mut r = Registry::with_delegate();
    let (owner, new_owner, delegate, keeper, did) =
        (r.owner, r.new_owner, r.delegate, r.keeper, r.did);
    r.transfer(did, owner, new_owner);
    r.transfer(did, new_owner, owner);
    let asset = r.asset(did);
    assert_eq!(
        (asset.owner, asset.ownerEpoch, asset.offerEpoch),
        (owner, U24::from(2), 2)
    );
    assert!(
        !r.is_provider(did, keeper),
        "epoch 0's providers stay ended"
    );
    assert!(
        !r.is_delegate(did, delegate),
        "epoch 0's delegates stay ended"
    );
    assert!(!r.can_serve(did, keeper));
    assert!(!r.can_serve(did, new_owner));
    assert!(r.can_serve(did, owner));
    assert_eq!(r.providers(did), Vec::<Address>::new());
}

#[test]
fn revoking_a_delegate_leaves_the_providers_it_added_listed_for_removal() {
    // revokePermission keeps providers the delegate added (documented); providersOf is how the
    // owner finds them without scanning events (review L-1).
    let mut r = Registry::with_delegate();
    let (owner, delegate, outsider, keeper, did) =
        (r.owner, r.delegate, r.outsider, r.keeper, r.did);
    for provider in [delegate, outsider] {
        r.send(delegate, AssetRegistry::addProviderCall { did, provider })
            .unwrap();
    }
    r.send(owner, AssetRegistry::revokePermissionCall { did, delegate })
        .unwrap();
    assert!(!r.is_delegate(did, delegate));
    assert!(r.can_serve(did, delegate), "still a provider it added");
    let mut listed = vec![keeper, delegate, outsider];
    listed.sort();
    assert_eq!(r.providers(did), listed);
    for provider in [delegate, outsider] {
        r.send(owner, AssetRegistry::removeProviderCall { did, provider })
            .unwrap();
    }
    assert_eq!(r.providers(did), vec![keeper]);
    assert!(!r.can_serve(did, delegate));
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
    let epoch = r.offer_epoch(did);
    assert_eq!(
        r.events(&receipt),
        vec![
            AssetRegistryEvents::ProviderRemoved(AssetRegistry::ProviderRemoved {
                did,
                provider: extra
            }),
            // A removal revokes every outstanding offer on the asset.
            AssetRegistryEvents::OffersRevoked(AssetRegistry::OffersRevoked {
                did,
                epoch,
                by: owner
            }),
        ]
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
    let epoch = r.offer_epoch(did);
    assert_eq!(
        r.events(&receipt),
        vec![
            AssetRegistryEvents::ProviderRemoved(AssetRegistry::ProviderRemoved {
                did,
                provider: keeper
            }),
            AssetRegistryEvents::OffersRevoked(AssetRegistry::OffersRevoked {
                did,
                epoch,
                by: delegate
            }),
        ]
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
    let epoch = r.offer_epoch(did);
    assert_eq!(
        r.events(&receipt),
        vec![
            AssetRegistryEvents::PermissionRevoked(AssetRegistry::PermissionRevoked {
                did,
                delegate
            }),
            // The delegate's offers end with its permission.
            AssetRegistryEvents::OffersRevoked(AssetRegistry::OffersRevoked {
                did,
                epoch,
                by: owner
            }),
        ]
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
fn every_server_of_the_source_records_a_derivation_of_any_asset() {
    // The source's side attests (review L-2): owner, provider and delegate of the SOURCE may
    // record that another's asset was derived from it; managing the derived asset is not needed.
    let mut r = Registry::with_delegate();
    let (owner, keeper, delegate, source) = (r.owner, r.keeper, r.delegate, r.did);
    let derived = r.fresh(r.outsider);
    for (n, agent) in [owner, keeper, delegate].into_iter().enumerate() {
        let job = activity(u8::try_from(n).unwrap());
        let receipt = r
            .send(
                agent,
                AssetRegistry::recordDerivationCall {
                    did: derived,
                    sourceDid: source,
                    activityId: job,
                },
            )
            .unwrap();
        assert_eq!(
            r.events(&receipt),
            vec![AssetRegistryEvents::WasDerivedFrom(
                AssetRegistry::WasDerivedFrom {
                    did: derived,
                    sourceDid: source,
                    activityId: job,
                    agent,
                }
            )]
        );
    }
}

#[test]
fn a_derivation_is_refused_to_whoever_cannot_serve_the_source() {
    // Review L-2 and test gap 16: the old registry let the manager of the DERIVED asset claim any
    // source (`recordDerivation` checked only the derived side), so anyone could pass an asset off
    // as derived from a reputable data set. Now even the owner of the derived asset is refused
    // unless it may serve the source.
    let mut r = Registry::with_delegate();
    let (owner, outsider) = (r.owner, r.outsider);
    let derived = r.did;
    let source = r.fresh(outsider);
    for caller in [owner, r.keeper, r.delegate, r.new_owner] {
        let err: AssetRegistry::NotAssetServer = r.reverts(
            caller,
            AssetRegistry::recordDerivationCall {
                did: derived,
                sourceDid: source,
                activityId: activity(1),
            },
            &[source],
        );
        assert_eq!((err.did, err.caller), (source, caller));
    }
    // A server of the source that lost its right (the source was sold) is refused too.
    r.send(
        outsider,
        AssetRegistry::addProviderCall {
            did: source,
            provider: owner,
        },
    )
    .unwrap();
    r.send(
        owner,
        AssetRegistry::recordDerivationCall {
            did: derived,
            sourceDid: source,
            activityId: activity(2),
        },
    )
    .expect("a provider of the source attests");
    let buyer = r.new_owner;
    r.transfer(source, outsider, buyer);
    let err: AssetRegistry::NotAssetServer = r.reverts(
        owner,
        AssetRegistry::recordDerivationCall {
            did: derived,
            sourceDid: source,
            activityId: activity(3),
        },
        &[source],
    );
    assert_eq!((err.did, err.caller), (source, owner));
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

// ---- revokeOffers ----

#[test]
fn every_server_revokes_the_offers_and_each_revocation_bumps_the_epoch() {
    let mut r = Registry::with_delegate();
    let did = r.did;
    let before = r.asset(did);
    for (n, by) in [r.owner, r.keeper, r.delegate].into_iter().enumerate() {
        let receipt = r.send(by, AssetRegistry::revokeOffersCall { did }).unwrap();
        let epoch = u32::try_from(n).unwrap() + 1;
        assert_eq!(
            r.events(&receipt),
            vec![AssetRegistryEvents::OffersRevoked(
                AssetRegistry::OffersRevoked { did, epoch, by }
            )]
        );
        assert_eq!(r.offer_epoch(did), epoch);
        assert_eq!(r.offer_context(did, by), (true, epoch, true));
    }
    assert_eq!(
        r.asset(did),
        AssetRegistry::Asset {
            offerEpoch: 3,
            ..before
        },
        "only the offer epoch moves"
    );
    // Another asset's epoch is untouched.
    let other = r.fresh(r.owner);
    assert_eq!(r.offer_epoch(other), 0);
}

#[test]
fn a_non_server_cannot_revoke_the_offers() {
    let mut r = Registry::new();
    let (owner, keeper, did) = (r.owner, r.keeper, r.did);
    for caller in [r.outsider, r.new_owner, Address::ZERO] {
        let err: AssetRegistry::NotAssetServer =
            r.reverts(caller, AssetRegistry::revokeOffersCall { did }, &[]);
        assert_eq!((err.did, err.caller), (did, caller));
    }
    r.send(
        owner,
        AssetRegistry::removeProviderCall {
            did,
            provider: keeper,
        },
    )
    .unwrap();
    let err: AssetRegistry::NotAssetServer =
        r.reverts(keeper, AssetRegistry::revokeOffersCall { did }, &[]);
    assert_eq!(err.caller, keeper, "a removed provider");
    let unknown = keccak256(b"unknown");
    let err: AssetRegistry::AssetNotFound = r.reverts(
        owner,
        AssetRegistry::revokeOffersCall { did: unknown },
        &[unknown],
    );
    assert_eq!(err.did, unknown);
    assert_eq!(
        r.offer_epoch(did),
        1,
        "bumped by the removal only, not by the refused calls"
    );
}

#[test]
fn metadata_updates_revocations_and_transfers_share_one_offer_epoch() {
    let mut r = Registry::with_delegate();
    let (owner, keeper, delegate, new_owner, did) =
        (r.owner, r.keeper, r.delegate, r.new_owner, r.did);
    r.send(keeper, AssetRegistry::revokeOffersCall { did })
        .unwrap();
    r.send(
        delegate,
        AssetRegistry::updateMetadataCall {
            did,
            checksum: keccak256(b"v2"),
            url: OTHER_URL.into(),
        },
    )
    .unwrap();
    assert_eq!(r.offer_epoch(did), 2);
    // Starting or cancelling a transfer revokes nothing; completing it does.
    r.send(
        owner,
        AssetRegistry::transferOwnershipCall {
            did,
            newOwner: new_owner,
        },
    )
    .unwrap();
    r.send(owner, AssetRegistry::cancelOwnershipTransferCall { did })
        .unwrap();
    assert_eq!(r.offer_epoch(did), 2);
    r.transfer(did, owner, new_owner);
    assert_eq!(r.offer_epoch(did), 3);
    let receipt = r
        .send(new_owner, AssetRegistry::revokeOffersCall { did })
        .unwrap();
    let event = receipt.expect_event::<AssetRegistry::OffersRevoked>();
    assert_eq!((event.epoch, event.by), (4, new_owner));
}

// ---- offerContext ----

#[test]
fn offer_context_reports_registration_epoch_and_serving_right() {
    let mut r = Registry::with_delegate();
    let (owner, keeper, delegate, outsider, did) =
        (r.owner, r.keeper, r.delegate, r.outsider, r.did);
    for (account, serves) in [
        (owner, true),
        (keeper, true),
        (delegate, true),
        (outsider, false),
        (Address::ZERO, false),
    ] {
        assert_eq!(r.offer_context(did, account), (true, 0, serves));
    }
    let unknown = keccak256(b"unknown");
    assert_eq!(r.offer_context(unknown, owner), (false, 0, false));
    r.send(owner, AssetRegistry::revokeOffersCall { did })
        .unwrap();
    r.send(
        owner,
        AssetRegistry::removeProviderCall {
            did,
            provider: keeper,
        },
    )
    .unwrap();
    // Revoked once explicitly, once by the removal.
    assert_eq!(r.offer_context(did, keeper), (true, 2, false));
    assert_eq!(r.offer_context(did, owner), (true, 2, true));
}

// ---- registerResult ----

/// `keeper` (a provider of the world's asset) registers the result of compute job `job` for
/// `owner`, derived from `sources`, served by `providers`.
fn result_call(owner: Address, job: B256, sources: Vec<B256>) -> AssetRegistry::registerResultCall {
    AssetRegistry::registerResultCall {
        owner,
        activityId: job,
        checksum: checksum(),
        url: URL.into(),
        sources,
    }
}

#[test]
fn the_keeper_registers_a_result_owned_by_the_consumer() {
    let mut r = Registry::new();
    let (owner, keeper, consumer) = (r.owner, r.keeper, r.new_owner);
    let first = r.did;
    // A second input the keeper serves too.
    let seed = r.w.seed();
    let second = r.register(owner, seed, &[keeper]).unwrap().output;
    let job = activity(42);
    r.w.chain.warp(500);

    let receipt = r
        .send(keeper, result_call(consumer, job, vec![first, second]))
        .unwrap();
    let did = receipt.output;
    assert_eq!(
        did,
        result_did_of(job, consumer, keeper),
        "one result per job, owner and agent"
    );
    assert_eq!(
        r.view(AssetRegistry::computeResultDidCall {
            activityId: job,
            owner: consumer,
            agent: keeper,
        }),
        did
    );
    assert_ne!(
        did,
        did_of(job, consumer),
        "never an id its owner registers"
    );
    assert_eq!(
        r.asset(did),
        AssetRegistry::Asset {
            owner: consumer,
            registeredAt: U40::from(r.w.chain.timestamp()),
            ownerEpoch: U24::ZERO,
            offerEpoch: 0,
            checksum: checksum(),
            url: URL.into(),
        }
    );
    assert_eq!(r.providers(did), vec![keeper]);
    assert_eq!(
        r.events(&receipt),
        vec![
            AssetRegistryEvents::AssetRegistered(AssetRegistry::AssetRegistered {
                did,
                owner: consumer,
                checksum: checksum(),
                url: URL.into(),
            }),
            AssetRegistryEvents::ProviderAdded(AssetRegistry::ProviderAdded {
                did,
                provider: keeper,
            }),
            AssetRegistryEvents::WasGeneratedBy(AssetRegistry::WasGeneratedBy {
                did,
                activityId: job,
                agent: keeper,
            }),
            AssetRegistryEvents::WasDerivedFrom(AssetRegistry::WasDerivedFrom {
                did,
                sourceDid: first,
                activityId: job,
                agent: keeper,
            }),
            AssetRegistryEvents::WasDerivedFrom(AssetRegistry::WasDerivedFrom {
                did,
                sourceDid: second,
                activityId: job,
                agent: keeper,
            }),
        ]
    );
    // The consumer owns it; the keeper only serves it.
    assert!(r.can_serve(did, keeper));
    let err: AssetRegistry::NotAssetManager = r.reverts(
        keeper,
        AssetRegistry::updateMetadataCall {
            did,
            checksum: keccak256(b"keeper's"),
            url: OTHER_URL.into(),
        },
        &[did],
    );
    assert_eq!(err.caller, keeper);
    r.send(
        consumer,
        AssetRegistry::removeProviderCall {
            did,
            provider: keeper,
        },
    )
    .expect("the owner manages its result");
    // The same agent cannot register a second result of the same job for the same owner.
    let err: AssetRegistry::AssetAlreadyRegistered =
        r.reverts(keeper, result_call(consumer, job, vec![first]), &[did]);
    assert_eq!(err.did, did);
    // Another server of the inputs registers its own, distinct result: it never takes this one.
    let other = r
        .send(owner, result_call(consumer, job, vec![first]))
        .unwrap()
        .output;
    assert_eq!(other, result_did_of(job, consumer, owner));
    assert_ne!(other, did);
}

#[test]
fn a_result_is_served_by_its_agent_only() {
    // The caller cannot name other providers: it serves the result itself, and nobody else until
    // the owner adds them.
    let mut r = Registry::new();
    let (owner, consumer, source) = (r.owner, r.new_owner, r.did);
    let receipt = r
        .send(owner, result_call(consumer, activity(3), vec![source]))
        .unwrap();
    let did = receipt.output;
    let events = r.events(&receipt);
    assert_eq!(events.len(), 4);
    assert!(matches!(events[0], AssetRegistryEvents::AssetRegistered(_)));
    assert_eq!(
        events[1],
        AssetRegistryEvents::ProviderAdded(AssetRegistry::ProviderAdded {
            did,
            provider: owner
        })
    );
    assert!(matches!(events[2], AssetRegistryEvents::WasGeneratedBy(_)));
    assert!(matches!(events[3], AssetRegistryEvents::WasDerivedFrom(_)));
    assert_eq!(r.providers(did), vec![owner]);
    assert_eq!(r.owner_of(did), consumer);
}

#[test]
fn register_result_refuses_a_zero_owner_and_no_sources() {
    let mut r = Registry::new();
    let (keeper, consumer, source) = (r.keeper, r.new_owner, r.did);
    let job = activity(5);
    let did = result_did_of(job, consumer, keeper);
    let _: AssetRegistry::InvalidAddress = r.reverts(
        keeper,
        result_call(Address::ZERO, job, vec![source]),
        &[did, result_did_of(job, Address::ZERO, keeper)],
    );
    let _: AssetRegistry::NoSources = r.reverts(keeper, result_call(consumer, job, vec![]), &[did]);
    // The owner is checked before the sources, and the sources before the metadata.
    let _: AssetRegistry::InvalidAddress =
        r.reverts(keeper, result_call(Address::ZERO, job, vec![]), &[did]);
    let mut bad_metadata = result_call(consumer, job, vec![]);
    bad_metadata.checksum = B256::ZERO;
    let _: AssetRegistry::NoSources = r.reverts(keeper, bad_metadata.clone(), &[did]);
    bad_metadata.sources = vec![source];
    let _: AssetRegistry::InvalidChecksum = r.reverts(keeper, bad_metadata.clone(), &[did]);
    bad_metadata.checksum = checksum();
    bad_metadata.url = String::new();
    let _: AssetRegistry::InvalidUrl = r.reverts(keeper, bad_metadata, &[did]);
    assert_eq!(r.owner_of(did), Address::ZERO, "nothing was registered");
}

#[test]
fn register_result_needs_a_server_of_every_source() {
    // Forged provenance (test gap 16): a result "derived from" an asset the caller cannot serve is
    // refused, even when the caller serves the other sources; nothing is registered.
    let mut r = Registry::new();
    let (keeper, outsider, consumer, served) = (r.keeper, r.outsider, r.new_owner, r.did);
    let foreign = r.fresh(outsider);
    let job = activity(6);
    let did = result_did_of(job, consumer, keeper);
    let err: AssetRegistry::NotAssetServer = r.reverts(
        keeper,
        result_call(consumer, job, vec![served, foreign]),
        &[did, foreign],
    );
    assert_eq!((err.did, err.caller), (foreign, keeper));
    // The consumer itself cannot register a result of the keeper's asset either.
    let err: AssetRegistry::NotAssetServer =
        r.reverts(consumer, result_call(consumer, job, vec![served]), &[did]);
    assert_eq!((err.did, err.caller), (served, consumer));
    let unknown = keccak256(b"unknown");
    let err: AssetRegistry::AssetNotFound = r.reverts(
        keeper,
        result_call(consumer, job, vec![served, unknown]),
        &[did, unknown],
    );
    assert_eq!(err.did, unknown);
    // Its own precomputed did as a source.
    let err: AssetRegistry::SelfDerivation =
        r.reverts(keeper, result_call(consumer, job, vec![did]), &[did]);
    assert_eq!(err.did, did);
    assert_eq!(r.owner_of(did), Address::ZERO);
}

#[test]
fn a_result_cannot_squat_a_did_its_owner_would_register() {
    // When registerResult derived its did like register (computeDid(activityId, owner)), anyone
    // serving some asset of its own could register, at the did an owner was about to register (its
    // seed seen in the mempool, or guessed), an asset owned by that owner with the caller's
    // metadata, the caller as provider and a fake provenance; the owner's own registration then
    // reverted with AssetAlreadyRegistered. Results now live in their own, tagged id space.
    let mut r = Registry::new();
    let (owner, outsider) = (r.owner, r.outsider);
    let own_source = r.fresh(outsider);
    let seed = r.w.seed();
    let squatted = r
        .send(
            outsider,
            AssetRegistry::registerResultCall {
                owner,
                activityId: seed,
                checksum: keccak256(b"attacker's metadata"),
                url: OTHER_URL.into(),
                sources: vec![own_source],
            },
        )
        .map(|receipt| receipt.output);
    let registered = r.register(owner, seed, &[]);
    let squatted_by = registered
        .as_ref()
        .err()
        .and_then(|err| err.decode_error::<AssetRegistry::AssetAlreadyRegistered>());
    assert!(
        registered.is_ok(),
        "the owner's registration was squatted (registerResult gave {squatted:?}; register reverted with {squatted_by:?})"
    );
    assert!(!r.can_serve(did_of(seed, owner), outsider));
}

#[test]
fn nobody_can_take_the_result_did_of_a_keepers_job() {
    // Review of v2 (N-1): with the result did bound to (job, owner) only, anyone serving an asset
    // of its own could register the result of a live compute job first (its agreement id and
    // consumer are public), block the keeper's registration and sit as a provider of an asset the
    // consumer owns. Bound to the agent too, the outsider's "result" is a different asset, which
    // only it serves, and the keeper's registration goes through.
    let mut r = Registry::new();
    let (keeper, outsider, consumer, input) = (r.keeper, r.outsider, r.new_owner, r.did);
    let own_source = r.fresh(outsider);
    let job = activity(9);
    let planted = r
        .send(outsider, result_call(consumer, job, vec![own_source]))
        .unwrap()
        .output;
    assert_eq!(planted, result_did_of(job, consumer, outsider));
    let result = r
        .send(keeper, result_call(consumer, job, vec![input]))
        .expect("the keeper's registration is not blocked")
        .output;
    assert_eq!(result, result_did_of(job, consumer, keeper));
    assert_ne!(result, planted);
    assert_eq!(r.providers(result), vec![keeper]);
    assert!(!r.can_serve(result, outsider));
    assert_eq!(r.providers(planted), vec![outsider], "only itself");
}
