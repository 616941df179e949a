// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {IAssetRegistry} from "../interfaces/IAssetRegistry.sol";

/// @title AssetRegistry
/// @notice Registers assets (data sets, algorithms, compute results) under a decentralised id
///         `did = keccak256(abi.encode(seed, owner))`, with a metadata checksum and url, the providers
///         that may serve it, delegated permissions, the epoch of its providers' offers, and W3C PROV
///         provenance events.
/// @dev The asset's content never touches the chain: only the checksum of its metadata document and
///      where to fetch that document. Serving rights (providers and delegates) belong to an ownership:
///      they are kept per owner epoch, so an ownership transfer ends every right the previous owner
///      granted, and with them every offer signed under them.
contract AssetRegistry is IAssetRegistry {
    using EnumerableSet for EnumerableSet.AddressSet;

    /// @notice What the registry keeps of an asset.
    /// @param owner Current owner.
    /// @param registeredAt Block timestamp of registration.
    /// @param ownerEpoch Number of ownership transfers so far; providers and delegates are kept per
    ///        epoch.
    /// @param offerEpoch Offers must name this epoch; bumped by {revokeOffers}, by every metadata
    ///        update, transfer, provider removal and delegate revocation.
    /// @param checksum Checksum of the metadata document (e.g. its keccak256).
    /// @param url Where the metadata document lives (https, ipfs, ...).
    struct Asset {
        address owner;
        uint40 registeredAt;
        uint24 ownerEpoch;
        uint32 offerEpoch;
        bytes32 checksum;
        string url;
    }

    mapping(bytes32 did => Asset) private _assets;
    mapping(bytes32 did => address) private _pendingOwners;
    mapping(bytes32 did => mapping(uint256 ownerEpoch => EnumerableSet.AddressSet)) private _providers;
    mapping(bytes32 did => mapping(uint256 ownerEpoch => mapping(address account => bool))) private _delegates;

    /// @notice Tag of the ids of compute results, which keeps them apart from every id `register` can
    ///         produce.
    bytes32 public constant RESULT_DID_TAG = keccak256("insitu.result");

    /// @notice Derives the id of the asset that `owner` registers with `seed`.
    function computeDid(bytes32 seed, address owner) public pure returns (bytes32) {
        return keccak256(abi.encode(seed, owner));
    }

    /// @notice Derives the id of the result of compute job `activityId` owned by `owner` and registered
    ///         by `agent` (the keeper that ran the job):
    ///         `keccak256(abi.encode(RESULT_DID_TAG, activityId, owner, agent))`. Results live in their
    ///         own id space, and each agent in its own part of it, so nobody can take the id of a
    ///         result another agent registers, nor an id an owner would register itself.
    function computeResultDid(bytes32 activityId, address owner, address agent) public pure returns (bytes32) {
        return keccak256(abi.encode(RESULT_DID_TAG, activityId, owner, agent));
    }

    /// @notice Registers an asset owned by the caller.
    /// @param seed Caller-chosen seed; the did is `computeDid(seed, msg.sender)`.
    /// @param checksum Checksum of the metadata document; must not be zero.
    /// @param url Location of the metadata document; must not be empty.
    /// @param providers Accounts (keepers) allowed to serve the asset.
    /// @return did The new asset's id.
    function register(bytes32 seed, bytes32 checksum, string calldata url, address[] calldata providers)
        external
        returns (bytes32 did)
    {
        did = _register(computeDid(seed, msg.sender), msg.sender, checksum, url, providers);
    }

    /// @notice Registers an asset produced from other assets and records its provenance:
    ///         `wasGeneratedBy(activityId)` and `wasDerivedFrom` each source. The caller must be able
    ///         to serve every source: the source's side attests the derivation.
    /// @param seed Caller-chosen seed; the new asset is owned by the caller.
    /// @param checksum Checksum of the metadata document; must not be zero.
    /// @param url Location of the metadata document; must not be empty.
    /// @param providers Accounts allowed to serve the new asset.
    /// @param sources The registered assets it was derived from.
    /// @param activityId The activity (e.g. the compute agreement id) that produced it.
    /// @return did The new asset's id.
    function registerDerived(
        bytes32 seed,
        bytes32 checksum,
        string calldata url,
        address[] calldata providers,
        bytes32[] calldata sources,
        bytes32 activityId
    ) external returns (bytes32 did) {
        did = _register(computeDid(seed, msg.sender), msg.sender, checksum, url, providers);
        _recordGeneration(did, sources, activityId);
    }

    /// @notice Registers the result of a compute job for the consumer who paid for it, in one
    ///         transaction: the result is owned by `owner`, served by the caller (the keeper that ran
    ///         the job, which must be able to serve every input), `wasGeneratedBy` the compute
    ///         agreement and `wasDerivedFrom` each input. The did is
    ///         `computeResultDid(activityId, owner, msg.sender)`: one result per job and agent. A
    ///         result is attested by its agent, named in `WasGeneratedBy`; a verifier checks that the
    ///         agent is the provider that fulfilled the compute agreement (`ComputeExecuted`).
    /// @param owner The consumer who owns the result.
    /// @param activityId The compute agreement that produced it.
    /// @param checksum Checksum of the result's metadata document; must not be zero.
    /// @param url Location of the metadata document; must not be empty.
    /// @param sources The inputs of the job (at least one).
    /// @return did The result's id.
    function registerResult(
        address owner,
        bytes32 activityId,
        bytes32 checksum,
        string calldata url,
        bytes32[] calldata sources
    ) external returns (bytes32 did) {
        if (owner == address(0)) revert InvalidAddress();
        if (sources.length == 0) revert NoSources();
        did = computeResultDid(activityId, owner, msg.sender);
        _register(did, owner, checksum, url, new address[](0));
        _addProvider(did, msg.sender);
        _recordGeneration(did, sources, activityId);
    }

    /// @notice Updates the metadata checksum and url. Owner or delegate only. Every outstanding offer
    ///         on the asset, made for the old metadata, is revoked.
    function updateMetadata(bytes32 did, bytes32 checksum, string calldata url) external {
        _requireManager(did);
        _requireMetadata(checksum, url);
        Asset storage asset = _assets[did];
        asset.checksum = checksum;
        asset.url = url;
        emit MetadataUpdated(did, checksum, url, msg.sender);
        _revokeOffers(did);
    }

    /// @notice Starts the transfer of the asset to `newOwner`, who must accept it with
    ///         {acceptOwnership}. Owner only. Starting again replaces the pending owner.
    function transferOwnership(bytes32 did, address newOwner) external {
        address owner = _requireOwner(did);
        if (newOwner == address(0) || newOwner == owner) revert InvalidAddress();
        _pendingOwners[did] = newOwner;
        emit OwnershipTransferStarted(did, owner, newOwner);
    }

    /// @notice Cancels a pending transfer. Owner only.
    function cancelOwnershipTransfer(bytes32 did) external {
        address owner = _requireOwner(did);
        address pending = _pendingOwners[did];
        if (pending == address(0)) revert NoPendingOwner(did);
        delete _pendingOwners[did];
        emit OwnershipTransferCancelled(did, owner, pending);
    }

    /// @notice Completes a transfer started by the owner; only the pending owner may call. Every
    ///         provider and delegate of the previous owner, and every offer made under them, ends here.
    function acceptOwnership(bytes32 did) external {
        address previous = _requireExists(did);
        if (_pendingOwners[did] != msg.sender) revert NotPendingOwner(did, msg.sender);
        delete _pendingOwners[did];
        Asset storage asset = _assets[did];
        asset.owner = msg.sender;
        ++asset.ownerEpoch;
        emit AssetOwnershipTransferred(did, previous, msg.sender);
        _revokeOffers(did);
    }

    /// @notice Adds a provider that may serve the asset. Owner or delegate only.
    function addProvider(bytes32 did, address provider) external {
        _requireManager(did);
        _addProvider(did, provider);
    }

    /// @notice Removes a provider, and revokes every outstanding offer on the asset (so none signed by
    ///         the removed provider survives its return). Owner or delegate only.
    function removeProvider(bytes32 did, address provider) external {
        _requireManager(did);
        _removeProvider(did, provider);
    }

    /// @notice Removes the caller from the asset's provider set: a provider may stop serving. Every
    ///         outstanding offer on the asset is revoked, as for {removeProvider}.
    function resignProvider(bytes32 did) external {
        _requireExists(did);
        _removeProvider(did, msg.sender);
    }

    /// @notice Grants `delegate` the right to manage (metadata, providers) and serve the asset, until
    ///         revoked or until the asset changes owner. Owner only.
    function grantPermission(bytes32 did, address delegate) external {
        _requireOwner(did);
        if (delegate == address(0)) revert InvalidAddress();
        uint256 epoch = _assets[did].ownerEpoch;
        if (_delegates[did][epoch][delegate]) revert PermissionUnchanged(did, delegate);
        _delegates[did][epoch][delegate] = true;
        emit PermissionGranted(did, delegate);
    }

    /// @notice Revokes a delegate's permission, and every outstanding offer on the asset. Owner only.
    ///         Providers the delegate added stay until removed: list them with {providersOf}.
    function revokePermission(bytes32 did, address delegate) external {
        _requireOwner(did);
        uint256 epoch = _assets[did].ownerEpoch;
        if (!_delegates[did][epoch][delegate]) revert PermissionUnchanged(did, delegate);
        _delegates[did][epoch][delegate] = false;
        emit PermissionRevoked(did, delegate);
        _revokeOffers(did);
    }

    /// @notice Revokes every outstanding offer on the asset, by anyone who may serve it: offers must
    ///         name the asset's current offer epoch, which this bumps.
    function revokeOffers(bytes32 did) external {
        _requireExists(did);
        if (!_canServe(did, msg.sender)) revert NotAssetServer(did, msg.sender);
        _revokeOffers(did);
    }

    /// @notice Records W3C PROV `used`: `activityId` (e.g. a compute job) used the asset. Only an account
    ///         that may serve the asset records its use.
    function recordUse(bytes32 did, bytes32 activityId) external {
        _requireExists(did);
        if (!_canServe(did, msg.sender)) revert NotAssetServer(did, msg.sender);
        emit Used(did, activityId, msg.sender);
    }

    /// @notice Records W3C PROV `wasDerivedFrom` between two registered assets. Only an account that may
    ///         serve the source attests that `did` was derived from it.
    function recordDerivation(bytes32 did, bytes32 sourceDid, bytes32 activityId) external {
        _requireExists(did);
        _recordDerivation(did, sourceDid, activityId);
    }

    /// @inheritdoc IAssetRegistry
    function canServe(bytes32 did, address account) external view returns (bool) {
        return _canServe(did, account);
    }

    /// @inheritdoc IAssetRegistry
    function offerContext(bytes32 did, address account)
        external
        view
        returns (bool registered, uint32 offerEpoch, bool accountCanServe)
    {
        Asset storage asset = _assets[did];
        return (asset.owner != address(0), asset.offerEpoch, _canServe(did, account));
    }

    /// @inheritdoc IAssetRegistry
    function ownerOf(bytes32 did) external view returns (address) {
        return _assets[did].owner;
    }

    /// @notice The account that may accept the asset's pending transfer (zero: none).
    function pendingOwnerOf(bytes32 did) external view returns (address) {
        return _pendingOwners[did];
    }

    /// @notice The registry's record of the asset (all zero when not registered).
    function getAsset(bytes32 did) external view returns (Asset memory) {
        return _assets[did];
    }

    /// @notice Whether `account` is in the asset's provider set (of its current owner).
    function isProvider(bytes32 did, address account) external view returns (bool) {
        return _currentProviders(did).contains(account);
    }

    /// @notice The asset's providers (of its current owner), in no particular order.
    function providersOf(bytes32 did) external view returns (address[] memory) {
        return _currentProviders(did).values();
    }

    /// @notice Whether `account` holds a delegated permission on the asset from its current owner.
    function isDelegate(bytes32 did, address account) external view returns (bool) {
        return _currentDelegates(did)[account];
    }

    function _register(
        bytes32 did,
        address owner,
        bytes32 checksum,
        string calldata url,
        address[] memory providers
    ) private returns (bytes32) {
        _requireMetadata(checksum, url);
        Asset storage asset = _assets[did];
        if (asset.owner != address(0)) revert AssetAlreadyRegistered(did);
        asset.owner = owner;
        asset.registeredAt = uint40(block.timestamp);
        asset.checksum = checksum;
        asset.url = url;
        emit AssetRegistered(did, owner, checksum, url);
        for (uint256 i; i < providers.length; ++i) {
            _addProvider(did, providers[i]);
        }
        return did;
    }

    function _recordGeneration(bytes32 did, bytes32[] calldata sources, bytes32 activityId) private {
        emit WasGeneratedBy(did, activityId, msg.sender);
        for (uint256 i; i < sources.length; ++i) {
            _recordDerivation(did, sources[i], activityId);
        }
    }

    function _addProvider(bytes32 did, address provider) private {
        if (provider == address(0)) revert InvalidAddress();
        if (!_currentProviders(did).add(provider)) revert ProviderAlreadyAdded(did, provider);
        emit ProviderAdded(did, provider);
    }

    function _removeProvider(bytes32 did, address provider) private {
        if (!_currentProviders(did).remove(provider)) revert ProviderNotFound(did, provider);
        emit ProviderRemoved(did, provider);
        _revokeOffers(did);
    }

    /// @dev Bumps the asset's offer epoch: every offer signed before is void.
    function _revokeOffers(bytes32 did) private {
        uint32 epoch = ++_assets[did].offerEpoch;
        emit OffersRevoked(did, epoch, msg.sender);
    }

    function _recordDerivation(bytes32 did, bytes32 sourceDid, bytes32 activityId) private {
        if (sourceDid == did) revert SelfDerivation(did);
        _requireExists(sourceDid);
        if (!_canServe(sourceDid, msg.sender)) revert NotAssetServer(sourceDid, msg.sender);
        emit WasDerivedFrom(did, sourceDid, activityId, msg.sender);
    }

    function _canServe(bytes32 did, address account) private view returns (bool) {
        Asset storage asset = _assets[did];
        address owner = asset.owner;
        if (owner == address(0)) return false;
        if (account == owner) return true;
        uint256 epoch = asset.ownerEpoch;
        return _providers[did][epoch].contains(account) || _delegates[did][epoch][account];
    }

    function _currentProviders(bytes32 did) private view returns (EnumerableSet.AddressSet storage) {
        return _providers[did][_assets[did].ownerEpoch];
    }

    function _currentDelegates(bytes32 did) private view returns (mapping(address => bool) storage) {
        return _delegates[did][_assets[did].ownerEpoch];
    }

    function _requireMetadata(bytes32 checksum, string calldata url) private pure {
        if (checksum == bytes32(0)) revert InvalidChecksum();
        if (bytes(url).length == 0) revert InvalidUrl();
    }

    function _requireExists(bytes32 did) private view returns (address owner) {
        owner = _assets[did].owner;
        if (owner == address(0)) revert AssetNotFound(did);
    }

    function _requireOwner(bytes32 did) private view returns (address owner) {
        owner = _requireExists(did);
        if (msg.sender != owner) revert NotAssetOwner(did, msg.sender);
    }

    function _requireManager(bytes32 did) private view {
        address owner = _requireExists(did);
        if (msg.sender != owner && !_currentDelegates(did)[msg.sender]) revert NotAssetManager(did, msg.sender);
    }
}
