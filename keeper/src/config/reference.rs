//! The configuration reference (`docs/keeper-config.md`), generated from the configuration types:
//! every key with its type, default, environment variable and the documentation of its field.
//! `insitu-keeper --config-reference` prints it; a test keeps the committed file current.

use serde_json::{Map, Value};

use super::{Config, ENV_PREFIX};

/// Keys that an `INSITU_KEEPER_*` variable overrides (`table.key` for a key of a table): the
/// variable is the prefix and the key in upper case, the dot an underscore.
pub const ENV_KEYS: &[&str] = &[
    "rpc_url",
    "rpc_fallback_urls",
    "rpc_max_lag_blocks",
    "chain_id",
    "addresses",
    "confirmations",
    "poll_interval_ms",
    "listen",
    "database",
    "data_root",
    "publishers",
    "public_url",
    "keystore",
    "password_file",
    "max_downloads_per_consumer",
    "low_balance_gwei",
    "access_token_ttl_secs",
    "s3.endpoint",
    "s3.access_key_id",
    "s3.secret_access_key",
    "outbound.allow",
];

/// The environment variable of `key` (see [`ENV_KEYS`]).
pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "_").to_uppercase())
}

/// The reference, as Markdown.
pub fn markdown() -> String {
    let schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default();
    let definitions = schema
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut text = String::from(
        "# Keeper configuration reference\n\n\
         Generated from the keeper's configuration types by `insitu-keeper --config-reference`: \
         do not edit by hand.\n\n\
         The configuration is a TOML file (`insitu-keeper --config FILE`). Every key is \
         optional. An `INSITU_KEEPER_*` environment variable overrides the file where one is \
         named; an empty variable counts as unset. Relative paths are resolved against the \
         folder of the file. `insitu-keeper --config FILE --check-config` prints the effective \
         settings (never a secret) and checks them.\n",
    );
    text += &table("Top-level keys", "", &schema, &definitions);
    text += &nested_tables("", "", &schema, &definitions);
    text
}

/// The sections of the tables (`[name]`) and lists of tables (`[[name]]`) beneath `schema`,
/// whose keys are named `key_prefix...` (`compute.` in `[compute]`) and whose headings
/// `heading_prefix...`.
fn nested_tables(
    heading_prefix: &str,
    key_prefix: &str,
    schema: &Value,
    definitions: &Map<String, Value>,
) -> String {
    let mut text = String::new();
    for (key, property) in properties(schema) {
        if let Some(definition) = reference(property).and_then(|name| definitions.get(name))
            && definition.get("type").and_then(Value::as_str) == Some("object")
        {
            let name = format!("{heading_prefix}{key}");
            let prefix = format!("{key_prefix}{key}.");
            text += &table(
                &format!("`[{name}]` table"),
                &prefix,
                definition,
                definitions,
            );
            text += &nested_tables(&format!("{name}."), &prefix, definition, definitions);
        }
        let items = property.get("items").and_then(reference);
        let object = items
            .and_then(|name| definitions.get(name))
            .filter(|definition| definition.get("type").and_then(Value::as_str) == Some("object"));
        if let Some(definition) = object {
            let name = format!("{heading_prefix}{key}");
            let prefix = format!("{key_prefix}{key}[].");
            text += &table(
                &format!("`[[{name}]]` tables"),
                &prefix,
                definition,
                definitions,
            );
            text += &nested_tables(&format!("{name}."), &prefix, definition, definitions);
        }
    }
    text
}

fn properties(schema: &Value) -> Vec<(&String, &Value)> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|properties| properties.iter().collect())
        .unwrap_or_default()
}

/// The definition a property refers to, directly or through `anyOf` (an optional table).
fn reference(property: &Value) -> Option<&str> {
    let direct = property.get("$ref").and_then(Value::as_str);
    let optional = property
        .get("anyOf")
        .and_then(Value::as_array)
        .and_then(|options| options.iter().find_map(|option| option.get("$ref")))
        .and_then(Value::as_str);
    direct
        .or(optional)
        .and_then(|path| path.strip_prefix("#/$defs/"))
}

fn table(heading: &str, prefix: &str, schema: &Value, definitions: &Map<String, Value>) -> String {
    let mut text = format!("\n## {heading}\n\n");
    if let Some(description) = schema.get("description").and_then(Value::as_str)
        && !prefix.is_empty()
    {
        text += &format!("{}\n\n", prose(description));
    }
    text += "| key | type | default | environment | description |\n";
    text += "| --- | --- | --- | --- | --- |\n";
    for (key, property) in properties(schema) {
        let full = format!("{prefix}{key}");
        let environment = if ENV_KEYS.contains(&full.as_str()) {
            format!("`{}`", env_name(&full))
        } else {
            String::new()
        };
        let required = schema
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|required| required.iter().any(|name| name == key.as_str()));
        let default = match property.get("default") {
            None if required => "required".to_owned(),
            None | Some(Value::Null) => "none".to_owned(),
            Some(Value::Array(items)) if items.is_empty() => "none".to_owned(),
            Some(Value::Object(fields)) if fields.is_empty() => "none".to_owned(),
            Some(Value::Object(_)) => "see its table".to_owned(),
            Some(Value::String(text)) if text.is_empty() => "empty".to_owned(),
            Some(value) => format!("`{}`", value.to_string().trim_matches('"')),
        };
        text += &format!(
            "| `{key}` | {} | {default} | {environment} | {} |\n",
            kind(property, definitions),
            prose(
                property
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            )
        );
    }
    text
}

/// A property's type, in words.
fn kind(property: &Value, definitions: &Map<String, Value>) -> String {
    if let Some(name) = reference(property) {
        let definition = definitions.get(name);
        let choices: Vec<String> = definition
            .and_then(|d| d.get("oneOf").or_else(|| d.get("enum")))
            .and_then(Value::as_array)
            .map(|options| {
                options
                    .iter()
                    .filter_map(|option| option.get("const").unwrap_or(option).as_str())
                    .map(|choice| format!("`{choice}`"))
                    .collect()
            })
            .unwrap_or_default();
        if !choices.is_empty() {
            return choices.join(" or ");
        }
        return match definition.and_then(|d| d.get("type")) {
            Some(Value::String(kind)) if kind == "object" => "table".to_owned(),
            _ => name.to_lowercase(),
        };
    }
    if property.get("type").and_then(Value::as_str) == Some("object")
        && let Some(values) = property.get("additionalProperties")
    {
        return format!("table of {}s", kind(values, definitions));
    }
    let types: Vec<&str> = match property.get("type") {
        Some(Value::String(kind)) => vec![kind.as_str()],
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let optional = types.contains(&"null");
    let base = match types.iter().find(|kind| **kind != "null") {
        Some(&"array") => {
            let item = property
                .get("items")
                .map(|items| kind(items, definitions))
                .unwrap_or_default();
            let plural = match item.as_str() {
                "table" => "tables".to_owned(),
                "address" => "addresses".to_owned(),
                "ipnet" => "IP ranges (CIDR)".to_owned(),
                other => format!("{other}s"),
            };
            format!("list of {plural}")
        }
        Some(other) => (*other).to_owned(),
        None => "value".to_owned(),
    };
    if optional {
        format!("optional {base}")
    } else {
        base
    }
}

/// A field's documentation as one table cell: lines joined, intra-doc links made plain.
fn prose(text: &str) -> String {
    let mut text = text
        .split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .replace("[`KEY_ENV`]", "`INSITU_KEEPER_PRIVATE_KEY`")
        .replace('|', "\\|");
    // `[`name`]` and `[words](path)` become plain text.
    while let Some(start) = text.find("[`") {
        let Some(end) = text[start..].find("`]").map(|end| start + end) else {
            break;
        };
        let inner = text[start + 1..end + 1].to_owned();
        let after = &text[end + 2..];
        let rest = if after.starts_with('(') {
            after.find(')').map_or(after, |close| &after[close + 1..])
        } else {
            after
        };
        text = format!("{}{inner}{rest}", &text[..start]);
    }
    while let Some(start) = text.find("](") {
        let Some(open) = text[..start].rfind('[') else {
            break;
        };
        let Some(close) = text[start..].find(')').map(|close| start + close) else {
            break;
        };
        text = format!(
            "{}{}{}",
            &text[..open],
            &text[open + 1..start],
            &text[close + 1..]
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_links_become_plain_text() {
        assert_eq!(
            prose("See [`Config::validate`] and the\n[outbound guard](crate::outbound)."),
            "See `Config::validate` and the outbound guard."
        );
        assert_eq!(prose("a | b"), "a \\| b");
    }

    #[test]
    fn every_key_of_every_table_is_listed() {
        let text = markdown();
        for key in [
            "rpc_url",
            "access_token_ttl_secs",
            "buckets",
            "allow_http",
            "allow",
        ] {
            assert!(text.contains(&format!("| `{key}` |")), "{key}");
        }
        assert!(text.contains("## `[s3]` table"));
        assert!(text.contains("## `[compute.kubernetes]` table"));
        assert!(text.contains("## `[[compute.kubernetes.presets]]` tables"));
        assert!(text.contains("## `[[compute.runtimes]]` tables"));
        assert!(text.contains("| `workspace_claim` |"));
        assert!(text.contains("## `[outbound]` table"));
        assert!(text.contains("`INSITU_KEEPER_S3_SECRET_ACCESS_KEY`"));
    }
}
