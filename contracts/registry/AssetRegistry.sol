// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAssetRegistry} from "../interfaces/IAssetRegistry.sol";

/// @title AssetRegistry
/// @notice Registers assets (data sets, algorithms, compute results) under a decentralised id
///         `did = keccak256(abi.encode(seed, owner))`, with a metadata checksum and url, the set of
///         providers that may serve it, delegated permissions, and W3C PROV provenance events.
/// @dev The asset's content never touches the chain: only the checksum of its metadata document and
///      where to fetch that document.
contract AssetRegistry is IAssetRegistry {
    /// @notice What the registry keeps of an asset.
    /// @param owner Current owner; also the account that receives control on transfer.
    /// @param registeredAt Block timestamp of registration.
    /// @param ownerEpoch Number of ownership transfers so far; delegations are kept per epoch, so a
    ///        transfer ends every delegation the previous owner made.
    /// @param checksum Checksum of the metadata document (e.g. its keccak256 or sha256).
    /// @param url Where the metadata document lives (https, ipfs, ...).
    struct Asset {
        address owner;
        uint40 registeredAt;
        uint56 ownerEpoch;
        bytes32 checksum;
        string url;
    }

    mapping(bytes32 did => Asset) private _assets;
    mapping(bytes32 did => mapping(address account => bool)) private _providers;
    mapping(bytes32 did => mapping(uint256 ownerEpoch => mapping(address account => bool))) private _delegates;

    /// @notice Derives the id of the asset that `owner` registers with `seed`.
    function computeDid(bytes32 seed, address owner) public pure returns (bytes32) {
        return keccak256(abi.encode(seed, owner));
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
        did = _register(seed, checksum, url, providers);
    }

    /// @notice Registers an asset produced from other assets (e.g. a compute result) and records its
    ///         provenance: `wasGeneratedBy(activityId)` and `wasDerivedFrom` each source.
    /// @param seed Caller-chosen seed.
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
        did = _register(seed, checksum, url, providers);
        emit WasGeneratedBy(did, activityId, msg.sender);
        for (uint256 i; i < sources.length; ++i) {
            _recordDerivation(did, sources[i], activityId);
        }
    }

    /// @notice Updates the metadata checksum and url. Owner or delegate only.
    function updateMetadata(bytes32 did, bytes32 checksum, string calldata url) external {
        _requireManager(did);
        _requireMetadata(checksum, url);
        Asset storage asset = _assets[did];
        asset.checksum = checksum;
        asset.url = url;
        emit MetadataUpdated(did, checksum, url, msg.sender);
    }

    /// @notice Transfers the asset to `newOwner`. Owner only. Every delegation the previous owner
    ///         made ends with the transfer; providers stay (the new owner manages them).
    function transferOwnership(bytes32 did, address newOwner) external {
        address owner = _requireOwner(did);
        if (newOwner == address(0)) revert InvalidAddress();
        Asset storage asset = _assets[did];
        asset.owner = newOwner;
        ++asset.ownerEpoch;
        emit AssetOwnershipTransferred(did, owner, newOwner);
    }

    /// @notice Adds a provider that may serve the asset. Owner or delegate only.
    function addProvider(bytes32 did, address provider) external {
        _requireManager(did);
        _addProvider(did, provider);
    }

    /// @notice Removes a provider. Owner or delegate only.
    function removeProvider(bytes32 did, address provider) external {
        _requireManager(did);
        if (!_providers[did][provider]) revert ProviderNotFound(did, provider);
        _providers[did][provider] = false;
        emit ProviderRemoved(did, provider);
    }

    /// @notice Grants `delegate` the right to manage (metadata, providers, provenance) and serve the
    ///         asset, until revoked or until the asset changes owner. Owner only.
    function grantPermission(bytes32 did, address delegate) external {
        _requireOwner(did);
        if (delegate == address(0)) revert InvalidAddress();
        mapping(address => bool) storage delegates = _currentDelegates(did);
        if (delegates[delegate]) revert PermissionUnchanged(did, delegate);
        delegates[delegate] = true;
        emit PermissionGranted(did, delegate);
    }

    /// @notice Revokes a delegate's permission. Owner only.
    function revokePermission(bytes32 did, address delegate) external {
        _requireOwner(did);
        mapping(address => bool) storage delegates = _currentDelegates(did);
        if (!delegates[delegate]) revert PermissionUnchanged(did, delegate);
        delegates[delegate] = false;
        emit PermissionRevoked(did, delegate);
    }

    /// @notice Removes the caller from the asset's provider set: a provider may stop serving.
    function resignProvider(bytes32 did) external {
        _requireExists(did);
        if (!_providers[did][msg.sender]) revert ProviderNotFound(did, msg.sender);
        _providers[did][msg.sender] = false;
        emit ProviderRemoved(did, msg.sender);
    }

    /// @notice Records W3C PROV `used`: `activityId` (e.g. a compute job) used the asset. Only an account
    ///         that may serve the asset records its use.
    function recordUse(bytes32 did, bytes32 activityId) external {
        _requireExists(did);
        if (!_canServe(did, msg.sender)) revert NotAssetServer(did, msg.sender);
        emit Used(did, activityId, msg.sender);
    }

    /// @notice Records W3C PROV `wasDerivedFrom` for an existing asset. Owner or delegate of `did` only.
    function recordDerivation(bytes32 did, bytes32 sourceDid, bytes32 activityId) external {
        _requireManager(did);
        _recordDerivation(did, sourceDid, activityId);
    }

    /// @inheritdoc IAssetRegistry
    function canServe(bytes32 did, address account) external view returns (bool) {
        return _canServe(did, account);
    }

    /// @inheritdoc IAssetRegistry
    function ownerOf(bytes32 did) external view returns (address) {
        return _assets[did].owner;
    }

    /// @notice The registry's record of the asset (all zero when not registered).
    function getAsset(bytes32 did) external view returns (Asset memory) {
        return _assets[did];
    }

    /// @notice Whether `account` is in the asset's provider set.
    function isProvider(bytes32 did, address account) external view returns (bool) {
        return _providers[did][account];
    }

    /// @notice Whether `account` holds a delegated permission on the asset from its current owner.
    function isDelegate(bytes32 did, address account) external view returns (bool) {
        return _currentDelegates(did)[account];
    }

    function _register(bytes32 seed, bytes32 checksum, string calldata url, address[] calldata providers)
        private
        returns (bytes32 did)
    {
        _requireMetadata(checksum, url);
        did = computeDid(seed, msg.sender);
        Asset storage asset = _assets[did];
        if (asset.owner != address(0)) revert AssetAlreadyRegistered(did);
        asset.owner = msg.sender;
        asset.registeredAt = uint40(block.timestamp);
        asset.checksum = checksum;
        asset.url = url;
        emit AssetRegistered(did, msg.sender, checksum, url);
        for (uint256 i; i < providers.length; ++i) {
            _addProvider(did, providers[i]);
        }
    }

    function _addProvider(bytes32 did, address provider) private {
        if (provider == address(0)) revert InvalidAddress();
        if (_providers[did][provider]) revert ProviderAlreadyAdded(did, provider);
        _providers[did][provider] = true;
        emit ProviderAdded(did, provider);
    }

    function _recordDerivation(bytes32 did, bytes32 sourceDid, bytes32 activityId) private {
        if (sourceDid == did) revert SelfDerivation(did);
        _requireExists(sourceDid);
        emit WasDerivedFrom(did, sourceDid, activityId, msg.sender);
    }

    function _canServe(bytes32 did, address account) private view returns (bool) {
        address owner = _assets[did].owner;
        return owner != address(0)
            && (account == owner || _providers[did][account] || _currentDelegates(did)[account]);
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
