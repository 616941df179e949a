//! Loading, overriding and validating the keeper configuration.

use std::{collections::HashMap, path::PathBuf};

use insitu_keeper::config::{
    Config, ConfigError, MAX_CONFIRMATIONS, MAX_DOWNLOADS_PER_CONSUMER, ValidationError,
};

const FULL: &str = r#"
rpc_url = "ws://10.0.0.5:8546"
chain_id = 11155111
addresses = "deployments/sepolia.json"
confirmations = 12
poll_interval_ms = 4000
listen = "0.0.0.0:9000"
database = "/var/lib/insitu/keeper.db"
max_downloads_per_consumer = 2
"#;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn parses_every_key() {
    let config = Config::from_toml(FULL).unwrap();
    assert_eq!(config.rpc_url, "ws://10.0.0.5:8546");
    assert_eq!(config.chain_id, 11_155_111);
    assert_eq!(config.addresses, PathBuf::from("deployments/sepolia.json"));
    assert_eq!(config.confirmations, 12);
    assert_eq!(config.poll_interval_ms, 4000);
    assert_eq!(config.poll_interval(), std::time::Duration::from_secs(4));
    assert_eq!(config.listen_addr().unwrap().port(), 9000);
    assert_eq!(config.database, PathBuf::from("/var/lib/insitu/keeper.db"));
    assert_eq!(config.max_downloads_per_consumer, 2);
    config.validate().unwrap();
}

#[test]
fn missing_keys_take_defaults() {
    let config = Config::from_toml("confirmations = 3").unwrap();
    assert_eq!(
        config,
        Config {
            confirmations: 3,
            ..Config::default()
        }
    );
    let defaults = Config::default();
    assert_eq!(defaults.rpc_url, "http://127.0.0.1:8545");
    assert_eq!(defaults.chain_id, 31337);
    defaults.validate().unwrap();
    assert_eq!(Config::load_with_env(None, no_env).unwrap(), defaults);
}

#[test]
fn unknown_keys_and_wrong_types_are_rejected() {
    let err = Config::from_toml("rpc = \"http://x\"").unwrap_err();
    assert!(err.to_string().contains("unknown field `rpc`"), "{err}");
    let err = Config::from_toml("chain_id = \"one\"").unwrap_err();
    assert!(err.to_string().contains("invalid type"), "{err}");
}

#[test]
fn a_file_is_loaded_with_paths_relative_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keeper.toml");
    std::fs::write(
        &path,
        "addresses = \"addr.json\"\ndatabase = \"/abs/k.db\"\n",
    )
    .unwrap();
    let config = Config::load_with_env(Some(&path), no_env).unwrap();
    assert_eq!(config.addresses, dir.path().join("addr.json"));
    assert_eq!(config.database, PathBuf::from("/abs/k.db"));

    let missing = dir.path().join("nope.toml");
    assert!(matches!(
        Config::load_with_env(Some(&missing), no_env),
        Err(ConfigError::Read { .. })
    ));

    std::fs::write(&path, "chain_id = [").unwrap();
    let err = Config::load_with_env(Some(&path), no_env).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
    assert!(err.to_string().contains("keeper.toml"), "{err}");
}

#[test]
fn environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keeper.toml");
    std::fs::write(&path, FULL).unwrap();
    let config = Config::load_with_env(
        Some(&path),
        env(&[
            ("INSITU_KEEPER_RPC_URL", "https://rpc.example.org"),
            ("INSITU_KEEPER_CHAIN_ID", "5"),
            ("INSITU_KEEPER_ADDRESSES", "deployments/a.json"),
            ("INSITU_KEEPER_CONFIRMATIONS", "0"),
            ("INSITU_KEEPER_POLL_INTERVAL_MS", " 250 "),
            ("INSITU_KEEPER_LISTEN", "[::1]:7000"),
            ("INSITU_KEEPER_DATABASE", "data/k.db"),
            ("INSITU_KEEPER_MAX_DOWNLOADS_PER_CONSUMER", "7"),
            ("INSITU_KEEPER_UNRELATED", "ignored"),
        ]),
    )
    .unwrap();
    assert_eq!(config.rpc_url, "https://rpc.example.org");
    assert_eq!(config.chain_id, 5);
    assert_eq!(config.addresses, PathBuf::from("deployments/a.json"));
    assert_eq!(config.confirmations, 0);
    assert_eq!(config.poll_interval_ms, 250);
    assert_eq!(config.listen, "[::1]:7000");
    assert_eq!(config.database, PathBuf::from("data/k.db"));
    assert_eq!(config.max_downloads_per_consumer, 7);

    // Empty variables count as unset.
    let config =
        Config::load_with_env(Some(&path), env(&[("INSITU_KEEPER_CHAIN_ID", "")])).unwrap();
    assert_eq!(config.chain_id, 11_155_111);
}

#[test]
fn bad_environment_values_name_the_variable() {
    let err =
        Config::load_with_env(None, env(&[("INSITU_KEEPER_CONFIRMATIONS", "many")])).unwrap_err();
    match &err {
        ConfigError::Env { name, value, .. } => {
            assert_eq!(name, "INSITU_KEEPER_CONFIRMATIONS");
            assert_eq!(value, "many");
        }
        other => panic!("expected Env, got {other:?}"),
    }
    assert!(
        err.to_string().contains("INSITU_KEEPER_CONFIRMATIONS"),
        "{err}"
    );
    let err = Config::load_with_env(
        None,
        env(&[("INSITU_KEEPER_MAX_DOWNLOADS_PER_CONSUMER", "-1")]),
    )
    .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Env { name, .. } if name == "INSITU_KEEPER_MAX_DOWNLOADS_PER_CONSUMER"),
        "{err:?}"
    );
}

fn invalid(config: Config) -> ValidationError {
    config
        .validate()
        .expect_err("configuration should be invalid")
}

#[test]
fn each_validation_error() {
    let base = Config::default();

    let err = invalid(Config {
        rpc_url: "not a url".into(),
        ..base.clone()
    });
    assert!(matches!(err, ValidationError::RpcUrl { .. }), "{err:?}");

    let err = invalid(Config {
        rpc_url: "ftp://127.0.0.1".into(),
        ..base.clone()
    });
    assert_eq!(
        err,
        ValidationError::RpcScheme {
            url: "ftp://127.0.0.1".into(),
            scheme: "ftp".into()
        }
    );

    assert_eq!(
        invalid(Config {
            chain_id: 0,
            ..base.clone()
        }),
        ValidationError::ChainIdZero
    );

    for ttl in [0, 59, 86_401] {
        assert_eq!(
            invalid(Config {
                access_token_ttl_secs: ttl,
                ..base.clone()
            }),
            ValidationError::AccessTokenTtl { value: ttl }
        );
    }
    assert_eq!(base.access_token_ttl_secs, 900);

    assert_eq!(
        invalid(Config {
            addresses: PathBuf::new(),
            ..base.clone()
        }),
        ValidationError::AddressesEmpty
    );

    assert_eq!(
        invalid(Config {
            confirmations: MAX_CONFIRMATIONS + 1,
            ..base.clone()
        }),
        ValidationError::TooManyConfirmations {
            value: MAX_CONFIRMATIONS + 1
        }
    );
    Config {
        confirmations: MAX_CONFIRMATIONS,
        ..base.clone()
    }
    .validate()
    .unwrap();

    assert_eq!(
        invalid(Config {
            poll_interval_ms: 99,
            ..base.clone()
        }),
        ValidationError::PollInterval { value: 99 }
    );
    assert_eq!(
        invalid(Config {
            poll_interval_ms: 3_600_001,
            ..base.clone()
        }),
        ValidationError::PollInterval { value: 3_600_001 }
    );

    let err = invalid(Config {
        listen: "localhost".into(),
        ..base.clone()
    });
    assert!(matches!(err, ValidationError::Listen { .. }), "{err:?}");
    assert!(err.to_string().contains("\"localhost\""), "{err}");

    assert_eq!(
        invalid(Config {
            database: PathBuf::new(),
            ..base.clone()
        }),
        ValidationError::DatabaseEmpty
    );

    for value in [0, MAX_DOWNLOADS_PER_CONSUMER + 1] {
        assert_eq!(
            invalid(Config {
                max_downloads_per_consumer: value,
                ..base.clone()
            }),
            ValidationError::MaxDownloads { value }
        );
    }
    for value in [1, MAX_DOWNLOADS_PER_CONSUMER] {
        Config {
            max_downloads_per_consumer: value,
            ..base.clone()
        }
        .validate()
        .unwrap();
    }
}

#[test]
fn load_reports_validation_errors() {
    let err = Config::load_with_env(None, env(&[("INSITU_KEEPER_CHAIN_ID", "0")])).unwrap_err();
    assert!(
        matches!(err, ConfigError::Invalid(ValidationError::ChainIdZero)),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "invalid keeper configuration: chain_id must not be 0"
    );
}

#[test]
fn printed_configuration_parses_back() {
    let config = Config::from_toml(FULL).unwrap();
    assert_eq!(Config::from_toml(&config.to_string()).unwrap(), config);
}

#[test]
fn the_addresses_file_follows_the_chain_id_unless_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keeper.toml");
    std::fs::write(&path, "chain_id = 10\n").unwrap();
    let config = Config::load_with_env(Some(&path), no_env).unwrap();
    assert_eq!(config.addresses, dir.path().join("deployments/10.json"));
    // The chain id from the environment moves it too.
    let config =
        Config::load_with_env(Some(&path), env(&[("INSITU_KEEPER_CHAIN_ID", "5")])).unwrap();
    assert_eq!(config.addresses, dir.path().join("deployments/5.json"));
    // Set in the file or the environment, it stays.
    std::fs::write(&path, "chain_id = 10\naddresses = \"mine.json\"\n").unwrap();
    let config = Config::load_with_env(Some(&path), no_env).unwrap();
    assert_eq!(config.addresses, dir.path().join("mine.json"));
    let config =
        Config::load_with_env(None, env(&[("INSITU_KEEPER_ADDRESSES", "/x.json")])).unwrap();
    assert_eq!(config.addresses, PathBuf::from("/x.json"));
    assert_eq!(
        Config::default().addresses,
        PathBuf::from("deployments/31337.json")
    );
}

#[test]
fn the_s3_table_is_validated_and_its_secret_never_printed() {
    let text = format!(
        "{FULL}\n[s3]\nendpoint = \"http://127.0.0.1:9000\"\nallow_http = true\nbuckets = [\"datasets\"]\n\
         access_key_id = \"AKIDEXAMPLE\"\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keeper.toml");
    std::fs::write(&path, &text).unwrap();

    // The secret comes from the environment; without it the table is refused.
    let err = Config::load_with_env(Some(&path), no_env).unwrap_err();
    assert!(err.to_string().contains("secret_access_key"), "{err}");
    let config = Config::load_with_env(
        Some(&path),
        env(&[("INSITU_KEEPER_S3_SECRET_ACCESS_KEY", "very-secret-value")]),
    )
    .unwrap();
    let s3 = config.s3.clone().unwrap();
    assert_eq!(s3.buckets, ["datasets"]);
    assert_eq!(s3.region, "us-east-1");
    assert_eq!(s3.secret_access_key, "very-secret-value");
    assert!(!config.to_string().contains("very-secret-value"));
    assert!(!format!("{config:?}").contains("very-secret-value"));
    assert!(config.to_string().contains("AKIDEXAMPLE"));

    let base = config;
    let with = |change: &dyn Fn(&mut insitu_keeper::config::S3Config)| {
        let mut config = base.clone();
        change(config.s3.as_mut().unwrap());
        config.validate().unwrap_err().to_string()
    };
    assert!(with(&|s3| s3.allow_http = false).contains("allow_http"));
    assert!(with(&|s3| s3.endpoint = Some("ftp://x".into())).contains("ftp"));
    assert!(with(&|s3| s3.endpoint = Some("not a url".into())).contains("not a URL"));
    assert!(with(&|s3| s3.buckets.clear()).contains("buckets"));
    assert!(with(&|s3| s3.buckets = vec!["Bad_Bucket".into()]).contains("Bad_Bucket"));
    assert!(with(&|s3| s3.region = " ".into()).contains("region"));
    assert!(with(&|s3| s3.access_key_id.clear()).contains("access_key_id"));
}

#[test]
fn the_outbound_allow_list_takes_ranges_from_the_file_or_the_environment() {
    let config = Config::from_toml(&format!(
        "{FULL}\n[outbound]\nallow = [\"10.20.0.0/16\", \"fd00::/8\"]\n"
    ))
    .unwrap();
    let policy = config.outbound.policy();
    assert_eq!(policy.check("10.20.3.4".parse().unwrap()), Ok(()));
    assert_eq!(
        policy.check("10.21.0.1".parse().unwrap()),
        Err("private (10.0.0.0/8)")
    );
    assert_eq!(policy.check("fd00::5".parse().unwrap()), Ok(()));
    assert!(
        Config::default().outbound.allow.is_empty(),
        "nothing by default"
    );
    // Printed and read back.
    assert_eq!(Config::from_toml(&config.to_toml()).unwrap(), config);

    // A bad range in the file names the key.
    let err = Config::from_toml("[outbound]\nallow = [\"10.0.0.0/33\"]\n").unwrap_err();
    assert!(err.to_string().contains("allow"), "{err}");

    let mut config = Config::default();
    config
        .apply_env(env(&[(
            "INSITU_KEEPER_OUTBOUND_ALLOW",
            "127.0.0.1/32, 192.168.0.0/16",
        )]))
        .unwrap();
    assert_eq!(
        config.outbound.allow,
        vec![
            "127.0.0.1/32".parse().unwrap(),
            "192.168.0.0/16".parse::<ipnet::IpNet>().unwrap()
        ]
    );
    let err = Config::default()
        .apply_env(env(&[(
            "INSITU_KEEPER_OUTBOUND_ALLOW",
            "127.0.0.1/32,nope",
        )]))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("INSITU_KEEPER_OUTBOUND_ALLOW=\"127.0.0.1/32,nope\" is invalid: \"nope\""),
        "{err}"
    );
}

#[test]
fn fallback_endpoints_are_checked_and_come_after_rpc_url() {
    let config = Config::from_toml(
        "rpc_url = \"http://a.example:8545\"\n\
         rpc_fallback_urls = [\"wss://b.example/key\", \"https://c.example\"]\n\
         rpc_max_lag_blocks = 5\n",
    )
    .unwrap();
    config.validate().unwrap();
    let endpoints: Vec<String> = config
        .endpoints()
        .unwrap()
        .iter()
        .map(|endpoint| endpoint.redacted())
        .collect();
    assert_eq!(
        endpoints,
        [
            "http://a.example:8545",
            "wss://b.example/…",
            "https://c.example"
        ]
    );
    assert_eq!(Config::default().rpc_max_lag_blocks, 3);
    assert!(Config::default().rpc_fallback_urls.is_empty());

    let with = |urls: &[&str]| {
        Config {
            rpc_fallback_urls: urls.iter().map(|url| url.to_string()).collect(),
            ..config.clone()
        }
        .validate()
        .map_err(|error| error.to_string())
    };
    assert!(with(&["ftp://d.example"]).unwrap_err().contains("ftp"));
    assert_eq!(
        with(&["http://a.example:8545"]).unwrap_err(),
        "rpc_fallback_urls: http://a.example:8545 is listed twice"
    );
    let many: Vec<String> = (0..9).map(|i| format!("http://n{i}.example")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert!(with(&many).unwrap_err().contains("at most 8"));
    assert_eq!(
        invalid(Config {
            rpc_max_lag_blocks: 1_001,
            ..Config::default()
        }),
        ValidationError::RpcMaxLag { value: 1_001 }
    );

    let mut config = Config::default();
    config
        .apply_env(env(&[
            (
                "INSITU_KEEPER_RPC_FALLBACK_URLS",
                "http://x.example, ws://y.example",
            ),
            ("INSITU_KEEPER_RPC_MAX_LAG_BLOCKS", "7"),
        ]))
        .unwrap();
    assert_eq!(
        config.rpc_fallback_urls,
        ["http://x.example", "ws://y.example"]
    );
    assert_eq!(config.rpc_max_lag_blocks, 7);
}

#[test]
fn every_documented_environment_variable_overrides_its_key() {
    use insitu_keeper::config::reference::{ENV_KEYS, env_name};
    let samples: &[(&str, &str)] = &[
        ("rpc_url", "http://10.1.1.1:8545"),
        ("rpc_fallback_urls", "http://10.1.1.2:8545"),
        ("rpc_max_lag_blocks", "9"),
        ("chain_id", "5"),
        ("addresses", "elsewhere.json"),
        ("confirmations", "7"),
        ("poll_interval_ms", "1234"),
        ("listen", "0.0.0.0:9999"),
        ("database", "other.db"),
        ("data_root", "/srv/other"),
        ("publishers", "0x00000000000000000000000000000000000000aa"),
        ("public_url", "https://keeper.example"),
        ("keystore", "key.json"),
        ("password_file", "key.pass"),
        ("max_downloads_per_consumer", "3"),
        ("low_balance_gwei", "5"),
        ("access_token_ttl_secs", "120"),
        ("s3.endpoint", "http://10.0.0.9:9000"),
        ("s3.access_key_id", "AKID"),
        ("s3.secret_access_key", "secret"),
        ("outbound.allow", "10.0.0.0/8"),
    ];
    let listed: Vec<&str> = samples.iter().map(|(key, _)| *key).collect();
    assert_eq!(listed, ENV_KEYS, "a sample for every documented variable");
    for (key, value) in samples {
        let mut config = Config::default();
        config
            .apply_env(env(&[(env_name(key).as_str(), value)]))
            .unwrap_or_else(|error| panic!("{key}: {error}"));
        assert_ne!(
            config,
            Config::default(),
            "{} changes nothing",
            env_name(key)
        );
    }
}

#[test]
fn the_committed_configuration_reference_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/keeper-config.md");
    let generated = insitu_keeper::config::reference::markdown();
    if std::env::var_os("INSITU_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/keeper-config.md is not the generated reference: run \
         INSITU_UPDATE_DOCS=1 cargo test -p insitu-keeper --test config"
    );
}

#[test]
fn more_chains_get_their_own_store_deployment_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keeper.toml");
    std::fs::write(
        &path,
        "chain_id = 1\nrpc_url = \"https://one.example\"\n\
         [[chains]]\nchain_id = 10\nrpc_url = \"https://ten.example\"\nconfirmations = 5\n\
         [[chains]]\nchain_id = 137\nrpc_url = \"wss://poly.example\"\n\
         database = \"poly.db\"\nkeystore = \"k.json\"\npassword_file = \"k.pass\"\n",
    )
    .unwrap();
    let config = Config::load_with_env(Some(&path), no_env).unwrap();
    let chains = config.chain_settings();
    assert_eq!(
        chains
            .iter()
            .map(|chain| chain.chain_id)
            .collect::<Vec<_>>(),
        [1, 10, 137]
    );
    assert_eq!(chains[1].confirmations, 5);
    assert_eq!(chains[1].rpc_max_lag_blocks, 3);
    assert_eq!(chains[1].addresses, dir.path().join("deployments/10.json"));
    assert_eq!(chains[1].database, dir.path().join("keeper-10.db"));
    assert_eq!(
        chains[1].key,
        insitu_client::keys::KeySource::Var("INSITU_KEEPER_PRIVATE_KEY_10".to_owned())
    );
    assert_eq!(chains[2].database, dir.path().join("poly.db"));
    assert!(matches!(
        &chains[2].key,
        insitu_client::keys::KeySource::Keystore { path, .. } if path == &dir.path().join("k.json")
    ));
    // Printed and read back.
    assert_eq!(Config::from_toml(&config.to_toml()).unwrap(), config);

    let refused = |extra: &str| {
        let text = format!("chain_id = 1\ndatabase = \"keeper.db\"\n{extra}");
        let config = Config::from_toml(&text).unwrap();
        config.validate().unwrap_err().to_string()
    };
    assert_eq!(
        refused("[[chains]]\nchain_id = 1\nrpc_url = \"http://a.example\"\n"),
        "[[chains]] chain 1: this chain is configured twice"
    );
    assert_eq!(
        refused("[[chains]]\nchain_id = 0\nrpc_url = \"http://a.example\"\n"),
        "[[chains]] chain 0: chain_id must not be 0"
    );
    assert!(
        refused("[[chains]]\nchain_id = 2\nrpc_url = \"ftp://a.example\"\n").contains("rpc_url")
    );
    assert!(
        refused("[[chains]]\nchain_id = 2\nrpc_url = \"http://a.example\"\nkeystore = \"k\"\n")
            .contains("keystore and password_file go together")
    );
    assert!(
        refused(
            "[[chains]]\nchain_id = 2\nrpc_url = \"http://a.example\"\ndatabase = \"keeper.db\"\n"
        )
        .contains("is another chain's")
    );
    assert!(
        refused("[[chains]]\nchain_id = 2\nrpc_url = \"http://a.example\"\nconfirmations = 1000\n")
            .contains("confirmations must be at most")
    );
    // A table without its chain or endpoint is refused when read.
    assert!(Config::from_toml("[[chains]]\nchain_id = 2\n").is_err());
}
