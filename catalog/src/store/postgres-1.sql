-- The catalog's schema on PostgreSQL: the tables of sqlite-1.sql, with BYTEA for bytes and a
-- weighted tsvector on the search table instead of an FTS5 table. Text that is sorted or grouped
-- compares byte by byte (COLLATE "C"), as SQLite does: fixed-width prices sort numerically.
CREATE TABLE checkpoints (
    chain_id BIGINT NOT NULL,
    number BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (chain_id, number)
);

CREATE TABLE events (
    chain_id BIGINT NOT NULL,
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    block_hash BYTEA NOT NULL,
    tx_hash BYTEA NOT NULL,
    block_time BIGINT NOT NULL,
    kind TEXT NOT NULL,
    did BYTEA NOT NULL,
    a BYTEA,
    b BYTEA,
    text TEXT,
    PRIMARY KEY (chain_id, block_number, log_index)
);
CREATE INDEX events_by_did ON events (chain_id, did, block_number, log_index);
CREATE INDEX events_by_source ON events (chain_id, kind, a);

CREATE TABLE agreements (
    chain_id BIGINT NOT NULL,
    id BYTEA NOT NULL,
    did BYTEA NOT NULL,
    service TEXT NOT NULL,
    service_condition BYTEA NOT NULL,
    block_number BIGINT NOT NULL,
    PRIMARY KEY (chain_id, id)
);
CREATE INDEX agreements_by_condition ON agreements (chain_id, service_condition);

CREATE TABLE assets (
    chain_id BIGINT NOT NULL,
    did BYTEA NOT NULL,
    owner BYTEA NOT NULL,
    checksum BYTEA NOT NULL,
    url TEXT NOT NULL,
    registered_block BIGINT NOT NULL,
    registered_at BIGINT NOT NULL,
    updated_block BIGINT NOT NULL,
    PRIMARY KEY (chain_id, did)
);
CREATE INDEX assets_by_checksum ON assets (checksum);

CREATE TABLE documents (
    checksum BYTEA PRIMARY KEY,
    valid BIGINT NOT NULL,
    body BYTEA NOT NULL,
    problems TEXT,
    fetched_at BIGINT NOT NULL
);

CREATE TABLE fetches (
    checksum BYTEA NOT NULL,
    url TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'mismatch', 'unreachable')),
    attempts BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    problem TEXT,
    PRIMARY KEY (checksum, url)
);
CREATE INDEX fetches_due ON fetches (state, next_at);

CREATE TABLE search (
    id BIGSERIAL PRIMARY KEY,
    chain_id BIGINT NOT NULL,
    did BYTEA NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    license TEXT COLLATE "C" NOT NULL,
    registered_at BIGINT NOT NULL,
    registered_block BIGINT NOT NULL,
    popularity BIGINT NOT NULL,
    summary TEXT NOT NULL,
    words TSVECTOR NOT NULL,
    UNIQUE (chain_id, did)
);
CREATE INDEX search_by_time ON search (registered_at, chain_id, did);
CREATE INDEX search_by_popularity ON search (popularity, chain_id, did);
CREATE INDEX search_words ON search USING GIN (words);
CREATE TABLE search_services (
    id BIGINT NOT NULL REFERENCES search (id) ON DELETE CASCADE,
    service TEXT COLLATE "C" NOT NULL,
    token TEXT COLLATE "C" NOT NULL,
    price TEXT COLLATE "C" NOT NULL
);
CREATE INDEX search_services_by_id ON search_services (id);
CREATE TABLE search_tags (
    id BIGINT NOT NULL REFERENCES search (id) ON DELETE CASCADE,
    tag TEXT COLLATE "C" NOT NULL
);
CREATE INDEX search_tags_by_id ON search_tags (id);
CREATE INDEX search_tags_by_tag ON search_tags (tag, id);
CREATE TABLE search_providers (
    id BIGINT NOT NULL REFERENCES search (id) ON DELETE CASCADE,
    provider TEXT COLLATE "C" NOT NULL
);
CREATE INDEX search_providers_by_id ON search_providers (id);
CREATE INDEX search_providers_by_provider ON search_providers (provider, id);
