//! `keeper-bench --download`: one large file delivered through a keeper running as its own
//! process, against the same file read directly from storage in the same run.
//!
//! The file is sparse (it takes no disk), with markers at both ends. The keeper hashes it once
//! when it is published. A first request of one byte settles the agreement; the timed request
//! then streams the whole file within the access window, with no transaction. Both sides only
//! count what they read, so the ratio is the cost of the keeper's delivery. The keeper's peak
//! resident memory is read from the kernel when the download ends.

use std::{
    io::{Seek, SeekFrom, Write},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use alloy::primitives::hex;
use anyhow::{Context, Result, bail};
use insitu_client::{keys, market, metadata::ServiceKind, tx::Silent};
use insitu_keeper::{api::sha256_of, config::Config, service};
use tokio::io::AsyncReadExt;

use crate::{World, peak_rss_mb};

/// Parses a size: bytes, or a number followed by K, M or G (powers of 1024).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((index, _)) => text.split_at(index),
        None => (text, ""),
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 4096, 512M or 2G"))?;
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(format!("unknown unit `{unit}`: use K, M or G")),
    };
    match number
        .checked_shl(shift)
        .filter(|size| size >> shift == number)
    {
        Some(size) if size > 0 => Ok(size),
        _ => Err(format!("`{text}` is not a size from 1 byte to 16 EiB")),
    }
}

/// Runs a keeper with the configuration file `config` until Ctrl-C (the parent kills it).
pub(crate) async fn serve_keeper(config: &Path) -> Result<()> {
    let config = Config::load(Some(config)).context("loading the keeper's configuration")?;
    let key = keys::load(&config.key_source()).context("loading the keeper's key")?;
    let running = service::start(&config, key, None).await?;
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}

/// The keeper process, killed when dropped.
struct KeeperProcess(Child);

impl Drop for KeeperProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Bytes read per chunk by the direct read (as the keeper reads).
const CHUNK: usize = 1024 * 1024;

pub(crate) async fn run(size: u64) -> Result<()> {
    let world = World::deploy(5, None).await?;
    let work = world.work.path();
    let data = work.join("data");
    std::fs::create_dir_all(&data)?;
    let file = data.join("big.bin");
    {
        let mut handle = std::fs::File::create(&file)?;
        handle.set_len(size)?;
        handle.write_all(&b"first"[..size.min(5) as usize])?;
        if size > 10 {
            handle.seek(SeekFrom::Start(size - 5))?;
            handle.write_all(b"last.")?;
        }
    }
    eprintln!("hashing the {} MiB file...", size >> 20);
    let sha = sha256_of(&file).await?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = work.join("keeper.toml");
    let settings = Config {
        rpc_url: world.devnet.endpoint(),
        addresses: world.addresses.clone(),
        confirmations: 0,
        poll_interval_ms: 100,
        listen: format!("127.0.0.1:{port}"),
        database: work.join("keeper.db"),
        data_root: data.clone(),
        publishers: vec![world.keys[1].address()],
        ..Config::default()
    };
    std::fs::write(&config, settings.to_string())?;
    let keeper = KeeperProcess(
        Command::new(std::env::current_exe()?)
            .arg("--serve-keeper")
            .arg(&config)
            .env(
                insitu_keeper::config::KEY_ENV,
                hex::encode(world.keys[2].to_bytes()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the keeper process")?,
    );
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&url).await?;

    eprintln!("publishing (the keeper hashes the file) and buying...");
    let did = world.publish(&url, &file, size, &sha).await?;
    let consumer = &world.keys[3];
    let id = market::buy(
        &world.suite,
        &world.sender(consumer),
        did,
        ServiceKind::Access,
        0,
        &Silent,
    )
    .await?
    .quote
    .agreement_id;
    let http = reqwest::Client::new();
    let request = |range: Option<&str>| -> Result<reqwest::RequestBuilder> {
        let body = market::access_request(
            consumer,
            31_337,
            world.suite.addresses.access,
            did,
            id,
            insitu_keeper::executor::now() + 300,
        )?;
        let builder = http.post(format!("{url}/v1/access")).json(&body);
        Ok(match range {
            Some(range) => builder.header("range", range),
            None => builder,
        })
    };
    // The first request settles the agreement (one byte is enough).
    let first = request(Some("bytes=0-0"))?.send().await?;
    if first.status().as_u16() != 206 {
        bail!("the settling request got {}", first.status());
    }

    eprintln!("downloading through the keeper...");
    let started = Instant::now();
    let mut response = request(None)?.send().await?;
    if !response.status().is_success() {
        bail!("the download got {}", response.status());
    }
    let mut received = 0_u64;
    // The last chunk is kept (a reference, no copy) to check the file's end.
    let mut last = axum::body::Bytes::new();
    while let Some(chunk) = response.chunk().await? {
        received += chunk.len() as u64;
        last = chunk;
    }
    let download_seconds = started.elapsed().as_secs_f64();
    if received != size || (size > 10 && !last.ends_with(b"last.")) {
        bail!("received {received} bytes of {size}, or not the file's");
    }
    let keeper_peak = peak_rss_mb(keeper.0.id());
    drop(keeper);

    eprintln!("reading it directly from storage...");
    let started = Instant::now();
    let mut handle = tokio::fs::File::open(&file).await?;
    let mut buffer = vec![0_u8; CHUNK];
    let mut read = 0_u64;
    loop {
        let count = handle.read(&mut buffer).await?;
        if count == 0 {
            break;
        }
        read += count as u64;
    }
    let direct_seconds = started.elapsed().as_secs_f64();
    if read != size {
        bail!("read {read} bytes of {size}");
    }

    let mb = size as f64 / 1e6;
    let (download, direct) = (mb / download_seconds, mb / direct_seconds);
    println!(
        "{size} bytes: through the keeper {download:.0} MB/s, directly {direct:.0} MB/s (ratio {:.2}); keeper peak RSS {keeper_peak:.0} MB",
        download / direct
    );
    println!(
        "{}",
        serde_json::json!({
            "file_bytes": size,
            "download_mb_per_s": download.round(),
            "direct_mb_per_s": direct.round(),
            "ratio": (download / direct * 100.0).round() / 100.0,
            "keeper_peak_rss_mb": keeper_peak.round(),
        })
    );
    Ok(())
}

async fn wait_ready(url: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(response) = reqwest::get(format!("{url}/ready")).await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the keeper process never became ready")
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_binary_units_and_bad_ones_are_refused() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("3kib"), Ok(3 << 10));
        for bad in ["", "0", "G", "2T", "1.5G", "-1", "99999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
