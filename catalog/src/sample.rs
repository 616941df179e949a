//! A generated catalog: varied, valid metadata documents registered through the store's own
//! recording path, for the benchmark and the tests.

use alloy::primitives::{Address, B256, U256, keccak256};
use insitu_chainwatch::{Checkpoint, LogPosition};

use crate::store::{Event, Fetch, Fetched, Located, Store, StoreError};

const SUBJECTS: &[&str] = &[
    "air quality",
    "river levels",
    "traffic counts",
    "energy use",
    "hospital admissions",
    "crop yields",
    "bird sightings",
    "noise levels",
    "retail sales",
    "bike sharing",
    "soil moisture",
    "wind speed",
];
const PLACES: &[&str] = &[
    "Lyon", "Berlin", "Lagos", "Osaka", "Quito", "Perth", "Oslo", "Nairobi", "Lima", "Porto",
];
const LICENSES: &[&str] = &["CC-BY-4.0", "CC0-1.0", "ODbL-1.0", "proprietary"];
const TAGS: &[&str] = &[
    "time series",
    "geospatial",
    "health",
    "environment",
    "mobility",
    "finance",
    "open data",
    "sensor",
];

/// The token generated documents are priced in.
pub const TOKEN: Address = Address::repeat_byte(0x7a);
/// A second token some are priced in.
pub const OTHER_TOKEN: Address = Address::repeat_byte(0x7b);
/// The provider of even-numbered assets.
pub const PROVIDER_A: Address = Address::repeat_byte(0xa1);
/// The provider of odd-numbered assets.
pub const PROVIDER_B: Address = Address::repeat_byte(0xb2);

/// The `index`-th generated document (deterministic).
pub fn document(index: usize) -> Vec<u8> {
    let subject = SUBJECTS[index % SUBJECTS.len()];
    let place = PLACES[(index / SUBJECTS.len()) % PLACES.len()];
    let algorithm = index % 10 == 9;
    let kind = if algorithm {
        "SoftwareSourceCode"
    } else {
        "Dataset"
    };
    let name = if algorithm {
        format!("{subject} model #{index}")
    } else {
        format!("{subject} of {place} #{index}")
    };
    let tags: Vec<&str> = (0..1 + index % 3)
        .map(|k| TAGS[(index + k * 3) % TAGS.len()])
        .collect();
    let token = if index.is_multiple_of(7) {
        OTHER_TOKEN
    } else {
        TOKEN
    };
    let price = U256::from(1 + (index * 37) % 500) * U256::from(10u64).pow(U256::from(18));
    let mut services = vec![serde_json::json!({
        "type": "access",
        "token": token.to_string(),
        "price": [{"receiver": PROVIDER_A.to_string(), "amount": price.to_string()}],
        "timeout": {"min": 3600, "max": 86400},
        "accessWindow": 3600
    })];
    if index.is_multiple_of(4) {
        services.push(serde_json::json!({
            "type": "compute",
            "token": TOKEN.to_string(),
            "price": [{"receiver": PROVIDER_A.to_string(), "amount": (price / U256::from(4)).to_string()}],
            "timeout": {"min": 600, "max": 86400},
            "compute": {
                "algorithms": {"any": true},
                "runtimes": ["python3"],
                "limits": {"wallSecs": 600, "memoryMb": 512, "cpuPercent": 100, "pids": 64,
                           "outputMb": 64, "tmpMb": 64, "logKb": 256},
                "logs": "consumer",
                "resultRetentionDays": 7
            }
        }));
    }
    serde_json::to_vec(&serde_json::json!({
        "@context": "https://schema.org",
        "@type": kind,
        "schemaVersion": "insitu-metadata/1",
        "name": name,
        "description": format!(
            "Hourly {subject} recorded in {place}, cleaned and documented; one row per station \
             and hour, with the station's coordinates."
        ),
        "author": format!("{place} open data office"),
        "license": LICENSES[index % LICENSES.len()],
        "keywords": tags,
        "files": [{
            "name": "data.csv",
            "contentType": "text/csv",
            "contentSize": 1000 + index,
            "sha256": format!("{:064x}", index),
            "location": "0x04"
        }],
        "services": services
    }))
    .unwrap_or_default()
}

/// The generated asset `index`'s id.
pub fn did(index: usize) -> B256 {
    keccak256(format!("sample asset {index}"))
}

/// Registers `count` generated assets on `chain` (ten per block, a block every 12 seconds from
/// `first_time`) and records their documents as fetched; returns their ids.
///
/// # Errors
///
/// [`StoreError`].
pub fn populate(
    store: &mut Store,
    chain: u64,
    count: usize,
    first_time: u64,
) -> Result<Vec<B256>, StoreError> {
    let mut dids = Vec::with_capacity(count);
    let mut fetches = Vec::with_capacity(count);
    for batch in 0..count.div_ceil(100) {
        let mut events = Vec::new();
        for index in batch * 100..((batch + 1) * 100).min(count) {
            let body = document(index);
            let checksum = keccak256(&body);
            let url = format!("https://metadata.example/{index}.json");
            let block = 1 + index as u64 / 10;
            let at = LogPosition {
                block_number: block,
                block_hash: keccak256(block.to_be_bytes()),
                log_index: (index % 10) as u64 * 2,
                tx_hash: keccak256(format!("tx {index}")),
            };
            events.push(Located {
                at,
                time: first_time + block * 12,
                event: Event::Registered {
                    did: did(index),
                    owner: Address::repeat_byte(0x11),
                    checksum,
                    url: url.clone(),
                },
            });
            events.push(Located {
                at: LogPosition {
                    log_index: at.log_index + 1,
                    ..at
                },
                time: first_time + block * 12,
                event: Event::ProviderAdded {
                    did: did(index),
                    provider: if index % 2 == 0 {
                        PROVIDER_A
                    } else {
                        PROVIDER_B
                    },
                },
            });
            dids.push(did(index));
            fetches.push((
                Fetch {
                    checksum,
                    url,
                    attempts: 0,
                },
                body,
            ));
        }
        let last = events.last().map_or(0, |event| event.at.block_number);
        store.record(
            chain,
            &events,
            Checkpoint {
                number: last,
                hash: keccak256(last.to_be_bytes()),
            },
        )?;
    }
    for (fetch, body) in fetches {
        store.fetched(&fetch, &Fetched::Valid(body), first_time, first_time)?;
    }
    Ok(dids)
}
