-- Per chain: the blocks the indexer has scanned up to (the newest is the cursor).
CREATE TABLE checkpoints (
    chain_id INTEGER NOT NULL,
    number INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (chain_id, number)
) WITHOUT ROWID;

-- Every registry and template event of an indexed asset, as recorded; the assets' state is
-- derived from them, so a reorg deletes events and derives again.
CREATE TABLE events (
    chain_id INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    block_hash BLOB NOT NULL,
    tx_hash BLOB NOT NULL,
    block_time INTEGER NOT NULL,
    kind TEXT NOT NULL,
    did BLOB NOT NULL,
    a BLOB,
    b BLOB,
    text TEXT,
    PRIMARY KEY (chain_id, block_number, log_index)
);
CREATE INDEX events_by_did ON events (chain_id, did, block_number, log_index);
CREATE INDEX events_by_source ON events (chain_id, kind, a);

-- Agreements made with the access and compute templates, to attribute their later events.
CREATE TABLE agreements (
    chain_id INTEGER NOT NULL,
    id BLOB NOT NULL,
    did BLOB NOT NULL,
    service TEXT NOT NULL,
    service_condition BLOB NOT NULL,
    block_number INTEGER NOT NULL,
    PRIMARY KEY (chain_id, id)
);
CREATE INDEX agreements_by_condition ON agreements (chain_id, service_condition);

-- Each asset's current on-chain metadata pointer (derived).
CREATE TABLE assets (
    chain_id INTEGER NOT NULL,
    did BLOB NOT NULL,
    owner BLOB NOT NULL,
    checksum BLOB NOT NULL,
    url TEXT NOT NULL,
    registered_block INTEGER NOT NULL,
    registered_at INTEGER NOT NULL,
    updated_block INTEGER NOT NULL,
    PRIMARY KEY (chain_id, did)
);
CREATE INDEX assets_by_checksum ON assets (checksum);

-- Documents fetched, by checksum: the bytes that hash to it, valid or not.
CREATE TABLE documents (
    checksum BLOB PRIMARY KEY,
    valid INTEGER NOT NULL,
    body BLOB NOT NULL,
    problems TEXT,
    fetched_at INTEGER NOT NULL
);

-- The fetch queue: one row per checksum and URL registered.
CREATE TABLE fetches (
    checksum BLOB NOT NULL,
    url TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'mismatch', 'unreachable')),
    attempts INTEGER NOT NULL,
    next_at INTEGER NOT NULL,
    problem TEXT,
    PRIMARY KEY (checksum, url)
);
CREATE INDEX fetches_due ON fetches (state, next_at);

-- The search index: one row per asset whose document is valid.
CREATE TABLE search (
    id INTEGER PRIMARY KEY,
    chain_id INTEGER NOT NULL,
    did BLOB NOT NULL,
    kind TEXT NOT NULL,
    license TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    registered_block INTEGER NOT NULL,
    popularity INTEGER NOT NULL,
    summary TEXT NOT NULL,
    UNIQUE (chain_id, did)
);
CREATE INDEX search_by_time ON search (registered_at, chain_id, did);
CREATE INDEX search_by_popularity ON search (popularity, chain_id, did);
CREATE TABLE search_services (
    id INTEGER NOT NULL REFERENCES search (id) ON DELETE CASCADE,
    service TEXT NOT NULL,
    token TEXT NOT NULL,
    price TEXT NOT NULL
);
CREATE INDEX search_services_by_id ON search_services (id);
CREATE TABLE search_tags (
    id INTEGER NOT NULL REFERENCES search (id) ON DELETE CASCADE,
    tag TEXT NOT NULL
);
CREATE INDEX search_tags_by_id ON search_tags (id);
CREATE INDEX search_tags_by_tag ON search_tags (tag, id);
CREATE TABLE search_providers (
    id INTEGER NOT NULL REFERENCES search (id) ON DELETE CASCADE,
    provider TEXT NOT NULL
);
CREATE INDEX search_providers_by_id ON search_providers (id);
CREATE INDEX search_providers_by_provider ON search_providers (provider, id);
CREATE VIRTUAL TABLE search_text USING fts5 (
    name, description, tags, author,
    tokenize = 'unicode61 remove_diacritics 2'
);
