//! What the command prints: text for people, or one JSON object for scripts (`--json`), and the
//! progress of transactions on standard error.

use std::{io::IsTerminal, path::Path, time::Duration};

use alloy::primitives::Address;
use indicatif::{ProgressBar, ProgressStyle};
use insitu_client::{
    agreement::{AgreementInfo, NextStep},
    asset::AssetInfo,
    catalog::SearchPage,
    deploy::{Deployed, format_utc},
    governance::{FeeInfo, Outcome, TemplateInfo, TemplateStatus},
    market::{AccessToken, Bought, DownloadEvent, Downloaded, Published},
    payments::{Refunded, Withdrawn},
    tx::{Progress, TxEvent},
};
use serde_json::{Value, json};

/// Where results go.
#[derive(Debug)]
pub(crate) struct Output {
    json: bool,
}

impl Output {
    pub(crate) fn new(json: bool) -> Self {
        Self { json }
    }

    /// Prints the error `message` and returns the failure exit code.
    pub(crate) fn fail(&self, message: &str) -> std::process::ExitCode {
        if self.json {
            println!("{}", json!({ "error": message }));
        } else {
            eprintln!("error: {message}");
        }
        std::process::ExitCode::FAILURE
    }

    /// A remark for people (standard error; nothing in JSON mode).
    pub(crate) fn note(&self, text: &str) {
        if !self.json {
            eprintln!("{text}");
        }
    }

    fn emit(&self, value: Value, text: impl FnOnce() -> String) -> anyhow::Result<()> {
        if self.json {
            println!("{value}");
        } else {
            print!("{}", text());
        }
        Ok(())
    }

    /// A completion script: as is, or `{"shell", "script"}` with `--json`.
    pub(crate) fn completions(&self, shell: &str, script: &str) -> anyhow::Result<()> {
        self.emit(
            serde_json::json!({ "shell": shell, "script": script }),
            || script.to_owned(),
        )
    }

    pub(crate) fn asset(&self, info: &AssetInfo) -> anyhow::Result<()> {
        self.emit(serde_json::to_value(info)?, || {
            let mut text = format!(
                "asset        {}\nowner        {}\n",
                info.did, info.owner
            );
            if let Some(pending) = info.pending_owner {
                text += &format!("pending owner {pending} (transfer not accepted yet)\n");
            }
            text += &format!(
                "registered   {}\nmetadata     {}\nchecksum     {}\noffer epoch  {}\nproviders    {}\n",
                format_utc(info.registered_at),
                info.url,
                info.checksum,
                info.offer_epoch,
                if info.providers.is_empty() {
                    "none".to_owned()
                } else {
                    join(&info.providers)
                }
            );
            text
        })
    }

    pub(crate) fn agreement(
        &self,
        info: &AgreementInfo,
        party: Option<Address>,
    ) -> anyhow::Result<()> {
        let next = info.next_step(party);
        let mut value = serde_json::to_value(info)?;
        value["next"] = serde_json::to_value(&next)?;
        value["party"] = serde_json::to_value(party)?;
        self.emit(value, || {
            let mut text = format!(
                "agreement  {}\nasset      {}\nconsumer   {}\nprovider   {}\ntemplate   {} {}\ncreated    {} (block {})\nprice      {} of token {} (fee included: {})\n\nconditions (at {}):\n",
                info.id,
                info.did,
                info.consumer,
                info.terms.provider,
                info.template,
                info.template_name.as_deref().unwrap_or(""),
                format_utc(info.created_at),
                info.created_block,
                info.terms.total,
                info.terms.token,
                info.terms.fee,
                format_utc(info.now),
            );
            for condition in &info.conditions {
                let deadline = if condition.time_out == 0 {
                    "no time out".to_owned()
                } else {
                    format!(
                        "{} {}",
                        if condition.timed_out { "timed out at" } else { "times out at" },
                        format_utc(condition.time_out)
                    )
                };
                text += &format!(
                    "  {:<28} {:<12} {deadline}\n     id {}\n",
                    condition
                        .name
                        .clone()
                        .unwrap_or_else(|| condition.contract.to_string()),
                    format!("{:?}", condition.state).to_lowercase(),
                    condition.id
                );
            }
            let who = match party {
                Some(party) if party == info.consumer => "the consumer",
                Some(party) if party == info.terms.provider => "the provider",
                Some(_) => "you",
                None => "anyone",
            };
            text += &format!("\nnext, for {who}: {}\n", describe_next(&next, info));
            text
        })
    }

    pub(crate) fn refunded(&self, refunded: &Refunded) -> anyhow::Result<()> {
        self.emit(serde_json::to_value(refunded)?, || {
            format!(
                "refunded {} of token {} to {} (transaction {})\n",
                refunded.amount, refunded.token, refunded.payer, refunded.transaction
            )
        })
    }

    pub(crate) fn withdrawn(&self, withdrawn: &Withdrawn) -> anyhow::Result<()> {
        self.emit(serde_json::to_value(withdrawn)?, || {
            format!(
                "withdrew {} {} of token {} to {} (transaction {})\n",
                withdrawn.kind,
                withdrawn.amount,
                withdrawn.token,
                withdrawn.to,
                withdrawn.transaction
            )
        })
    }

    pub(crate) fn fee(&self, info: &FeeInfo) -> anyhow::Result<()> {
        self.emit(serde_json::to_value(info)?, || {
            let mut text = format!(
                "network fee  {} bps (at most {})\nreceiver     {}\n",
                info.bps, info.max_bps, info.receiver
            );
            for accrued in &info.accrued {
                text += &format!(
                    "accrued      {} of token {}\n",
                    accrued.amount, accrued.token
                );
            }
            text
        })
    }

    pub(crate) fn outcome(&self, what: &str, outcome: &Outcome) -> anyhow::Result<()> {
        self.emit(serde_json::to_value(outcome)?, || match outcome {
            Outcome::AlreadyInEffect { detail } => format!("nothing to do: {detail}\n"),
            Outcome::Done { transaction } => format!("done: {what} (transaction {transaction})\n"),
            Outcome::Scheduled {
                operation,
                ready_at,
                transaction,
            } => format!(
                "scheduled in the governance timelock: {what} (operation {operation}, transaction \
                 {transaction});\nit can be executed from {}: run the same command again then\n",
                format_utc(*ready_at)
            ),
            Outcome::Waiting {
                operation,
                ready_at,
            } => format!(
                "already scheduled (operation {operation}); it can be executed from {}: run the \
                 same command again then\n",
                format_utc(*ready_at)
            ),
        })
    }

    pub(crate) fn templates(&self, templates: &[TemplateInfo]) -> anyhow::Result<()> {
        self.emit(json!({ "templates": templates }), || {
            let mut text = String::new();
            for template in templates {
                let status = match template.status {
                    TemplateStatus::Uninitialized => "not proposed",
                    TemplateStatus::Proposed => "proposed",
                    TemplateStatus::Approved => "approved",
                    TemplateStatus::Revoked => "revoked",
                };
                text += &format!(
                    "{} {:<16} {status}\n",
                    template.address,
                    template.name.as_deref().unwrap_or("-")
                );
            }
            text
        })
    }

    pub(crate) fn deployed(
        &self,
        deployed: &Deployed,
        deployer: Address,
        out: &Path,
    ) -> anyhow::Result<()> {
        let value = json!({
            "chain_id": deployed.deployment.chain_id,
            "deployer": deployer,
            "block": deployed.deployment.block,
            "addresses_file": out.display().to_string(),
            "contracts": deployed.deployment.contracts,
            "transactions": deployed.transactions,
            "skipped": deployed.skipped.iter().map(|(label, reason)| json!({"step": label, "reason": reason})).collect::<Vec<_>>(),
            "resumed": deployed.resumed,
            "simulated_gas": deployed.simulated_gas,
            "governance_done": deployed.governance.is_done(),
            "governance_instructions": deployed.governance.instructions(),
        });
        self.emit(value, || {
            let mut text = format!(
                "deployed {} transactions on chain {} (last block {}){}\n",
                deployed.transactions.len(),
                deployed.deployment.chain_id,
                deployed.deployment.block,
                if deployed.resumed { ", resumed" } else { "" }
            );
            for (name, address) in &deployed.deployment.contracts {
                text += &format!("  {name:<28} {address}\n");
            }
            text += &format!("addresses written to {}\n", out.display());
            if deployed.governance.is_done() {
                text += "templates approved and network fee set\n";
            } else {
                text += &deployed.governance.instructions();
            }
            text
        })
    }

    pub(crate) fn published(&self, published: &Published) -> anyhow::Result<()> {
        self.emit(serde_json::to_value(published)?, || {
            format!(
                "published asset {}\nmetadata     {} (checksum {})\ntransaction  {}\n",
                published.did, published.url, published.checksum, published.transaction
            )
        })
    }

    /// A page of search results, with the facets and the next page's cursor.
    pub(crate) fn search(&self, page: &SearchPage) -> anyhow::Result<()> {
        self.emit(serde_json::to_value(page)?, || {
            let mut text = format!(
                "{} asset{} found{}\n",
                page.total,
                if page.total == 1 { "" } else { "s" },
                if page.results.is_empty() {
                    String::new()
                } else {
                    format!(", {} shown", page.results.len())
                }
            );
            for result in &page.results {
                text.push_str(&format!(
                    "\n{}  [{}]\n  chain {} asset {}\n",
                    printable(&result.name),
                    result.kind.as_str(),
                    result.chain,
                    result.did
                ));
                for service in &result.services {
                    text.push_str(&format!(
                        "  {:<8} {} of token {}\n",
                        printable(&service.kind),
                        printable(&service.price),
                        service.token
                    ));
                }
                let mut about = vec![printable(&result.license), printable(&result.author)];
                if !result.tags.is_empty() {
                    about.push(printable(&result.tags.join(", ")));
                }
                text.push_str(&format!(
                    "  {}; {} agreement{}\n",
                    about.join("; "),
                    result.agreements,
                    if result.agreements == 1 { "" } else { "s" }
                ));
            }
            let facets = &page.facets;
            let mut counts = Vec::new();
            for (field, values) in [
                ("type", &facets.kind),
                ("service", &facets.service),
                ("license", &facets.license),
                ("tags", &facets.tags),
            ] {
                if !values.is_empty() {
                    let listed: Vec<String> = values
                        .iter()
                        .take(8)
                        .map(|facet| format!("{} {}", printable(&facet.value), facet.count))
                        .collect();
                    counts.push(format!("  {field:<8} {}", listed.join(", ")));
                }
            }
            if !counts.is_empty() {
                text.push_str(&format!("\nby field\n{}\n", counts.join("\n")));
            }
            if let Some(next) = &page.next {
                text.push_str(&format!("\nnext page: --cursor {}\n", printable(next)));
            }
            text
        })
    }

    pub(crate) fn bought(&self, bought: &Bought) -> anyhow::Result<()> {
        self.emit(serde_json::to_value(bought)?, || {
            let quote = &bought.quote;
            format!(
                "bought asset {}\nagreement    {}\nprice        {} of token {}\nnetwork fee  {}\npaid         {} (into escrow until the provider serves; refundable after {} s)\ntransaction  {}\n",
                quote.did,
                quote.agreement_id,
                quote.price,
                quote.token,
                quote.fee,
                quote.total,
                quote.service_timeout,
                bought.transaction
            )
        })
    }

    /// An account: address and public key (never the private key).
    pub(crate) fn key(
        &self,
        signer: &alloy::signers::local::PrivateKeySigner,
        keystore: Option<&Path>,
    ) -> anyhow::Result<()> {
        let public_key = format!(
            "0x{}",
            alloy::primitives::hex::encode(insitu_client::metadata::public_key(signer))
        );
        self.emit(
            json!({
                "address": signer.address(),
                "public_key": public_key,
                "keystore": keystore,
            }),
            || {
                let mut text =
                    format!("address    {}\npublic key {public_key}\n", signer.address());
                if let Some(keystore) = keystore {
                    text += &format!("keystore   {}\n", keystore.display());
                }
                text
            },
        )
    }

    pub(crate) fn access_token(&self, token: &AccessToken) -> anyhow::Result<()> {
        self.emit(serde_json::to_value(token)?, || {
            format!(
                "token for agreement {} (expires at {} unix time):\n{}\nURL: {}\n",
                token.agreement_id, token.expires_at, token.token, token.url
            )
        })
    }

    /// A compute job (and the purchase that made it, when this command bought it).
    pub(crate) fn job(
        &self,
        id: alloy::primitives::B256,
        bought: Option<&Bought>,
        status: &insitu_client::compute::JobStatus,
    ) -> anyhow::Result<()> {
        let mut value = json!({ "agreement": id, "job": status });
        if let Some(bought) = bought {
            value["bought"] = serde_json::to_value(bought)?;
        }
        self.emit(value, || {
            let mut text = format!(
                "agreement   {id}\njob         {} (runs {}, algorithm sha256 {}, runtime {})\n",
                status.phase, status.runs, status.algorithm_sha256, status.runtime
            );
            if let Some(reason) = &status.reason {
                text.push_str(&format!("reason      {reason}\n"));
            }
            if let Some(outcome) = &status.outcome {
                text.push_str(&format!(
                    "ended       {}\n",
                    outcome["ending"].as_str().unwrap_or("?")
                ));
            }
            if let Some(result) = &status.result {
                text.push_str(&format!(
                    "result      {}\n",
                    result["did"].as_str().unwrap_or("?")
                ));
                for file in result["files"].as_array().into_iter().flatten() {
                    text.push_str(&format!(
                        "  file      {} ({} bytes, sha256 {})\n",
                        file["name"].as_str().unwrap_or("?"),
                        file["size"],
                        file["sha256"].as_str().unwrap_or("?")
                    ));
                }
                if status.phase == "done" {
                    text.push_str(&format!(
                        "download it with: insitu download {id} --out FILE [--file N]\n"
                    ));
                }
            }
            text
        })
    }

    /// A job's logs.
    pub(crate) fn logs(&self, logs: &str) -> anyhow::Result<()> {
        self.emit(json!({ "logs": logs }), || logs.to_owned())
    }

    pub(crate) fn downloaded(&self, downloaded: &Downloaded) -> anyhow::Result<()> {
        self.emit(serde_json::to_value(downloaded)?, || {
            format!(
                "downloaded {} ({} bytes{}), SHA-256 {} checked\n",
                downloaded.path.display(),
                downloaded.bytes,
                if downloaded.resumed_from > 0 {
                    format!(", resumed from byte {}", downloaded.resumed_from)
                } else {
                    String::new()
                },
                downloaded.sha256
            )
        })
    }

    pub(crate) fn federated_demo(
        &self,
        report: &crate::federated_demo::FederatedReport,
    ) -> anyhow::Result<()> {
        self.emit(serde_json::to_value(report)?, || {
            let mut text = steps_and_balances(&report.steps, &report.balances);
            text += "\nround  accuracy (all providers' held-out rows)\n";
            for (round, accuracy) in report.federated_accuracy_per_round.iter().enumerate() {
                text += &format!("{:>5}  {accuracy:.3}\n", round + 1);
            }
            text += &format!(
                "alone  {:.3}  (a model trained on provider 0's rows only)\n",
                report.single_provider_accuracy
            );
            text += "\nprovider  rounds  rows  escrow     round log hash\n";
            for (index, provider) in report.providers.iter().enumerate() {
                text += &format!(
                    "{index:>8}  {:>6}  {:>4}  {:<9}  {}\n",
                    provider.rounds_served,
                    provider.samples,
                    if provider.escrow_released {
                        "released"
                    } else {
                        "LOCKED"
                    },
                    provider.round_log_hash
                );
            }
            text += &format!(
                "\nsummary\n  rounds trained                         {}\n  escrows released                       {} of {}\n  final accuracy                         {:.3}\n  purchase transactions                  {}\n",
                report.federated_rounds,
                report.federated_escrows_released,
                report.providers.len(),
                report.federated_accuracy,
                report.purchase_transactions
            );
            let model = &report.model;
            text += &format!(
                "\nmodel (the consumer's asset)\n  did            {}\n  owner          {}\n  activity       {}\n  derived from   {} round logs, themselves derived from {} partitions\n  document       {} ({} round log hashes)\n",
                model.did,
                model.owner,
                model.activity,
                model.derived_from.len(),
                model.inputs.len(),
                model.url,
                model.round_log_hashes.len()
            );
            text
        })
    }

    pub(crate) fn federated_ordered(
        &self,
        ordered: &crate::federated::Ordered,
    ) -> anyhow::Result<()> {
        self.emit(serde_json::to_value(ordered)?, || {
            let mut text = format!(
                "bought and ordered {} jobs in {} purchase transactions\n",
                ordered.jobs.len(),
                ordered.transactions.len()
            );
            for job in &ordered.jobs {
                text += &format!(
                    "\nasset      {}\nagreement  {}\nSuperNode  {}\n",
                    job.did, job.agreement, job.supernode_key
                );
            }
            text += "\nregister each key with `flwr supernode register`, then start `flwr run`\n";
            text
        })
    }

    pub(crate) fn model_registered(
        &self,
        model: &crate::federated::RegisteredModel,
    ) -> anyhow::Result<()> {
        self.emit(serde_json::to_value(model)?, || {
            let mut text = format!(
                "model        {}\nactivity     {}\ndocument     {} (checksum {})\ntransaction  {}\n\nagreement                                                           rounds  round log\n",
                model.did,
                model.training.activity,
                model.url,
                model.checksum,
                model.transaction
            );
            for member in &model.training.members {
                text += &format!(
                    "{}  {:>6}  {}\n",
                    member.agreement, member.rounds, member.round_log
                );
            }
            text
        })
    }

    pub(crate) fn demo(&self, report: &crate::demo::Report) -> anyhow::Result<()> {
        self.emit(serde_json::to_value(report)?, || {
            let mut text = steps_and_balances(&report.steps, &report.balances);
            let yes = |flag: bool| if flag { "yes" } else { "NO" };
            text += &format!(
                "\nsummary\n  access delivered, SHA-256 checked     {}\n  escrow released to the provider       {}\n  refunded after the time out           {}\n  blocks from payment to release        {}\n",
                yes(report.access_delivered),
                yes(report.access_escrow_released),
                yes(report.refund_after_timeout),
                report.blocks_lock_to_release_access
            );
            text += &format!(
                "  compute result delivered              {}\n  compute escrow released               {}\n  failed job refunded                   {}\n  blocks from compute payment to release {}\n",
                yes(report.compute_result_delivered),
                yes(report.compute_escrow_released),
                yes(report.compute_failed_job_refunded),
                report.blocks_lock_to_release_compute
            );
            text += &format!(
                "  datasets found in the catalog          {}\n  assets the catalog indexed             {}\n",
                yes(report.catalog_search_found),
                report.catalog_indexed_assets
            );
            text += &format!(
                "\nthe job's result (summary statistics; no row of the data left the provider):\n{}\n",
                serde_json::to_string_pretty(&report.compute_result).unwrap_or_default()
            );
            text
        })
    }
}

/// Text from a publisher or a server, safe to print on a terminal: control characters (escape
/// sequences that would move the cursor, recolour or retitle the terminal) become U+FFFD.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// A token amount of 18 decimals with two decimals.
/// A demo's transactions (step, block, gas, hash) and its balances, as tables.
fn steps_and_balances(
    steps: &[crate::demo::Step],
    balances: &[(String, alloy::primitives::U256)],
) -> String {
    let mut text = format!(
        "\n{:<50} {:>6} {:>10}  transaction\n",
        "step", "block", "gas"
    );
    for step in steps {
        text += &format!(
            "{:<50} {:>6} {:>10}  {}\n",
            step.step, step.block, step.gas, step.transaction
        );
    }
    text += &format!("\n{:<50} {:>10}\n", "balance", "DUSD");
    for (party, balance) in balances {
        text += &format!("{party:<50} {:>10}\n", tokens(*balance));
    }
    text
}

fn tokens(amount: alloy::primitives::U256) -> String {
    insitu_client::demo::format_tokens(amount)
}

fn join(addresses: &[Address]) -> String {
    addresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_next(next: &NextStep, info: &AgreementInfo) -> String {
    match next {
        NextStep::Pay { deadline } => format!(
            "pay {} of token {} into escrow (PaymentCondition.lock) before {}",
            info.terms.total,
            info.terms.token,
            format_utc(*deadline)
        ),
        NextStep::Wait { who, deadline } if *deadline == 0 => format!("wait for {who}"),
        NextStep::Wait { who, deadline } => format!(
            "wait for {who} until {}; {}",
            format_utc(*deadline),
            if who.contains("provider") {
                format!(
                    "after that, `insitu refund {}` returns the payment to the consumer",
                    info.id
                )
            } else {
                "after that, the agreement lapses".to_owned()
            }
        ),
        NextStep::Serve { deadline } => format!(
            "serve the consumer before {}, or the payment is refunded",
            format_utc(*deadline)
        ),
        NextStep::Release => {
            "release the payment to the provider (the provider's keeper does it)".to_owned()
        }
        NextStep::Refund => format!(
            "the provider did not serve in time: `insitu refund {}` returns {} of token {} to the consumer (anyone may send it)",
            info.id, info.terms.total, info.terms.token
        ),
        NextStep::Finished { outcome } => format!("nothing, it is over: {outcome}"),
    }
}

/// Shows transactions as they are sent and confirmed, on standard error: a spinner on a terminal,
/// plain lines otherwise (logs, CI). Silent in JSON mode, except on a terminal.
#[derive(Debug)]
pub(crate) struct TerminalProgress {
    spinner: Option<ProgressBar>,
    lines: bool,
}

impl TerminalProgress {
    pub(crate) fn new(output: &Output) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let spinner = terminal.then(|| {
            let spinner = ProgressBar::new_spinner();
            spinner.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            spinner
        });
        Self {
            spinner,
            lines: !output.json || terminal,
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(spinner) = &self.spinner {
            spinner.finish_and_clear();
        }
    }

    fn line(&self, text: String) {
        if !self.lines {
            return;
        }
        match &self.spinner {
            Some(spinner) => spinner.println(text),
            None => eprintln!("{text}"),
        }
    }
}

impl Progress for TerminalProgress {
    fn report(&self, event: &TxEvent) {
        match event {
            TxEvent::Sent { label, hash } => {
                self.line(format!("sent       {label:<32} {hash}"));
                if let Some(spinner) = &self.spinner {
                    spinner.set_message(format!("waiting for `{label}` to be confirmed"));
                    spinner.enable_steady_tick(Duration::from_millis(120));
                }
            }
            TxEvent::Confirmed {
                label,
                block,
                gas_used,
                ..
            } => {
                self.line(format!(
                    "confirmed  {label:<32} block {block}, gas {gas_used}"
                ));
                if let Some(spinner) = &self.spinner {
                    spinner.set_message("");
                }
            }
            TxEvent::Skipped { label, reason } => {
                self.line(format!("skipped    {label:<32} {reason}"));
            }
        }
    }
}

impl Drop for TerminalProgress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A download's progress bar on standard error (a terminal only).
#[derive(Debug)]
pub(crate) struct DownloadBar {
    bar: Option<ProgressBar>,
}

impl DownloadBar {
    pub(crate) fn new(output: &Output) -> Self {
        let _ = output;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Self { bar }
    }

    pub(crate) fn event(&self, event: DownloadEvent) {
        let Some(bar) = &self.bar else { return };
        match event {
            DownloadEvent::Waiting(reason) => {
                bar.set_message(format!("keeper: {reason}, retrying"))
            }
            DownloadEvent::Started { total, already } => {
                bar.set_message("");
                bar.set_length(total);
                bar.set_position(already);
            }
            DownloadEvent::Chunk(bytes) => bar.inc(bytes),
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn terminal_escapes_from_publishers_are_not_printed() {
        assert_eq!(
            super::printable("Air\u{1b}]0;pwned\u{7}\u{1b}[2J quality\n"),
            "Air\u{fffd}]0;pwned\u{fffd}\u{fffd}[2J quality\u{fffd}"
        );
    }
}
