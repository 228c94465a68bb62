//! `excalibur-ctl`: the operator CLI. A client of the REST API only: every request body
//! is one of `excalibur_core::api`'s DTOs, serialized by serde.

use std::process::ExitCode;

use clap::Parser as _;
use excalibur_ctl::cli::{AuditCmd, Cli, Command};
use excalibur_ctl::client::{ApiBase, Client};

mod commands;
mod table;

use commands::{Ctx, access, crypto, observe, ssh, vault, webhooks, workloads};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Audit(AuditCmd::Verify {
        offline: Some(file),
        public_key: Some(key),
    }) = &cli.command
    {
        return observe::verify_offline(file, key);
    }
    let base = ApiBase::parse(&cli.api_url, cli.insecure_http)?;
    let ctx = Ctx {
        client: Client::new(base, cli.token.clone(), cli.cacert.as_deref())?,
        json: cli.json,
    };
    match cli.command {
        Command::Placeholder(cmd) => vault::placeholder(&ctx, cmd).await,
        Command::Provider(cmd) => vault::provider(&ctx, cmd).await,
        Command::Token(cmd) => access::token(&ctx, cmd).await,
        Command::ServiceCredential(cmd) => access::credential(&ctx, cmd).await,
        Command::TranslationRule(cmd) => access::rule(&ctx, cmd).await,
        Command::Policy(cmd) => access::policy(&ctx, cmd).await,
        Command::Namespace(cmd) => access::namespace(&ctx, cmd).await,
        Command::Workload(cmd) => workloads::workload(&ctx, cmd).await,
        Command::Crypto(cmd) => crypto::crypto(&ctx, cmd).await,
        Command::Ssh(cmd) => ssh::ssh(&ctx, cmd).await,
        Command::Session(cmd) => ssh::session(&ctx, cmd).await,
        Command::Webhook(cmd) => webhooks::webhook(&ctx, cmd).await,
        Command::Flows(cmd) => observe::flows(&ctx, cmd).await,
        Command::Audit(cmd) => observe::audit(&ctx, cmd).await,
        Command::Import { file } => observe::import(&ctx, file).await,
        Command::Ca(cmd) => observe::ca(&ctx, cmd).await,
    }
}
